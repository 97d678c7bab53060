"""Settings, built on demand from the environment (prefix ``MEMSVC_``, nested with ``__``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# The installed package; its _migrations/ and _prompts/ are the top-level migrations/ and
# prompts/ (symlinks in the repository, copies in a wheel).
PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
PACKAGED_EMBEDDER = "packaged:all-MiniLM-L6-v2"


class ModelSettings(BaseModel):
    """Local model runtime: embedder and optional cross-encoder reranker."""

    embedder: str = PACKAGED_EMBEDDER
    embedding_dim: int = 384
    reranker: str | None = None
    # A learned-ranker model file (``memsvc ranker train``); default: the packaged one.
    ranker: str | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # CPU inference backend: "auto" uses onnxruntime when available (identical vectors,
    # checked at load; about 2x faster single queries on 2 CPU cores, bench/embedder.py),
    # else torch.
    backend: Literal["auto", "torch", "onnx"] = "auto"
    # With the ONNX backend, search queries run through an int8 copy of the graph (weights
    # quantised per channel; stored vectors stay float): a query embeds in about half the
    # time, and the dev sets' recall@10 is unchanged (``onnx_backend.load_int8``). Off: the
    # float graph, as for documents.
    query_int8: bool = True
    # Where exported ONNX models are cached (default: $XDG_CACHE_HOME/memsvc/onnx).
    cache_dir: Path | None = None
    batch_size: int = 64
    # How long a request waits for others to share its model batch when the model is idle.
    # 0: dispatch at once; requests arriving during a model call still share the next one.
    # Measured (bench/serve_basics.py, 2 CPU cores): single-query search p50 22-25 -> 20 ms;
    # 8 concurrent clients: same qps.
    batch_wait_ms: float = 0.0


class LLMSettings(BaseModel):
    """LLM access through litellm; with no model every feature runs in heuristic mode."""

    model: str | None = None
    api_key: SecretStr | None = None
    api_base: str | None = None
    timeout_s: float = 60.0
    # Repair calls for output that is not valid JSON for the schema (0 or 1); after it the
    # heuristic result is used and the fallback recorded.
    max_retries: int = 1
    # Provider timeouts, 5xx and rate limits: this many more tries within one call, after
    # exponential backoff with full jitter (base * 2**n, at most backoff_max_s).
    provider_retries: int = 2
    backoff_base_s: float = 0.5
    backoff_max_s: float = 8.0
    # Circuit breaker (per process): after this many consecutive provider failures no LLM
    # call is made for breaker_cooldown_s (heuristic fallback, recorded). 0 = never opens.
    breaker_failures: int = 5
    breaker_cooldown_s: float = 60.0
    # Per-tenant budget, counted in Postgres (table llm_usage) per clock hour and checked
    # before each call; over it: heuristic fallback (why "llm_budget"). 0 = unlimited.
    budget_calls_per_hour: int = 2000
    budget_tokens_per_hour: int = 2_000_000


class LimitSettings(BaseModel):
    """Request limits; anything larger is refused with a 4xx."""

    max_content_bytes: int = 32 * 1024
    # A source's text, and the JSON of a memory's (or a source's) metadata, in UTF-8 bytes.
    max_source_text_bytes: int = 1024 * 1024
    max_metadata_bytes: int = 64 * 1024
    # Tags per memory and characters per tag (the schema never lets more than 64 x 100 in).
    max_tags: int = 64
    max_tag_chars: int = 100
    max_batch: int = 1000
    max_top_k: int = 200
    max_page_size: int = 1000
    default_page_size: int = 100
    max_body_bytes: int = 64 * 1024 * 1024  # the whole request, declared or streamed (413)
    # Requests per second per API key (token bucket), in bursts of up to ``rate_burst``;
    # over it: 429 with Retry-After. 0 turns the limit off.
    rate_per_s: float = 100.0
    rate_burst: int = 200
    # Memories a tenant may create per UTC day (0: unlimited); over it: 429 quota_exceeded
    # with Retry-After until midnight UTC. Per tenant: PUT /v1/tenants/{id}/limits.
    daily_write_quota: int = 0
    # The most one ``ask`` may spend (a request asking more gets a 422). Per tenant:
    # PUT /v1/tenants/{id}/limits. The deadline stays under ``response_timeout_s``.
    ask_max_cycles: int = 8
    ask_max_llm_calls: int = 16
    ask_max_tokens: int = 200_000
    ask_deadline_ms: int = 30_000
    # A request body must arrive within this (else 408); a response must start within
    # ``response_timeout_s`` (else 503 with Retry-After).
    body_timeout_s: float = 30.0
    # A request's line and headers must arrive within this, else the connection is closed
    # (``memsvc serve``; 0: no limit).
    header_timeout_s: float = 10.0
    response_timeout_s: float = 60.0


class LogSettings(BaseModel):
    """Logs are JSON lines without content (``memsvc.logs``)."""

    # Let SQL parameters and query strings into logs and database error messages
    # (MEMSVC_LOG__DEBUG_CONTENT=true): for debugging only, they hold what users wrote.
    debug_content: bool = False


class JobSettings(BaseModel):
    """Durable background work (enrichment and friends)."""

    in_process_worker: bool = True
    poll_interval_s: float = 0.5
    max_attempts: int = 5
    backoff_base_s: float = 2.0
    lock_timeout_s: float = 300.0
    # Finished jobs are deleted this long after they finished (0 keeps them forever);
    # dead letters stay until retried. Workers check every ``prune_every_s``.
    done_retention_days: float = 7.0
    prune_every_s: float = 600.0


class AskSettings(BaseModel):
    """``ask``: the budget a request gets when it names none (held under the caps,
    ``LimitSettings.ask_max_*``)."""

    # Probe cycles after the first pass; most questions end at the gate before any.
    max_cycles: int = 2
    max_llm_calls: int = 4
    max_tokens: int = 16_000
    deadline_ms: int = 10_000
    # Traces (``GET /v1/traces/{id}``) are kept this long.
    trace_retention_days: float = 14.0


class IngestSettings(BaseModel):
    """``ingest``: conversation messages through a write policy (``memsvc.policy.ingest``)."""

    # The policy of a request that names none in a cube that has none.
    default_policy: Literal["store_all", "learned", "llm"] = "learned"
    # A scope's core block (profile) is kept under this many characters: a new line that
    # would pass it pushes out the oldest lines.
    core_max_chars: int = 2000
    # Existing memories a policy sees per message (vector search over the whole cube).
    neighbours: int = 5
    # Messages per LLM call of the ``llm`` policy.
    llm_batch: int = 20


class Settings(BaseSettings):
    """All service settings. Tests build their own instead of patching the environment."""

    model_config = SettingsConfigDict(
        env_prefix="MEMSVC_", env_nested_delimiter="__", extra="ignore"
    )

    data_dir: Path = Path("./memsvc-data")
    database_url: SecretStr | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    log_level: str = "info"
    log: LogSettings = Field(default_factory=LogSettings)
    models: ModelSettings = Field(default_factory=ModelSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    jobs: JobSettings = Field(default_factory=JobSettings)
    ask: AskSettings = Field(default_factory=AskSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    # Below this many vectors (memories and their passages) a cube is searched exhaustively
    # (exact scores); above it the cube is promoted to the HNSW index. BM25 is exact below
    # this many memories.
    exact_search_threshold: int = 20_000
    # Exact search scores the vectors of a cube of at least ``vector_cache_min`` of them
    # from a copy kept in the process (``memsvc.store.vector_cache``: used only while the
    # database says it is current), within ``vector_cache_mb`` per process (a 10k-memory
    # cube takes about 16 MB). 0: always scored in Postgres.
    vector_cache_mb: int = Field(default=256, ge=0)
    vector_cache_min: int = Field(default=2_000, ge=0)
    # Bulk writes into a cube above it are folded into the HNSW index this many seconds
    # later, by a background job (``memsvc.store.ann``); until then they are scored exactly.
    ann_fold_delay_s: float = 10.0
    # Every this many seconds the service analyses the tables that changed much since
    # their planner statistics were taken (``memsvc.store.planner_stats``): a table that
    # grew from nearly empty is otherwise planned as empty until autovacuum comes by
    # (a search 110 ms instead of 14). 0: leave it to autovacuum.
    planner_stats_interval_s: float = 5.0
    # Session cookie signing for the admin view; generated and stored in data_dir when unset.
    session_secret: SecretStr | None = None
    # Proxies whose X-Forwarded-For is believed (uvicorn's forwarded_allow_ips: addresses
    # or CIDRs, comma-separated); empty: the peer address is the client, whatever it sends.
    trusted_proxies: str = ""
    # Print the first-start admin key to stdout (never logged elsewhere).
    print_admin_key: bool = True


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings from the environment, cached for the process."""
    return Settings()
