"""model_type=None: the family comes from the checkpoint's own files, never from its name."""

from __future__ import annotations

import json
import shutil

import pytest

from rag_retrieval_integrations import InvalidCheckpointError, Reranker, UnknownModelTypeError
from rag_retrieval_integrations.core import (
    CrossEncoderReranker,
    EmbeddingModel,
    detect_model_type,
    read_checkpoint,
    write_metadata,
)


def test_sequence_classification_checkpoints_are_cross_encoders(bert_cross_encoder, xlmr_cross_encoder):
    for path in (bert_cross_encoder, xlmr_cross_encoder):
        assert detect_model_type(read_checkpoint(path)) == "cross-encoder"
        assert isinstance(Reranker(path), CrossEncoderReranker)


def test_sentence_transformers_folder_is_an_embedding_model(bi_encoder):
    assert detect_model_type(read_checkpoint(bi_encoder)) == "embedding"
    assert isinstance(Reranker(bi_encoder), EmbeddingModel)


def test_cross_encoder_saved_by_sentence_transformers(bert_cross_encoder, tmp_path):
    from sentence_transformers import CrossEncoder

    CrossEncoder(str(bert_cross_encoder), device="cpu").save(str(tmp_path / "st-ce"))
    assert detect_model_type(read_checkpoint(tmp_path / "st-ce")) == "cross-encoder"


def test_name_does_not_matter(bert_cross_encoder, bi_encoder, tmp_path):
    """A cross-encoder in a folder named like an embedding model is still a cross-encoder."""
    misleading = tmp_path / "all-MiniLM-embedding-bge-m3"
    shutil.copytree(bert_cross_encoder, misleading)
    assert detect_model_type(read_checkpoint(misleading)) == "cross-encoder"
    reranker_named = tmp_path / "bge-reranker-v2-m3"
    shutil.copytree(bi_encoder, reranker_named)
    assert detect_model_type(read_checkpoint(reranker_named)) == "embedding"


def test_our_metadata_wins(bi_encoder, tmp_path):
    folder = tmp_path / "with-metadata"
    shutil.copytree(bi_encoder, folder)
    write_metadata(folder, "cross-encoder")
    assert detect_model_type(read_checkpoint(folder)) == "cross-encoder"


def test_metadata_options_become_defaults(bert_cross_encoder, tmp_path):
    folder = tmp_path / "opts"
    shutil.copytree(bert_cross_encoder, folder)
    write_metadata(folder, "cross-encoder", reranker_options={"max_length": 48, "long_doc": "split-max"})
    ranker = Reranker(folder)
    assert (ranker.max_length, ranker.long_doc) == (48, "split-max")
    assert Reranker(folder, max_length=40).max_length == 40


def test_decoder_llm_is_detected_as_llm(decoder_llm):
    assert detect_model_type(read_checkpoint(decoder_llm)) == "llm"


def test_decoder_checkpoints_load_as_llm_families(decoder_llm, decoder_classifier):
    from rag_retrieval_integrations.core import LLMClassifierReranker, LLMReranker

    assert type(Reranker(decoder_llm)) is LLMReranker
    assert detect_model_type(read_checkpoint(decoder_classifier)) == "llm-classifier"
    assert type(Reranker(decoder_classifier)) is LLMClassifierReranker


def test_detected_family_without_implementation_is_a_clear_error(bi_encoder, tmp_path, monkeypatch):
    """A checkpoint whose metadata names a family that is not registered (e.g. a plugin family whose
    package is not imported) names the family and says how to choose one, instead of failing later;
    a multi-vector folder with no family to detect it is an error, not a bi-encoder."""
    from rag_retrieval_integrations.core.models import registry

    folder = tmp_path / "multi-vector"
    shutil.copytree(bi_encoder, folder)
    st_config = json.loads((folder / "config_sentence_transformers.json").read_text())
    (folder / "config_sentence_transformers.json").write_text(
        json.dumps({**st_config, "model_type": "MultiVectorEncoder"})
    )
    monkeypatch.delitem(registry._REGISTRY, "colbert")
    with pytest.raises(InvalidCheckpointError, match="MultiVectorEncoder checkpoints: pass model_type="):
        Reranker(folder)
    write_metadata(folder, "colbert")
    with pytest.raises(UnknownModelTypeError, match="'colbert'") as error:
        Reranker(folder)
    assert "no installed model family handles 'colbert'" in str(error.value)
    assert "model_type=" in str(error.value)  # and says how to choose one


def test_bare_encoder_asks_for_model_type(bi_encoder, tmp_path):
    from transformers import AutoModel, AutoTokenizer

    bare = tmp_path / "bare"
    AutoModel.from_pretrained(bi_encoder).save_pretrained(bare)
    AutoTokenizer.from_pretrained(bi_encoder).save_pretrained(bare)
    with pytest.raises(InvalidCheckpointError, match="model_type='embedding'"):
        Reranker(bare)
    ranker = Reranker(bare, model_type="embedding")
    assert len(ranker.rank("q", ["a", "b"])) == 2


def test_broken_json_names_the_file(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(InvalidCheckpointError, match="config.json"):
        read_checkpoint(tmp_path)


def test_metadata_file_is_json_with_version(tmp_path):
    path = write_metadata(tmp_path, "embedding", pooling="mean")
    data = json.loads(path.read_text())
    assert data == {"format_version": 1, "model_type": "embedding", "pooling": "mean"}


def test_factory_reads_the_checkpoint_once(bert_cross_encoder, monkeypatch):
    """Detection and loading share one read (for hub ids each read is a round of hub requests)."""
    import rag_retrieval_integrations.core.models.base as base
    import rag_retrieval_integrations.core.models.factory as factory

    calls = []
    original = factory.read_checkpoint

    def counting(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(factory, "read_checkpoint", counting)
    monkeypatch.setattr(base, "read_checkpoint", counting)
    ranker = Reranker(bert_cross_encoder)
    assert len(calls) == 1 and ranker.model_name_or_path == str(bert_cross_encoder)


def test_a_registered_family_takes_part_in_detection(bert_cross_encoder, tmp_path, monkeypatch):
    """A user's family declares how it recognizes its checkpoints; detection asks it in priority order."""
    import numpy as np

    from rag_retrieval_integrations import BaseReranker, available_model_types, register_model_type
    from rag_retrieval_integrations.core.models import registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @register_model_type("keyword-scorer")
    class KeywordScorer(BaseReranker):
        """Scores a pair by the query words found in the document."""

        detection_priority = 5  # before the built-in families

        @classmethod
        def matches(cls, info):
            return bool((info.config or {}).get("keyword_scorer"))

        def _score(self, queries, docs, batch_size):
            return np.array([sum(w in d.split() for w in q.split()) for q, d in zip(queries, docs)], dtype=float)

    folder = tmp_path / "keyword-ce"
    shutil.copytree(bert_cross_encoder, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "keyword_scorer": True}))

    assert "keyword-scorer" in available_model_types()
    assert registry.detection_order()[0] is KeywordScorer
    assert detect_model_type(read_checkpoint(folder)) == "keyword-scorer"
    ranker = Reranker(folder)
    assert isinstance(ranker, KeywordScorer)
    assert ranker.compute_score([("red apple", "an apple that is red"), ("red apple", "a pear")]) == [2.0, 0.0]
    # the checkpoint without the marker is what it was, and a subclass does not inherit a place in detection
    assert detect_model_type(read_checkpoint(bert_cross_encoder)) == "cross-encoder"
    register_model_type("keyword-scorer-v2")(type("KeywordScorerV2", (KeywordScorer,), {}))
    assert [f.model_type for f in registry.detection_order()].count("keyword-scorer-v2") == 0


def test_nothing_matching_lists_the_model_types(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(InvalidCheckpointError, match="cannot tell which model_type") as error:
        detect_model_type(read_checkpoint(tmp_path))
    assert "'cross-encoder'" in str(error.value) and "'embedding'" in str(error.value)


def test_an_option_a_family_sets_itself_is_refused_clearly(decoder_classifier):
    """llm-classifier sets yes_token itself: passing one used to fail inside the constructor with
    "got multiple values for keyword argument"; it is an unexpected option now, named as such."""
    with pytest.raises(TypeError, match="unexpected option"):
        Reranker(decoder_classifier, yes_token="Yes")
