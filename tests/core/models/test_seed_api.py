"""The original ``rag_retrieval`` package's API, as its users wrote it, on the same classes.

``Reranker(name, dtype='fp16', verbose=0)``, ``compute_score`` (one float for one pair),
``rerank(query, docs)`` returning ``RankedResults`` with ``.results`` of
``Result(doc_id, text, score, rank)``, ``top_k``, ``get_score_by_docid``, and the per-call
``batch_size``, ``max_length``, ``normalize``, ``enable_tqdm`` and ``long_doc_process_strategy``.
"""

from __future__ import annotations

import asyncio
import logging
import textwrap
from pathlib import Path

import numpy as np
import pytest
from kit import colbert as tc
from kit.hub import fill_hub_cache

from rag_retrieval_integrations import Reranker

PANDA = (
    "The giant panda (Ailuropoda melanoleuca), sometimes called a panda bear or simply panda, "
    "is a bear species endemic to China."
)
LONG = " ".join(["Pandas eat bamboo in the mountains of central China."] * 12) + " The giant panda is a bear."
PAIRS = [("what is a panda?", "hi"), ("what is a panda?", PANDA), ("what is a panda?", LONG)]

# The three code blocks of the upstream tutorial (NLPJCL/RAG-Retrieval, examples/Reranker_Tutorial.md)
# that call the API, as they are there but for the import line (``from rag_retrieval import Reranker``).
IMPORT = "from rag_retrieval_integrations import Reranker"
TUTORIAL_SNIPPETS = [
    f"""
    import os
    os.environ['CUDA_VISIBLE_DEVICES']='7'

    {IMPORT}

    ranker = Reranker('BAAI/bge-reranker-base',dtype='fp16',verbose=0)
    """,
    f"""
    import os
    os.environ['CUDA_VISIBLE_DEVICES']='7'

    {IMPORT}


    ranker = Reranker('BAAI/bge-reranker-base',dtype='fp16',verbose=0)

    pairs = [['what is panda?', 'hi'], ['what is panda?', 'The giant panda (Ailuropoda melanoleuca), sometimes called a panda bear or simply panda, is a bear species endemic to China.']]


    scores = ranker.compute_score(pairs)

    print(scores)
    """,
    f"""
    import os
    os.environ['CUDA_VISIBLE_DEVICES']='7'

    {IMPORT}

    ranker = Reranker('BAAI/bge-reranker-base',dtype='fp16',verbose=0)

    query='what is panda?'

    docs=['hi','The giant panda (Ailuropoda melanoleuca), sometimes called a panda bear or simply panda, is a bear species endemic to China.']

    doc_ranked = ranker.rerank(query,docs)
    print(doc_ranked)
    """,
]


@pytest.fixture(scope="module")
def ranker(xlmr_cross_encoder):
    return Reranker(xlmr_cross_encoder, max_length=32)


@pytest.fixture(scope="module")
def colbert_path(tmp_path_factory) -> Path:
    return tc.build_tiny_colbert(tmp_path_factory.mktemp("colbert") / "tiny-colbert")


def test_the_tutorial_snippets_run_with_only_the_import_changed(tmp_path, monkeypatch, capsys, xlmr_cross_encoder):
    fill_hub_cache(monkeypatch, tmp_path / "hub", {"BAAI/bge-reranker-base": xlmr_cross_encoder})
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # restored after the test: the snippets set it
    namespaces = []
    for snippet in TUTORIAL_SNIPPETS:
        namespace: dict = {}
        exec(compile(textwrap.dedent(snippet), "Reranker_Tutorial.md", "exec"), namespace)
        namespaces.append(namespace)
    printed = capsys.readouterr().out
    reference = Reranker(xlmr_cross_encoder)
    expected = reference.compute_score(namespaces[1]["pairs"])
    scores = namespaces[1]["scores"]
    assert isinstance(scores, list) and len(scores) == 2
    np.testing.assert_allclose(scores, expected, atol=1e-6)
    assert str(scores) in printed
    ranked = namespaces[2]["doc_ranked"]
    order = np.argsort(-np.asarray(expected), kind="stable")
    assert [r.doc_id for r in ranked.results] == order.tolist()
    assert [r.rank for r in ranked.results] == [1, 2]
    assert ranked.query == "what is panda?" and ranked.has_scores
    np.testing.assert_allclose(ranked.get_score_by_docid(1), expected[1], atol=1e-6)
    assert ranked.results[0].text == namespaces[2]["docs"][ranked.results[0].doc_id]
    # verbose=0: no progress bar, as there
    assert namespaces[0]["ranker"].show_progress_bar is False


def test_one_pair_scores_as_one_float_and_a_list_as_a_list(ranker):
    pair = PAIRS[1]
    (expected,) = ranker.compute_score([pair])
    for single in (pair, list(pair)):
        score = ranker.compute_score(single)
        assert isinstance(score, float) and score == pytest.approx(expected, abs=1e-6)
        assert ranker.compute_score(single, normalize=True) == pytest.approx(1 / (1 + np.exp(-expected)), abs=1e-6)
    assert asyncio.run(ranker.acompute_score(pair)) == pytest.approx(expected, abs=1e-6)
    assert isinstance(ranker.compute_score([list(pair), list(PAIRS[0])]), list)


def test_ranked_results_have_the_seeds_names(ranker):
    ranked = ranker.rerank(PAIRS[0][0], [d for _, d in PAIRS])
    scores = ranker.compute_score(PAIRS, long_doc="split-max")
    assert ranked.results_count() == 3 and ranked.results == list(ranked)
    for result in ranked.results:
        assert result.doc_id == result.index
        assert ranked.get_score_by_docid(result.doc_id) == pytest.approx(scores[result.doc_id], abs=1e-6)
    best = ranked.top_k(1)
    assert [r.doc_id for r in best] == [ranked.results[0].doc_id]
    assert best.get_score_by_docid(ranked.results[1].doc_id) is None  # cut by top_k, as there
    assert ranked.get_score_by_docid(7) is None


def test_rerank_splits_long_documents_by_default_as_the_seeds_did(ranker, xlmr_cross_encoder):
    query, docs = PAIRS[0][0], [d for _, d in PAIRS]
    split = Reranker(xlmr_cross_encoder, max_length=32, long_doc="split-max").rank(query, docs)
    truncated = ranker.rank(query, docs)
    assert split.scores != pytest.approx(truncated.scores)  # the long document scores differently
    for strategy, expected in ((None, split), ("max_score_slice", split), ("max_length_truncation", truncated)):
        got = ranker.rerank(query, docs, long_doc_process_strategy=strategy)
        assert got.indices == expected.indices
        np.testing.assert_allclose(got.scores, expected.scores, atol=1e-6)
    assert ranker.long_doc == "truncate"  # the call's strategy was for that call only
    with pytest.raises(ValueError, match="max_score_slice"):
        ranker.rerank(query, docs, long_doc_process_strategy="max_slice")


@pytest.mark.parametrize("family", ["cross-encoder", "embedding", "llm", "colbert"])
def test_max_length_per_call_scores_as_a_model_loaded_with_it(
    family, bert_cross_encoder, bi_encoder, decoder_llm, colbert_path
):
    path = {"cross-encoder": bert_cross_encoder, "embedding": bi_encoder, "llm": decoder_llm, "colbert": colbert_path}
    length = 80 if family == "llm" else 24  # the LLM's prompt alone is about 50 tokens
    model = Reranker(path[family])
    short = Reranker(path[family], max_length=length)
    before = model.compute_score(PAIRS)
    np.testing.assert_allclose(model.compute_score(PAIRS, max_length=length), short.compute_score(PAIRS), atol=1e-5)
    ranked = model.rerank(
        PAIRS[0][0], [d for _, d in PAIRS], max_length=length, long_doc_process_strategy="max_length_truncation"
    )
    np.testing.assert_allclose(ranked.scores, short.rank(PAIRS[0][0], [d for _, d in PAIRS]).scores, atol=1e-5)
    # the model's own setting is back afterwards
    assert model.max_length != length
    np.testing.assert_allclose(model.compute_score(PAIRS), before, atol=1e-6)


def test_enable_tqdm_and_verbose_show_or_hide_the_progress_bar(xlmr_cross_encoder, capsys):
    quiet = Reranker(xlmr_cross_encoder, verbose=0)
    quiet.compute_score(PAIRS)
    assert "Scoring" not in capsys.readouterr().err
    quiet.compute_score(PAIRS, enable_tqdm=True)
    assert "Scoring" in capsys.readouterr().err
    loud = Reranker(xlmr_cross_encoder, verbose=1)
    loud.rerank(PAIRS[0][0], ["a", "b"], enable_tqdm=False)
    assert "Scoring" not in capsys.readouterr().err
    loud.rerank(PAIRS[0][0], ["a", "b"])
    assert "Scoring" in capsys.readouterr().err
    assert Reranker(xlmr_cross_encoder, verbose=1, show_progress_bar=False).show_progress_bar is False


def test_bad_per_call_settings_are_clear_errors_and_leave_the_model_as_it_was(ranker, caplog):
    with pytest.raises(ValueError, match="max_length must be a positive integer"):
        ranker.compute_score(PAIRS, max_length=0)
    with pytest.raises(ValueError, match="long_doc must be one of"):
        ranker.compute_score(PAIRS, long_doc="slices")
    with pytest.raises(ValueError, match="leaves no room for a document"):
        ranker.compute_score(PAIRS, max_length=3)
    with pytest.raises(TypeError, match="not both"):
        ranker.compute_score(PAIRS, enable_tqdm=True, show_progress_bar=True)
    with pytest.raises(TypeError, match="unexpected per-call option"):
        ranker.compute_score(PAIRS, max_lenght=64)
    assert (ranker.max_length, ranker.long_doc) == (32, "truncate")
    with caplog.at_level(logging.WARNING):
        ranker.compute_score(PAIRS, max_length=100_000)  # more than the model takes: capped, said
    assert "using max_length" in caplog.text
    with pytest.raises(ValueError, match="verbose must be 0 or 1"):
        Reranker(ranker.checkpoint.path, verbose=-1)
