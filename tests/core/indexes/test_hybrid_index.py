"""Fusion by hand, and the hybrid index: one document store over its parts, fused search, persistence."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("bm25s")
pytest.importorskip("faiss")

from kit.texts import QUERIES, TEXTS

from rag_retrieval_integrations import Reranker
from rag_retrieval_integrations.core import BM25Index, CorruptIndexError, HybridIndex, MRLIndex
from rag_retrieval_integrations.core.indexes.fusion import fuse

# ---- fusion on three documents, by hand --------------------------------------------------------

LEXICAL = [("a", 9.0), ("b", 3.0), ("c", 1.0)]
DENSE = [("c", 0.9), ("a", 0.5)]  # b is not in the dense list


def test_reciprocal_rank_fusion_by_hand():
    fused = dict(fuse([LEXICAL, DENSE], fusion="rrf", rrf_k=60))
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert fused["b"] == pytest.approx(1 / 62)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert [d for d, _ in fuse([LEXICAL, DENSE])] == ["a", "c", "b"]
    weighted = fuse([LEXICAL, DENSE], weights=[1.0, 3.0], rrf_k=0)
    assert weighted == [("c", pytest.approx(1 / 3 + 3)), ("a", pytest.approx(1 + 3 / 2)), ("b", pytest.approx(1 / 2))]


def test_min_max_fusion_by_hand():
    fused = fuse([LEXICAL, DENSE], fusion="minmax", weights=[0.5, 1.0])
    # lexical: a 1, b 0.25, c 0; dense: c 1, a 0 (b missing: 0)
    assert fused == [("c", pytest.approx(1.0)), ("a", pytest.approx(0.5)), ("b", pytest.approx(0.125))]
    # a list of equal scores gives its documents 1
    assert dict(fuse([[("x", 2.0), ("y", 2.0)]], fusion="minmax")) == {"x": 1.0, "y": 1.0}


def test_z_score_fusion_by_hand():
    fused = dict(fuse([LEXICAL, DENSE], fusion="zscore"))
    lex = (np.array([9.0, 3.0, 1.0]) - 13 / 3) / np.std([9.0, 3.0, 1.0])
    # dense: c +1, a -1 (population std of two values); b, missing, gets the list's lowest z (-1)
    assert fused["a"] == pytest.approx(lex[0] - 1)
    assert fused["b"] == pytest.approx(lex[1] - 1)
    assert fused["c"] == pytest.approx(lex[2] + 1)


def test_ties_keep_first_appearance_and_bad_arguments():
    assert [d for d, _ in fuse([[("x", 1.0)], [("y", 1.0)]])] == ["x", "y"]
    assert fuse([[], []]) == []
    with pytest.raises(ValueError, match="fusion must be one of"):
        fuse([LEXICAL], fusion="borda")
    with pytest.raises(ValueError, match="one weight per ranking"):
        fuse([LEXICAL, DENSE], weights=[1.0])


# ---- the hybrid index --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ranker(bi_encoder):
    return Reranker(bi_encoder)


def new_hybrid(ranker, **options) -> HybridIndex:
    dense = MRLIndex(ranker, search_dim=ranker.embedding_dim, shortlist_factor=1)
    return HybridIndex({"bm25": BM25Index(), "dense": dense}, **options)


@pytest.mark.parametrize("fusion", ["rrf", "minmax", "zscore"])
def test_search_fuses_the_parts_rankings(ranker, fusion):
    hybrid = new_hybrid(ranker, fusion=fusion, weights={"bm25": 2.0}, candidates=5)
    hybrid.add(TEXTS, ids=[f"d{i}" for i in range(len(TEXTS))], metadatas=[{"i": i} for i in range(len(TEXTS))])
    for query in QUERIES:
        lists = [[(h.id, h.score) for h in hybrid.parts[name].search(query, k=5)] for name in ("bm25", "dense")]
        want = fuse(lists, fusion=fusion, weights=[2.0, 1.0])[:3]
        hits = hybrid.search(query, k=3)
        assert [(h.id, h.score) for h in hits] == [(d, pytest.approx(s)) for d, s in want]
        assert [h.metadata["i"] for h in hits] == [int(d[1:]) for d, _ in want]
        # per-call settings
        plain = hybrid.search(query, k=3, fusion="rrf", weights={"bm25": 1.0}, candidates=8)
        want = fuse([[(h.id, h.score) for h in hybrid.parts[n].search(query, k=8)] for n in ("bm25", "dense")])
        assert [h.id for h in plain] == [d for d, _ in want[:3]]


def test_adds_replaces_and_deletes_reach_every_part(ranker):
    hybrid = new_hybrid(ranker)
    hybrid.add(TEXTS[:5], ids=list("abcde"))
    hybrid.add(["Bamboo is a giant grass."], ids=["b"], metadatas=[{"new": True}])
    hybrid.delete(["a", "d"])
    assert hybrid.ids == ["c", "e", "b"]
    for part in hybrid.parts.values():
        assert part.ids == hybrid.ids and part.get("b").text == "Bamboo is a giant grass."
    assert hybrid.get("b").metadata == {"new": True}
    assert hybrid.search("bamboo grass", k=1)[0].id == "b"
    with pytest.raises(KeyError, match="nothing was deleted"):
        hybrid.delete(["c", "zz"])
    assert all(part.ids == ["c", "e", "b"] for part in hybrid.parts.values())
    # given vectors go to their parts
    vectors = hybrid.encode_documents(["Hamlet is a play."])
    hybrid.add_vectors(["Hamlet is a play."], vectors, ids=["h"])
    assert hybrid.search("who wrote Hamlet?", k=1)[0].id == "h"


def test_save_load_round_trip(ranker, tmp_path):
    hybrid = new_hybrid(ranker, fusion="minmax", weights={"bm25": 0.3, "dense": 0.7})
    hybrid.add(TEXTS, metadatas=[{"i": i} for i in range(len(TEXTS))])
    before = hybrid.search_many(QUERIES, k=4)
    hybrid.save(tmp_path / "hybrid")
    manifest = json.loads((tmp_path / "hybrid" / "manifest.json").read_text())
    assert manifest["parts"] == {"bm25": "rag-retrieval-bm25-index", "dense": "rag-retrieval-mrl-index"}
    loaded = HybridIndex.load(tmp_path / "hybrid")  # the dense part's model from its own manifest
    assert loaded.ids == hybrid.ids and loaded.weights == {"bm25": 0.3, "dense": 0.7}
    assert loaded.search_many(QUERIES, k=4) == before
    again = HybridIndex.load(tmp_path / "hybrid", models={"dense": ranker}, fusion="rrf")
    assert again.fusion == "rrf" and again.parts["dense"].model is ranker
    with pytest.raises(ValueError, match="unknown part"):
        HybridIndex.load(tmp_path / "hybrid", models={"sparse": ranker})
    with pytest.raises(TypeError, match="without a model"):
        HybridIndex.load(tmp_path / "hybrid", model=ranker)


def test_parts_that_drifted_apart_are_refused(ranker, tmp_path):
    hybrid = new_hybrid(ranker)
    hybrid.add(TEXTS, ids=[str(i) for i in range(len(TEXTS))])
    hybrid.save(tmp_path / "hybrid")
    part = tmp_path / "hybrid" / "parts" / "bm25"
    # a part saved again behind the hybrid's back, with the same documents: its manifest changed
    shutil.rmtree(part)
    resaved = BM25Index(k1=1.0)
    resaved.add(TEXTS, ids=[str(i) for i in range(len(TEXTS))])
    resaved.save(part)
    with pytest.raises(CorruptIndexError, match="parts/bm25/manifest.json is corrupted"):
        HybridIndex.load(tmp_path / "hybrid")
    assert HybridIndex.load(tmp_path / "hybrid", verify=False).parts["bm25"].k1 == 1.0
    # ... and with a document less: the parts no longer hold the same ids
    resaved.delete(["0"])
    resaved.save(part)
    for verify in (True, False):
        with pytest.raises(CorruptIndexError, match="holds other documents"):
            HybridIndex.load(tmp_path / "hybrid", verify=verify)


def test_bad_parts_and_settings(ranker):
    with pytest.raises(TypeError, match="non-empty dict"):
        HybridIndex({})
    bm25 = BM25Index()
    with pytest.raises(ValueError, match="two parts"):
        HybridIndex({"a": bm25, "b": bm25})
    with pytest.raises(ValueError, match="names a folder"):
        HybridIndex({"a/b": bm25})
    with pytest.raises(TypeError, match="must be an index"):
        HybridIndex({"a": "bm25"})
    with pytest.raises(ValueError, match="unknown part"):
        HybridIndex({"bm25": bm25}, weights={"dense": 1.0})
    with pytest.raises(ValueError, match=">= 0"):
        HybridIndex({"bm25": bm25}, weights={"bm25": -1.0})
    with pytest.raises(ValueError, match="fusion must be one of"):
        HybridIndex({"bm25": bm25}, fusion="max")
    full = BM25Index()
    full.add(TEXTS[:2], ids=["x", "y"])
    with pytest.raises(ValueError, match="holds other documents"):
        HybridIndex({"bm25": full, "other": BM25Index(stemmer=None)})
    # parts holding the same documents are taken as they are
    same = BM25Index(stemmer=None)
    same.add(TEXTS[:2], ids=["x", "y"])
    assert HybridIndex({"a": full, "b": same}).ids == ["x", "y"]
    vectors_only = MRLIndex(dim=4)
    with pytest.raises(ValueError, match="part 'dense'.*no model"):
        HybridIndex({"bm25": BM25Index(), "dense": vectors_only}).check_encodes_queries()
