"""The persistent ColBERT index: results equal exhaustive exact MaxSim, save/load/add/delete keep
them consistent, and a missing or corrupted folder is a clear error."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from kit import colbert as tc
from kit.checkpoints import CORPUS

from rag_retrieval_integrations import Reranker
from rag_retrieval_integrations.core import ColBERTIndex, CorruptIndexError, IndexNotFoundError

TEXTS = CORPUS[:23]
IDS = [f"doc-{i}" for i in range(len(TEXTS))]
QUERIES = ["what is a panda?", "who wrote Hamlet?", "how tall is Everest?", "capital of France", "snakes"]


@pytest.fixture(scope="module")
def colbert(tmp_path_factory):
    return Reranker(tc.build_tiny_colbert(tmp_path_factory.mktemp("index-model") / "tiny-colbert"))


@pytest.fixture(scope="module")
def built(colbert) -> ColBERTIndex:
    index = ColBERTIndex(colbert, faiss_index="ivf", nlist=4, nprobe=4, token_k=32, max_candidates=12)
    index.add(TEXTS, ids=IDS, metadatas=[{"n": i, "tag": f"t{i % 3}"} for i in range(len(TEXTS))])
    assert index.uses_faiss
    return index


def _results(index: ColBERTIndex, k: int = 5, **kwargs) -> list[list[tuple[str, float]]]:
    return [[(h.id, h.score) for h in hits] for hits in index.search_many(QUERIES, k=k, **kwargs)]


def _assert_same(a, b, atol=1e-5):
    assert [[i for i, _ in hits] for hits in a] == [[i for i, _ in hits] for hits in b]
    np.testing.assert_allclose([s for hits in a for _, s in hits], [s for hits in b for _, s in hits], atol=atol)


@pytest.mark.parametrize("faiss_index", ["ivf", "auto"])
def test_search_equals_exhaustive_maxsim(colbert, built, faiss_index):
    index = built
    if faiss_index == "auto":  # a small index: no FAISS, every search exhaustive
        index = ColBERTIndex(colbert)
        index.add(TEXTS, ids=IDS)
        assert not index.uses_faiss
    _assert_same(_results(index), _results(index, exhaustive=True))
    # ... and exhaustive search is the model's own ranking (float16 storage: scores within 1e-2)
    for query, hits in zip(QUERIES, index.search_many(QUERIES, k=5, exhaustive=True)):
        ranked = colbert.rank(query, TEXTS, top_k=5)
        assert [h.id for h in hits] == [IDS[i] for i in ranked.indices]
        np.testing.assert_allclose([h.score for h in hits], ranked.scores, atol=1e-2)


def test_hits_carry_text_metadata_and_rank(built):
    hits = built.search("what is a panda?", k=3)
    assert [h.rank for h in hits] == [1, 2, 3]
    assert all(h.text == TEXTS[IDS.index(h.id)] and h.metadata["n"] == IDS.index(h.id) for h in hits)
    assert built.search("what is a panda?", k=3, score_threshold=hits[1].score) == hits[:2]
    assert len(built) == 23 and built.get("doc-4").text == TEXTS[4]


def test_save_load_add_delete_stay_consistent(colbert, built, tmp_path):
    built.save(tmp_path / "index")
    loaded = ColBERTIndex.load(tmp_path / "index", colbert)
    _assert_same(_results(loaded), _results(built), atol=0)
    assert loaded.get("doc-7").metadata == {"n": 7, "tag": "t1"}

    # add + delete on the loaded index equals a fresh index of the final documents
    loaded.add(["The red panda lives in the Himalayas.", "A new text."], ids=["new-1", "new-2"])
    loaded.delete(["doc-0", "new-2", "doc-5"])
    final = {**{i: t for i, t in zip(IDS, TEXTS)}, "new-1": "The red panda lives in the Himalayas."}
    for gone in ("doc-0", "doc-5"):
        final.pop(gone)
    fresh = ColBERTIndex(colbert, faiss_index="none")
    fresh.add(list(final.values()), ids=list(final))
    _assert_same(_results(loaded, exhaustive=True), _results(fresh))
    _assert_same(_results(loaded), _results(fresh))
    assert "doc-0" not in loaded and len(loaded) == len(final)

    # a second save compacts the deleted rows and loads back the same
    loaded.save(tmp_path / "index")
    again = ColBERTIndex.load(tmp_path / "index")  # model from the manifest
    _assert_same(_results(again), _results(fresh))
    manifest = json.loads((tmp_path / "index" / "manifest.json").read_text())
    assert manifest["num_tokens"] == again.num_tokens == fresh.num_tokens
    assert manifest["num_documents"] == len(final)


def test_adding_an_existing_id_replaces_the_document(colbert):
    index = ColBERTIndex(colbert)
    index.add(["Paris is the capital of France.", "Pandas eat bamboo."], ids=["a", "b"])
    index.add(["The giant panda is a bear native to China."], ids=["a"], metadatas=[{"v": 2}])
    assert index.ids == ["b", "a"] and index.get("a").metadata == {"v": 2}
    assert index.search("what is a panda?", k=5)[0].id in {"a", "b"} and len(index.search("panda", k=5)) == 2


def test_precomputed_vectors_index_and_search_like_texts(colbert, built):
    index = ColBERTIndex(colbert, faiss_index="none")
    index.add_vectors(TEXTS, colbert.encode_documents(TEXTS), ids=IDS)
    _assert_same(_results(index), _results(built, exhaustive=True), atol=0)
    by_vectors = index.search_by_vectors(colbert.encode_queries(QUERIES), k=5)
    assert [[(h.id, h.score) for h in hits] for hits in by_vectors] == _results(index)
    with pytest.raises(ValueError, match=r"token_vectors\[0\] must be a \(tokens, 16\) array"):
        index.add_vectors(["a"], [np.zeros((3, 8))])


def test_bad_input_is_a_clear_error(colbert):
    index = ColBERTIndex(colbert)
    with pytest.raises(ValueError, match=r"ids\[1\] = 'x' is repeated"):
        index.add(["a", "b"], ids=["x", "x"])
    with pytest.raises(TypeError, match=r"metadatas\[0\] must be JSON-serializable"):
        index.add(["a"], metadatas=[{"f": object()}])
    with pytest.raises(ValueError, match="metadatas has 2 entries for 1 texts"):
        index.add(["a"], metadatas=[{}, {}])
    with pytest.raises(TypeError, match=r"texts\[0\] must be a str"):
        index.add([None])
    with pytest.raises(ValueError, match="faiss_index must be"):
        ColBERTIndex(colbert, faiss_index="flat")
    assert index.search("anything", k=3) == []  # empty index: no results, no error
    index.add(["a b c"], ids=["only"])
    with pytest.raises(KeyError, match="not in the index"):
        index.delete(["only", "missing"])
    assert "only" in index  # nothing was deleted
    with pytest.raises(ValueError, match="k must be a positive integer"):
        index.search("a", k=0)


def test_missing_or_corrupted_folder_is_a_clear_error(colbert, built, tmp_path):
    with pytest.raises(IndexNotFoundError, match="does not exist"):
        ColBERTIndex.load(tmp_path / "nowhere", colbert)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorruptIndexError, match="not a ColBERT index: it has no manifest.json"):
        ColBERTIndex.load(tmp_path / "empty", colbert)
    good = built.save(tmp_path / "good")

    def broken(name: str, damage) -> Path:
        folder = tmp_path / f"broken-{name}"
        shutil.copytree(good, folder)
        damage(folder)
        return folder

    def flip_byte(file: Path) -> None:
        data = bytearray(file.read_bytes())
        data[-3] ^= 0xFF
        file.write_bytes(bytes(data))

    cases = {
        "truncated": (
            lambda f: (f / "token_vectors.npy").write_bytes((f / "token_vectors.npy").read_bytes()[:-64]),
            r"token_vectors.npy is corrupted: \d+ bytes, the manifest says",
        ),
        "flipped": (lambda f: flip_byte(f / "token_vectors.npy"), "token_vectors.npy is corrupted: its SHA-256"),
        "missing": (lambda f: (f / "faiss.index").unlink(), "incomplete: faiss.index is missing"),
        "manifest": (lambda f: (f / "manifest.json").write_text("{not json"), "manifest.json is not valid JSON"),
    }
    for name, (damage, message) in cases.items():
        with pytest.raises(CorruptIndexError, match=message):
            ColBERTIndex.load(broken(name, damage), colbert)


def test_documents_file_with_a_repeated_id_is_refused(colbert, built, tmp_path):
    """Past the size check (same length) and with checksums off, the records themselves are checked."""
    folder = built.save(tmp_path / "index")
    docs = folder / "documents.jsonl"
    docs.write_text(docs.read_text().replace('"id": "doc-1",', '"id": "doc-0",', 1))
    with pytest.raises(CorruptIndexError, match="is inconsistent: documents.jsonl repeats an id"):
        ColBERTIndex.load(folder, colbert, verify=False)


def test_loading_with_a_model_of_another_dim_fails(built, tmp_path):
    other = Reranker(tc.build_tiny_colbert(tmp_path / "dim8", dim=8))
    built.save(tmp_path / "index")
    with pytest.raises(ValueError, match="8-dim token vectors but the index .* holds 16-dim"):
        ColBERTIndex.load(tmp_path / "index", other)


def test_loading_with_a_model_that_encodes_differently_warns(colbert, built, tmp_path, caplog):
    built.save(tmp_path / "index")
    longer = Reranker(colbert.model_name_or_path, query_length=colbert.query_length + 8)
    with caplog.at_level(logging.WARNING, logger="rag_retrieval_integrations"):
        ColBERTIndex.load(tmp_path / "index", colbert)
    assert "encodes differently" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="rag_retrieval_integrations"):
        ColBERTIndex.load(tmp_path / "index", longer)
    assert f"query_length: index {colbert.query_length}, model {colbert.query_length + 8}" in caplog.text


def test_real_squad_paragraphs_agree_with_exhaustive_search(colbert, shared_data):
    """Candidates from an IVF index over SQuAD text, then exact MaxSim: the top 10 of exhaustive search."""
    articles = json.loads((shared_data / "squad" / "squad_v1.1_dev_part1.json").read_text())["data"]
    paragraphs = [p for a in articles for p in a["paragraphs"]][:200]
    questions = [qa["question"] for p in paragraphs[::2] for qa in p["qas"][:1]]
    index = ColBERTIndex(colbert, faiss_index="ivf", nlist=32, nprobe=8, token_k=64, max_candidates=100)
    index.add([p["context"] for p in paragraphs])
    approx = index.search_many(questions, k=10)
    exact = index.search_many(questions, k=10, exhaustive=True)
    agreement = np.mean([len({h.id for h in a} & {h.id for h in e}) / 10 for a, e in zip(approx, exact)])
    assert agreement >= 0.99


@pytest.mark.slow
def test_squad_index_agrees_with_exhaustive_search_on_minilm(minilm_path, shared_data, tmp_path):
    """All 913 SQuAD paragraphs (about 117,000 token vectors: the default IVF index), 500 questions,
    a ColBERT on all-MiniLM-L6-v2 (seeded projection): recall@10 of the index against exhaustive MaxSim."""
    import torch

    from rag_retrieval_integrations.core import build_colbert_model

    torch.manual_seed(0)
    build_colbert_model(minilm_path).save(str(tmp_path / "minilm-colbert"))
    articles = json.loads((shared_data / "squad" / "squad_v1.1_dev_part1.json").read_text())["data"]
    paragraphs = [p for a in articles for p in a["paragraphs"]]
    questions = [qa["question"] for p in paragraphs for qa in p["qas"]]
    questions = [questions[i] for i in np.random.default_rng(0).choice(len(questions), 500, replace=False)]
    index = ColBERTIndex(tmp_path / "minilm-colbert")
    index.add([p["context"] for p in paragraphs])
    assert index.uses_faiss and index.num_tokens > 100_000
    approx = index.search_many(questions, k=10)
    exact = index.search_many(questions, k=10, exhaustive=True)
    agreement = np.mean([len({h.id for h in a} & {h.id for h in e}) / 10 for a, e in zip(approx, exact)])
    assert agreement >= 0.99
