"""MCP server of memsvc: memory tools for agent hosts, over stdio or streamable HTTP.

Built on the ``mcp`` SDK (the ``mcp`` extra) and the memsvc SDK client: every tool call is a
REST call with the caller's API key, so auth and tenant isolation are the API's own.
``memsvc mcp`` runs it over stdio; the service mounts it at ``/mcp`` when ``mcp`` is installed.
"""
