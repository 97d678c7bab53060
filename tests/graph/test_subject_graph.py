"""Heuristic graph (no LLM, real embedder): memories about the same subject are linked.

Issue 17's twelve facts, written in one batch: six about Melanie, four about Caroline and
her cat Pixel, two about the billing service v2. At least 9 of them end up linked, and
every Melanie fact reaches every other within two hops.
"""

from __future__ import annotations

import itertools

import networkx as nx
import pytest

from tests.api.helpers import add, make_cube
from tests.conftest import Service
from tests.graph.helpers import links_of, worker_for

pytestmark = pytest.mark.anyio

MELANIE = [
    "Melanie signed up for a pottery class at the community center.",
    "Melanie made a blue bowl in her pottery class last week.",
    "Melanie went camping in the mountains with her kids.",
    "On the camping trip Melanie and the kids roasted marshmallows by the fire.",
    "Melanie painted the lake she saw on the camping trip.",
    "Melanie says painting helps her relax after work.",
]
CAROLINE = [
    "Caroline adopted a cat named Pixel from the shelter.",
    "Pixel likes to sleep on Caroline's keyboard.",
    "Caroline bought Pixel a scratching post.",
    "Caroline is a counselor who volunteers at the LGBTQ center.",
]
BILLING = [
    "The billing service v2 goes live on March 3.",
    "The billing service v2 needs a database migration before launch.",
]


async def test_facts_about_one_subject_are_linked(service: Service) -> None:
    cube = await make_cube(service)
    written = await add(service, cube, *({"content": c} for c in [*MELANIE, *CAROLINE, *BILLING]))
    ids = [m["id"] for m in written]
    assert await worker_for(service).run_until_idle() == len(ids)

    g = nx.Graph()
    g.add_nodes_from(ids)
    for mid in ids:
        for ln in await links_of(service, mid):
            g.add_edge(ln["source_id"], ln["target_id"], relation=ln["relation"])
    linked = [m for m in ids if g.degree(m) > 0]
    assert len(linked) >= 9, f"{len(linked)} of 12 linked; edges {g.number_of_edges()}"

    melanie = ids[: len(MELANIE)]
    for a, b in itertools.combinations(melanie, 2):
        assert nx.has_path(g, a, b) and nx.shortest_path_length(g, a, b) <= 2, (
            MELANIE[melanie.index(a)],
            MELANIE[melanie.index(b)],
        )
    # A shared name never links different subjects.
    for a in melanie:
        for b in ids[len(MELANIE) :]:
            assert not (g.has_edge(a, b) and g.edges[a, b]["relation"] == "same_entity")
