"""The learned ranker: features, fitting, the model file, and the service using it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from memsvc.cli import main as cli
from memsvc.retrieval import ranker
from memsvc.retrieval.ranker import FEATURES, Candidate, Ranker, features
from tests.api.helpers import add, make_cube
from tests.conftest import Service

NOW = datetime(2023, 6, 1, tzinfo=UTC)


def test_features_read_channels_words_names_and_time() -> None:
    x = features(
        [
            Candidate(
                hits={"vector": (1, 0.8), "fulltext": (2, 3.0)},
                content="Caroline went to the pottery workshop",
                speakers=["Melanie"],
                occurred_at=datetime(2023, 5, 31, tzinfo=UTC),
            ),
            Candidate(hits={"fulltext": (1, 6.0)}, content="unrelated words here"),
        ],
        "When did Melanie and Caroline go to the pottery workshop?",
        NOW,
    )
    assert x.shape == (2, len(FEATURES))
    row = dict(zip(FEATURES, x[0], strict=True))
    assert row["rrf_vector"] == pytest.approx(1 / 21) and row["rrf_time"] == 0
    assert row["fulltext_share"] == pytest.approx(0.5) and row["channels"] == 2
    assert row["name_overlap"] == 1.0 and row["speaker_named"] == 1.0
    assert row["word_overlap"] > 0.5 and row["log_age_days"] == pytest.approx(np.log1p(1))
    other = dict(zip(FEATURES, x[1], strict=True))
    assert other["word_overlap"] == 0 and other["fulltext_share"] == 1.0


def test_features_tell_the_agent_s_turns_and_queries_that_recall_them() -> None:
    cands = [
        Candidate(hits={"fulltext": (1, 2.0)}, content="Try a HEPA filter", speakers=["assistant"]),
        Candidate(hits={"fulltext": (2, 1.0)}, content="My cat sheds a lot", speakers=["user"]),
        Candidate(hits={"fulltext": (3, 1.0)}, content="Lives in Denver", valid=False),
        # A memory merging the user's turn with the reply is the user's, not the agent's.
        Candidate(hits={}, content="My cat sheds. Try a filter", speakers=["user", "Assistant"]),
    ]
    about_user = features(cands, "Why do I keep sneezing at home?", NOW)
    recall = features(cands, "Remind me which filter you suggested last time?", NOW)
    col = {f: i for i, f in enumerate(FEATURES)}
    assert about_user[:, col["agent_turn"]].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert about_user[:, col["agent_recalled"]].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert recall[:, col["agent_recalled"]].tolist() == [1.0, 0.0, 0.0, 0.0]
    # A memory not valid at ``now`` keeps half its fused score, as in the ``rrf`` preset.
    assert about_user[2, col["rrf_hybrid"]] == pytest.approx(
        about_user[1, col["rrf_hybrid"]] * 22 / 23 * ranker.NOT_VALID_FACTOR
    )


@pytest.mark.parametrize(
    ("query", "recalls"),
    [
        ("Can you remind me of the shop we talked about last time?", True),
        ("I remember you provided a list of prompt parameters. What was the 27th?", True),
        ("What song did you say best showed the band's growth?", True),
        ("Going back to our previous chat about embroidery: which store was it?", True),
        ("Which of your recommendations for Lisbon did I like?", True),
        ("How many bikes do I own?", False),
        ("Do you think my living room makes me sneeze?", False),
        ("What did Caroline say about the adoption agency?", False),
    ],
)
def test_queries_that_recall_what_the_agent_said(query: str, recalls: bool) -> None:
    agent = Candidate(hits={"vector": (1, 0.5)}, content="x", speakers=["assistant"])
    (row,) = features([agent], query, NOW)
    assert row[FEATURES.index("agent_recalled")] == (1.0 if recalls else 0.0)


def _line(group: str, rng: np.random.Generator) -> dict[str, Any]:
    """A labelled question whose relevant candidate is the one the vector channel likes,
    buried under fulltext noise in the service's order."""
    results = []
    for i in range(20):
        good = i == 7
        results.append(
            {
                "memory": {
                    "id": f"{group}-{i}",
                    "content": "the pottery class" if good else f"noise {i}",
                    "sources": [],
                    "created_at": "2023-05-01T00:00:00+00:00",
                },
                "explain": {
                    "fulltext": {"rank": i + 1, "score": float(20 - i)},
                    **({"vector": {"rank": 1, "score": 0.9}} if good else {}),
                },
            }
        )
    rng.shuffle(results[8:])
    return {
        "group": group,
        "query": "pottery class",
        "now": "2023-06-01T00:00:00+00:00",
        "results": results,
        "relevant": [f"{group}-7"],
        "relevant_total": 1,
    }


def test_training_learns_what_the_labels_say_and_reports_honestly(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    lines = [_line(f"{ds}/{i}", rng) for ds in ("a", "b") for i in range(12)]
    qs = ranker.questions(lines)
    model = ranker.train(qs, version="test")
    m = model.metrics["recall@10"]
    assert m["a"]["service_order"] == 1.0  # rank 8 of 20 is within the first 10 anyway
    assert ranker.recall_at(qs, None, k=5) == 0.0
    assert ranker.recall_at(qs, [model.score(q.x) for q in qs], k=1) == 1.0
    assert set(m["a"]) == {
        "questions",
        "service_order",
        "in_sample",
        "cv_5fold",
        "trained_on_others",
    }
    # The file round-trips; a model for other features is refused.
    path = tmp_path / "m.json"
    path.write_text(json.dumps(model.to_json()))
    again = ranker.load(path)
    assert np.allclose(again.score(qs[0].x), model.score(qs[0].x), atol=1e-4)
    bad = dict(model.to_json(), features=["x"])
    with pytest.raises(ValueError, match="features"):
        Ranker.from_json(bad)


def test_ranker_train_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(1)
    data = tmp_path / "labels.jsonl"
    data.write_text("\n".join(json.dumps(_line(f"x/{i}", rng)) for i in range(6)) + "\n")
    out = tmp_path / "model.json"
    assert cli(["ranker", "train", str(data), "--out", str(out), "--version", "t1"]) == 0
    assert json.loads(out.read_text())["version"] == "t1"
    assert "in_sample" in capsys.readouterr().out
    data.write_text("{not json\n")
    assert cli(["ranker", "train", str(data), "--out", str(out)]) == 2
    assert "not JSON" in capsys.readouterr().err


def test_the_packaged_model_reads_this_version_s_features() -> None:
    model = ranker.load()
    assert model.weights.shape == (len(FEATURES),)
    assert model.metrics["recall@10"]["questions"] > 0
    # It weighs no content feature: the service does not read the candidates' content.
    assert not model.reads_content
    assert Ranker(**{**vars(model), "weights": np.ones(len(FEATURES))}).reads_content


@pytest.mark.anyio
async def test_service_order_equals_offline_scoring_of_its_explain(service: Service) -> None:
    """The service's learned order is the packaged model's score of the very features
    training reads from a search response: the two cannot drift apart."""
    cube = await make_cube(service, "learned")
    await add(
        service,
        cube,
        *(
            {
                "content": text,
                "session_id": "s1",
                "sources": [{"speaker": who, "occurred_at": f"2023-05-{10 + i}T10:00:00Z"}],
            }
            for i, (who, text) in enumerate(
                [
                    ("Mel", "When did you go to the pottery workshop?"),
                    ("Caro", "Last Saturday, it was lovely."),
                    ("Mel", "I ran a charity race for mental health"),
                    ("Caro", "Caroline is researching adoption agencies"),
                    ("Mel", "We went camping by the lake last week"),
                ]
            )
        ),
    )
    query = "When did Caro go to pottery?"
    config = {
        "vector": {"weight": 1, "depth": 100},
        "fulltext": {"weight": 2, "depth": 100},
        "time": {"weight": 1, "depth": 50},
        "rrf_k": 20,
    }
    body = {"query": query, "top_k": 50, "explain": True, "now": "2023-06-01T00:00:00Z"}
    learned = await service.client.post(
        f"/v1/cubes/{cube}/search",
        json={**body, "config": {**config, "ranker": "learned"}},
        headers=service.auth(),
    )
    assert learned.status_code == 200, learned.text
    got = [r["memory"]["id"] for r in learned.json()["results"]]
    fused = await service.client.post(
        f"/v1/cubes/{cube}/search", json={**body, "config": config}, headers=service.auth()
    )
    line = {**body, "group": "t/1", "relevant": [], "results": fused.json()["results"]}
    (q,) = ranker.questions([line])
    scores = ranker.load().score(q.x)
    ids = [r["memory"]["id"] for r in line["results"]]
    want = [ids[i] for i in sorted(range(len(ids)), key=lambda i: -scores[i])]
    assert got == want and len(got) == 5


@pytest.mark.anyio
async def test_hybrid_ranks_what_the_user_said_over_the_agent_s_echo(service: Service) -> None:
    """A question about the user finds the user's own turn ahead of the agent's long reply
    that repeats its words; a question that recalls the agent's words finds the reply."""
    cube = await make_cube(service, "roles")
    reply = (
        "If you keep sneezing in your living room, the cause is often dust mites, pollen or"
        " pet dander in the living room's carpet and sofa. Keep sneezing? Try a HEPA air"
        " purifier in the living room and vacuum it with a HEPA filter every week."
    )
    turns = [
        ("user", "We adopted a kitten in April; since then I sneeze a lot on the sofa."),
        ("assistant", reply),
        ("user", "Thanks! I also started jogging on Sundays."),
        ("assistant", "Jogging on Sundays is a great habit; remember to stretch before."),
    ]
    await add(
        service,
        cube,
        *(
            {
                "content": text,
                "session_id": f"s{i // 2}",  # two sessions of two turns
                "sources": [{"speaker": who, "occurred_at": f"2023-05-{10 + i}T10:00:00Z"}],
            }
            for i, (who, text) in enumerate(turns)
        ),
    )

    async def first(query: str, preset: str) -> str:
        resp = await service.client.post(
            f"/v1/cubes/{cube}/search",
            json={"query": query, "preset": preset, "top_k": 4},
            headers=service.auth(),
        )
        assert resp.status_code == 200, resp.text
        return str(resp.json()["results"][0]["memory"]["content"])

    about_user = "Why do I keep sneezing in my living room since April?"
    assert await first(about_user, "rrf") == reply  # the echo wins on words alone
    assert await first(about_user, "hybrid") == turns[0][1]
    recall = "What did you suggest for the sneezing in my living room?"
    assert await first(recall, "hybrid") == reply
