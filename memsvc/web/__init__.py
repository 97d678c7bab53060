"""The admin web view at ``/admin``: server-rendered pages over the same store and services.

``create_app`` mounts ``build_router()``; templates and static assets ship in this package.
"""

from memsvc.web.routes import build_router

__all__ = ["build_router"]
