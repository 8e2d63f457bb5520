"""Index persistence: atomic saves, the model recorded by absolute path and weights fingerprint."""

from __future__ import annotations

import pytest
import tiny_colbert as tc

from rag_retrieval_integrations import Reranker

pytest.importorskip("faiss")

from rag_retrieval_integrations.core.indexes import base as index_base  # noqa: E402
from rag_retrieval_integrations.core.indexes.colbert import ColBERTIndex  # noqa: E402
from rag_retrieval_integrations.core.indexes.mrl import MRLIndex  # noqa: E402

TEXTS = ["The giant panda is a bear.", "Pandas eat bamboo.", "Paris is the capital of France.", "A python is a snake."]
QUERY = "what do pandas eat?"


@pytest.fixture(scope="module")
def colbert_model(tmp_path_factory):
    return Reranker(tc.build_tiny_colbert(tmp_path_factory.mktemp("colbert") / "tiny-colbert"))


def indexes(bi_encoder, colbert_model):
    return [
        (MRLIndex, MRLIndex(Reranker(bi_encoder))),
        (ColBERTIndex, ColBERTIndex(colbert_model)),
    ]


def results(index):
    return [(h.id, round(h.score, 5)) for h in index.search(QUERY, k=3)]


def test_a_save_that_fails_midway_leaves_the_old_index(tmp_path, monkeypatch, bi_encoder, colbert_model):
    for cls, index in indexes(bi_encoder, colbert_model):
        folder = tmp_path / cls.__name__
        index.add(TEXTS[:2], ids=["a", "b"])
        index.save(folder)
        before = results(cls.load(folder))
        index.add(TEXTS[2:], ids=["c", "d"])

        def disk_full(*args, **kwargs):
            raise OSError(28, "No space left on device")

        with monkeypatch.context() as m:
            m.setattr(index_base, "write_documents", disk_full)  # the template writes it after the vectors
            with pytest.raises(OSError, match="No space left"):
                index.save(folder)
        assert results(cls.load(folder)) == before, cls.__name__
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no staging left
        index.save(folder)  # and a save that completes replaces it
        assert len(cls.load(folder)) == 4


def test_a_folder_holding_other_files_is_not_replaced(tmp_path, bi_encoder):
    (tmp_path / "notes.txt").write_text("mine")
    index = MRLIndex(Reranker(bi_encoder))
    index.add(TEXTS)
    with pytest.raises(ValueError, match=r"holds other files \(notes.txt\)"):
        index.save(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_retrained_model_behind_the_recorded_path_is_refused(tmp_path, bi_encoder):
    import shutil

    import tiny_checkpoints as kit

    from rag_retrieval_integrations.core.indexes.folder import CorruptIndexError

    model = tmp_path / "model"
    shutil.copytree(bi_encoder, model)
    index = MRLIndex(Reranker(model))
    index.add(TEXTS)
    index.save(tmp_path / "index")
    assert len(MRLIndex.load(tmp_path / "index")) == 4
    retrained = kit.build_bi_encoder(tmp_path / "retrained", seed=7)
    shutil.copy(retrained / "model.safetensors", model / "model.safetensors")  # same path, new weights
    with pytest.raises(CorruptIndexError, match=r"its weights changed \(fingerprint \w+, the index recorded \w+\)"):
        MRLIndex.load(tmp_path / "index")


def test_an_index_built_from_a_relative_path_loads_from_another_folder(tmp_path, monkeypatch, colbert_model):
    import shutil

    shutil.copytree(colbert_model.model_name_or_path, tmp_path / "work" / "my-colbert")
    monkeypatch.chdir(tmp_path / "work")
    index = ColBERTIndex(Reranker("./my-colbert"))
    index.add(TEXTS)
    index.save("index")
    before = results(index)
    monkeypatch.chdir(tmp_path)  # elsewhere: ./my-colbert does not exist here
    assert results(ColBERTIndex.load(tmp_path / "work" / "index")) == before
