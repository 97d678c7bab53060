"""Adapters for agent frameworks, each on the SDK client and each an optional extra.

- ``memsvc.adapters.langgraph.MemsvcStore``: a LangGraph ``BaseStore`` (``memsvc[langgraph]``)
- ``memsvc.adapters.openai_agents.memory_tools``: OpenAI Agents SDK function tools
  ``remember`` / ``recall`` / ``forget`` (``memsvc[agents]``)

Nothing here is imported by ``memsvc`` itself: importing a module of this package is what
needs its framework installed.
"""
