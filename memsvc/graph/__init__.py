"""The A-MEM layer: notes, typed links and their evolution; networkx views of the graph.

- :mod:`~memsvc.graph.enrich` — the ``enrich`` job: note construction, linking, evolution.
- :mod:`~memsvc.graph.builders` — who decides: :class:`HeuristicBuilder` (no LLM, the
  default) or :class:`LLMBuilder` (prompts ``enrich_note.v1`` and ``link_decide.v1``).
- :mod:`~memsvc.graph.heuristics` — keyword/entity/name extraction of the heuristic mode.
- :mod:`~memsvc.graph.linking` — heuristic link decisions: shared subjects (idf-weighted,
  anchored at their first mention), rare keywords, follow-on events, near-duplicates.
- :mod:`~memsvc.graph.prompts` — the prompts' typed contexts and responses.
- :mod:`~memsvc.graph.views` / :mod:`~memsvc.graph.analysis` — cube graph (PageRank,
  degree, communities) and shortest paths, networkx run in a thread.

Links themselves are stored by :mod:`memsvc.store.links`.
"""
