"""Wire types shared by the API and the SDK (``XCreate``, ``XUpdate``, ``XRead``, ``XPage``)."""

from memsvc.schemas.common import ErrorBody, ErrorInfo, Health, Page
from memsvc.schemas.cubes import CubeCreate, CubePage, CubeRead, CubeUpdate
from memsvc.schemas.memories import (
    MemoryBatchCreate,
    MemoryCreate,
    MemoryList,
    MemoryPage,
    MemoryRead,
    MemoryUpdate,
    MemoryVersionPage,
    MemoryVersionRead,
    ProvenanceRead,
    SourceCreate,
    SourceRead,
    VersionProvenance,
)
from memsvc.schemas.search import (
    ChannelConfig,
    ChannelHit,
    RetrievalConfig,
    SearchFilters,
    SearchRequest,
    SearchResponse,
    SearchResult,
)
from memsvc.schemas.tenants import KeyCreate, KeyCreated, KeyPage, KeyRead, TenantCreate, TenantRead

__all__ = [
    "ChannelConfig",
    "ChannelHit",
    "CubeCreate",
    "CubePage",
    "CubeRead",
    "CubeUpdate",
    "ErrorBody",
    "ErrorInfo",
    "Health",
    "KeyCreate",
    "KeyCreated",
    "KeyPage",
    "KeyRead",
    "MemoryBatchCreate",
    "MemoryCreate",
    "MemoryList",
    "MemoryPage",
    "MemoryRead",
    "MemoryUpdate",
    "MemoryVersionPage",
    "MemoryVersionRead",
    "Page",
    "ProvenanceRead",
    "RetrievalConfig",
    "SearchFilters",
    "SearchRequest",
    "SearchResponse",
    "SearchResult",
    "SourceCreate",
    "SourceRead",
    "TenantCreate",
    "TenantRead",
    "VersionProvenance",
]
