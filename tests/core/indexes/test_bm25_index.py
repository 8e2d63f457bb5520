"""The BM25 index: scores equal to ``bm25s``'s own, the analyzer, add/replace/delete, persistence, errors."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

bm25s = pytest.importorskip("bm25s")
Stemmer = pytest.importorskip("Stemmer")

from kit.texts import QUERIES, TEXTS

from rag_retrieval_integrations.core import BM25Index, CorruptIndexError

MORE_QUERIES = [*QUERIES, "pandas eating bamboo", "giant bear of China", "tower in Paris", "snakes of Asia"]


def reference(texts: list[str], *, stemmer: str | None = "english", **bm25_options) -> tuple[object, object]:
    """``bm25s`` used as its README shows, on the same corpus: the retriever and its stemmer."""
    stem = None if stemmer is None else Stemmer.Stemmer(stemmer)
    retriever = bm25s.BM25(**bm25_options)
    retriever.index(bm25s.tokenize(texts, stopwords="en", stemmer=stem, show_progress=False), show_progress=False)
    return retriever, stem


def reference_scores(retriever, stem, query: str) -> np.ndarray:
    terms = bm25s.tokenize([query], stopwords="en", stemmer=stem, return_ids=False, show_progress=False)[0]
    known = [t for t in terms if t in retriever.vocab_dict]
    return retriever.get_scores(known) if known else np.zeros(retriever.scores["num_docs"], np.float32)


@pytest.mark.parametrize(
    ("options", "stemmer"),
    [
        ({}, "english"),
        ({}, None),
        ({"method": "robertson", "k1": 1.2, "b": 0.5}, "english"),
        ({"method": "bm25+"}, None),
    ],
)
def test_scores_equal_bm25s_on_the_same_corpus(options, stemmer):
    index = BM25Index(stemmer=stemmer, **options)
    index.add(TEXTS, ids=[str(i) for i in range(len(TEXTS))])
    retriever, stem = reference(TEXTS, stemmer=stemmer, **options)
    for query in MORE_QUERIES:
        want = reference_scores(retriever, stem, query)
        got, matched = index.score_rows(index.encode_queries([query])[0])
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
        hits = index.search(query, k=len(TEXTS))
        # the documents holding a query term, by bm25s's score, best first
        assert [h.score for h in hits] == pytest.approx(sorted(want[matched], reverse=True), abs=1e-6)
        assert {h.id for h in hits} == {str(i) for i in np.flatnonzero(matched)}
        assert [h.rank for h in hits] == list(range(1, len(hits) + 1))


def test_the_analyzer_stems_and_drops_stopwords():
    stemmed, plain = BM25Index(), BM25Index(stemmer=None)
    for index in (stemmed, plain):
        index.add(TEXTS, ids=[str(i) for i in range(len(TEXTS))])
    assert stemmed.encode_queries(["Are the pandas eating?"]) == [["panda", "eat"]]
    assert plain.encode_queries(["Are the pandas eating?"]) == [["pandas", "eating"]]
    # "pandas" meets "panda" only through the stemmer
    assert {h.id for h in stemmed.search("pandas", k=8)} == {"0", "2", "4"}
    assert {h.id for h in plain.search("pandas", k=8)} == {"2"}
    # no query term in the corpus, or only stopwords: nothing matches, nothing is returned
    assert stemmed.search("the of and", k=3) == [] and stemmed.search("zebra", k=3) == []
    custom = BM25Index(stopwords=["panda"], stemmer=None, lower=False)
    assert custom.encode_queries(["Giant panda Bear"]) == [["Giant", "Bear"]]


def test_add_replaces_and_delete_recomputes_the_statistics():
    index = BM25Index()
    index.add(TEXTS, ids=[f"d{i}" for i in range(len(TEXTS))], metadatas=[{"i": i} for i in range(len(TEXTS))])
    index.add(["Bamboo is a giant grass."], ids=["d3"], metadatas=[{"new": True}])
    index.delete(["d0", "d7"])
    assert index.ids == ["d1", "d2", "d4", "d5", "d6", "d3"]
    assert index.get("d3").text == "Bamboo is a giant grass." and index.get("d3").metadata == {"new": True}
    fresh = BM25Index()
    fresh.add([index.get(i).text for i in index.ids], ids=index.ids)
    retriever, stem = reference([index.get(i).text for i in index.ids])
    for query in MORE_QUERIES:
        got, want = index.search(query, k=6), fresh.search(query, k=6)
        assert [(h.id, h.score) for h in got] == [(h.id, h.score) for h in want]
        # the document frequencies and average length are the remaining corpus's, as bm25s computes them
        np.testing.assert_allclose(
            index.score_rows(index.encode_queries([query])[0])[0], reference_scores(retriever, stem, query), atol=1e-6
        )
    index.delete(index.ids)
    assert len(index) == 0 and index.search("panda", k=3) == []


def test_save_load_round_trip_and_scoring_overrides(tmp_path):
    index = BM25Index(stopwords=["the", "is"], stemmer="english", k1=1.2)
    ids = index.add(TEXTS, metadatas=[{"i": i} for i in range(len(TEXTS))])
    index.delete([ids[1]])
    before = index.search_many(MORE_QUERIES, k=4)
    index.save(tmp_path / "bm25")
    manifest = json.loads((tmp_path / "bm25" / "manifest.json").read_text())
    assert manifest["analyzer"]["stopwords"] == ["the", "is"] and manifest["bm25"]["k1"] == 1.2
    loaded = BM25Index.load(tmp_path / "bm25")
    assert loaded.ids == index.ids and loaded.k1 == 1.2 and loaded.analyzer == index.analyzer
    assert loaded.search_many(MORE_QUERIES, k=4) == before
    # scoring settings may change at load: the matrix is rebuilt from the stored terms
    rescored = BM25Index.load(tmp_path / "bm25", k1=2.0, b=0.3)
    fresh = BM25Index(stopwords=["the", "is"], k1=2.0, b=0.3)
    fresh.add([index.get(i).text for i in index.ids], ids=index.ids)
    for got, want in zip(rescored.search_many(MORE_QUERIES, k=4), fresh.search_many(MORE_QUERIES, k=4)):
        assert [(h.id, h.score) for h in got] == [(h.id, h.score) for h in want]
    loaded.add(["Bamboo is a giant grass."], ids=["new"])
    assert loaded.search("bamboo grass", k=1)[0].id == "new"
    with pytest.raises(TypeError, match="unexpected option.*stemmer"):
        BM25Index.load(tmp_path / "bm25", stemmer=None)  # the analyzer is fixed once documents are in
    with pytest.raises(TypeError, match="without a model"):
        BM25Index.load(tmp_path / "bm25", model="./some-model")


def test_changed_files_are_refused(tmp_path):
    index = BM25Index()
    index.add(TEXTS)
    index.save(tmp_path / "bm25")
    terms = np.load(tmp_path / "bm25" / "terms.npy")
    terms[0] = 10_000  # same size, another term id
    np.save(tmp_path / "bm25" / "terms.npy", terms)
    with pytest.raises(CorruptIndexError, match="terms.npy is corrupted"):
        BM25Index.load(tmp_path / "bm25")
    with pytest.raises(CorruptIndexError, match="outside the vocabulary"):
        BM25Index.load(tmp_path / "bm25", verify=False)


def test_bad_arguments():
    with pytest.raises(ValueError, match="method must be one of"):
        BM25Index(method="bm26")
    with pytest.raises(ValueError, match=r"b must be in \[0.0, 1.0\]"):
        BM25Index(b=1.5)
    with pytest.raises(TypeError, match="k1 must be a number"):
        BM25Index(k1="high")
    with pytest.raises(ValueError, match="not a Snowball language"):
        BM25Index(stemmer="klingon")
    with pytest.raises(TypeError, match="Snowball language name or None"):
        BM25Index(stemmer=Stemmer.Stemmer("english"))
    index = BM25Index()
    with pytest.raises(ValueError, match="one list of terms per text"):
        index.add_vectors(["a text"], [["a"], ["b"]])
    with pytest.raises(TypeError, match="list of term strings"):
        index.add_vectors(["a text"], ["text"])
    with pytest.raises(ValueError, match="k must be a positive integer"):
        index.search("panda", k=0)


def test_a_missing_bm25s_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "bm25s", None)
    with pytest.raises(ImportError, match=r"rag-retrieval\[bm25\]"):
        BM25Index()
