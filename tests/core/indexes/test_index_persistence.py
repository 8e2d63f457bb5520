"""Index persistence: atomic saves, the model recorded by absolute path and weights fingerprint."""

from __future__ import annotations

import numpy as np
import pytest
from kit import colbert as tc

from rag_retrieval_integrations import Reranker

pytest.importorskip("faiss")

from rag_retrieval_integrations.core.indexes import file_index as index_base  # noqa: E402
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
        # no staging left (the folder's lock file, .<name>.lock, stays beside it by design)
        hidden = [p.name for p in tmp_path.iterdir() if p.name.startswith(".") and not p.name.endswith(".lock")]
        assert hidden == [] and (tmp_path / f".{cls.__name__}.lock").is_file()
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

    from kit import checkpoints

    from rag_retrieval_integrations.core.indexes.folder import CorruptIndexError

    model = tmp_path / "model"
    shutil.copytree(bi_encoder, model)
    index = MRLIndex(Reranker(model))
    index.add(TEXTS)
    index.save(tmp_path / "index")
    assert len(MRLIndex.load(tmp_path / "index")) == 4
    retrained = checkpoints.build_bi_encoder(tmp_path / "retrained", seed=7)
    shutil.copy(retrained / "model.safetensors", model / "model.safetensors")  # same path, new weights
    with pytest.raises(
        CorruptIndexError, match=r"its weights changed \(fingerprint sha256:\w+, the index recorded sha256:\w+\)"
    ):
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


def _change_one_tensor(weights, name_part: str) -> str:
    """Add 1 to one tensor's values in place (same file size, same header): the name of the tensor."""
    import json as _json
    import struct

    import numpy as np

    raw = bytearray(weights.read_bytes())
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = _json.loads(raw[8 : 8 + header_len])
    name = next(n for n in sorted(header) if name_part in n and header[n]["dtype"] == "F32")
    start, end = (8 + header_len + offset for offset in header[name]["data_offsets"])
    values = np.frombuffer(bytes(raw[start:end]), dtype=np.float32) + 1.0
    raw[start:end] = values.tobytes()
    weights.write_bytes(bytes(raw))
    return name


def test_the_fingerprint_covers_every_byte_of_the_weights(tmp_path):
    """The earlier fingerprint sampled 16 blocks of 64 KiB and missed a change between them."""
    from safetensors.numpy import save_file

    from rag_retrieval_integrations.core.fingerprint import weights_fingerprint

    rng = np.random.default_rng(0)
    tensors = {f"layer.{i}.weight": rng.standard_normal(65536, dtype=np.float32) for i in range(16)}
    save_file(tensors, str(tmp_path / "model.safetensors"))  # 4 MiB: the sampled blocks covered a quarter of it
    before = weights_fingerprint(tmp_path)
    weights = tmp_path / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[150_000] ^= 0xFF  # one byte between the first two sampled blocks
    weights.write_bytes(bytes(raw))
    after = weights_fingerprint(tmp_path)
    assert before.startswith("sha256:") and after != before
    assert weights_fingerprint(tmp_path) == after  # cached per file version, still the same value


def test_an_index_refuses_a_model_with_one_layer_changed(tmp_path):

    from kit import checkpoints

    from rag_retrieval_integrations.core.indexes.folder import CorruptIndexError

    # 4 MB of weights, the layers at the end: where the earlier fingerprint's sampled blocks did not reach
    model = checkpoints.build_bi_encoder(tmp_path / "model", max_positions=32768)
    index = MRLIndex(Reranker(model))
    index.add(TEXTS)
    index.save(tmp_path / "index")
    _change_one_tensor(model / "model.safetensors", "layer.1.attention")
    with pytest.raises(CorruptIndexError, match="its weights changed"):
        MRLIndex.load(tmp_path / "index")


def test_an_index_saved_with_the_sampled_fingerprint_still_loads(tmp_path, bi_encoder):
    """Manifests written before whole-file fingerprints keep loading (checked the old way)."""
    import json as _json

    from rag_retrieval_integrations.core.fingerprint import legacy_weights_fingerprint

    index = MRLIndex(Reranker(bi_encoder))
    index.add(TEXTS)
    index.save(tmp_path / "index")
    manifest_path = tmp_path / "index" / "manifest.json"
    manifest = _json.loads(manifest_path.read_text())
    legacy = legacy_weights_fingerprint(bi_encoder)
    assert legacy is not None and not legacy.startswith("sha256:")
    manifest["model"]["weights_fingerprint"] = legacy
    manifest_path.write_text(_json.dumps(manifest))
    assert len(MRLIndex.load(tmp_path / "index")) == len(TEXTS)


def test_loads_while_another_thread_saves_see_whole_indexes(tmp_path, bi_encoder):
    """A save's swap and a load's reads used to interleave: about 30% of loads failed with a
    spurious 'SHA-256 differs' (or the folder missing, with verify=False)."""
    import threading

    model = Reranker(bi_encoder)
    index = MRLIndex(model)
    index.add(TEXTS)
    folder = tmp_path / "index"
    index.save(folder)
    stop, errors = threading.Event(), []

    def save_again() -> None:
        while not stop.is_set():
            try:
                index.save(folder)
            except Exception as e:  # noqa: BLE001 (collected for the assertion)
                errors.append(e)

    savers = [threading.Thread(target=save_again) for _ in range(2)]  # two savers: they take turns too
    for saver in savers:
        saver.start()
    try:
        for i in range(60):
            loaded = MRLIndex.load(folder, model=model, verify=i % 2 == 0)
            assert len(loaded) == len(TEXTS)
    finally:
        stop.set()
        for saver in savers:
            saver.join()
    assert errors == []
