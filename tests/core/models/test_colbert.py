"""The ColBERT family: MaxSim, the model (markers, [MASK] expansion, skiplist, projection, L2 norm),
loading of our / MultiVectorEncoder / PyLate / BGE-M3 checkpoints, ranking and long documents."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from kit import colbert as tc
from kit.peers import import_peer

from rag_retrieval_integrations import InvalidCheckpointError, Reranker
from rag_retrieval_integrations.core import ColBERTReranker, detect_model_type, read_checkpoint
from rag_retrieval_integrations.core.models.maxsim import maxsim, maxsim_pairwise

QUERY = "what is a panda?"
DOCS = [
    "The giant panda is a bear native to China.",
    "Paris is the capital and most populous city of France.",
    "Pandas eat bamboo, for most of the day.",
    "",
]


@pytest.fixture(scope="module")
def colbert_path(tmp_path_factory) -> Path:
    return tc.build_tiny_colbert(tmp_path_factory.mktemp("colbert") / "tiny-colbert")


@pytest.fixture(scope="module")
def pylate_path(tmp_path_factory) -> Path:
    return tc.build_pylate_colbert(tmp_path_factory.mktemp("colbert") / "pylate-colbert")


@pytest.fixture(scope="module")
def colbert(colbert_path) -> ColBERTReranker:
    return Reranker(colbert_path)


# ---- MaxSim ---------------------------------------------------------------------------------


def test_maxsim_equals_hand_computed_values():
    q = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    d1 = np.array([[1.0, 0.0], [0.6, 0.8], [-1.0, 0.0]], dtype=np.float32)
    d2 = np.array([[0.0, 1.0]], dtype=np.float32)
    # q1: max(1, .6, -1) = 1; q2: max(0, .8, 0) = .8 -> 1.8.   q1: 0, q2: 1 -> 1.0
    np.testing.assert_allclose(maxsim([q], [d1, d2]).numpy(), [[1.8, 1.0]], atol=1e-6)
    np.testing.assert_allclose(maxsim([q], [d1, d2], query_mean=True).numpy(), [[0.9, 0.5]], atol=1e-6)
    np.testing.assert_allclose(maxsim_pairwise([q, q[:1]], [d1, d2]).numpy(), [1.8, 0.0], atol=1e-6)
    # float16 storage (0.8 -> 0.7998) scores like float32, and a tiny memory budget changes nothing
    np.testing.assert_allclose(
        maxsim([q], [d1.astype(np.float16), d2], chunk_elements=1).numpy(), [[1.8, 1.0]], atol=1e-3
    )


def test_maxsim_masks_padding_instead_of_scoring_it():
    """A padded document row must not win the max over negative similarities (0 > -0.5)."""
    q = [torch.tensor([[1.0, 0.0]])]
    d = [torch.tensor([[-0.6, 0.8]]), torch.tensor([[-0.6, 0.8], [0.0, 1.0], [0.0, 1.0]])]
    np.testing.assert_allclose(maxsim(q, d).numpy(), [[-0.6, 0.0]], atol=1e-6)


def test_maxsim_rejects_misaligned_pairs():
    with pytest.raises(ValueError, match="one document per query"):
        maxsim_pairwise([np.ones((2, 3), np.float32)], [])


# ---- the model ------------------------------------------------------------------------------


def _reference_vectors(path: Path, text: str, is_query: bool) -> np.ndarray:
    """ColBERT by hand with transformers: marker, [MASK] padding not attended to, projection, skiplist, L2."""
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    encoder = AutoModel.from_pretrained(path).eval()
    weight = load_file(str(path / "1_Dense" / "model.safetensors"))["linear.weight"]
    skiplist = json.loads((path / "2_MultiVectorMask" / "config.json").read_text())["skiplist_words"]
    if is_query:
        enc = tokenizer("[Q] " + text, padding="max_length", max_length=12, truncation=True, return_tensors="pt")
        ids, mask = enc["input_ids"], enc["attention_mask"]
        ids = ids.masked_fill(mask == 0, tokenizer.mask_token_id)
        keep = torch.ones_like(ids, dtype=torch.bool)
    else:
        enc = tokenizer("[D] " + text, max_length=48, truncation=True, return_tensors="pt")
        ids, mask = enc["input_ids"], enc["attention_mask"]
        keep = ~torch.isin(ids, torch.tensor(tokenizer.convert_tokens_to_ids(skiplist)))
    with torch.no_grad():
        hidden = encoder(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).last_hidden_state
    vectors = torch.nn.functional.normalize(hidden[0] @ weight.T, dim=-1)
    return vectors[keep[0]].numpy()


def test_token_vectors_are_faithful_colbert(colbert, colbert_path):
    """Markers as one token, [MASK] expansion to query_length (scored, not attended to), the
    projection, the punctuation skiplist on documents and L2 normalization, checked by hand."""
    q = colbert.encode_queries([QUERY])[0]
    assert q.shape == (12, 16)  # every query is exactly query_length tokens
    np.testing.assert_allclose(q, _reference_vectors(colbert_path, QUERY, True), atol=1e-5)
    doc = DOCS[2]  # has a comma and a full stop, both skiplisted
    d = colbert.encode_documents([doc])[0]
    np.testing.assert_allclose(d, _reference_vectors(colbert_path, doc, False), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-5)
    tokenizer = colbert.model.tokenizer
    assert tokenizer.tokenize("[Q] what") == ["[Q]", "what"]
    assert len(d) == len(tokenizer("[D] " + doc)["input_ids"]) - 2  # ',' and '.' left out


@pytest.mark.parametrize("layout", ["ours", "pylate"])
def test_multi_vector_encoder_folders_match_sentence_transformers(layout, colbert_path, pylate_path):
    from sentence_transformers import MultiVectorEncoder

    path = colbert_path if layout == "ours" else pylate_path
    ours = Reranker(path)  # detected from the folder, no model_type
    assert isinstance(ours, ColBERTReranker)
    st = MultiVectorEncoder(str(path), device="cpu")
    for mine, theirs in zip(ours.encode_queries([QUERY]), st.encode_query([QUERY])):
        np.testing.assert_allclose(mine, theirs.numpy(), atol=1e-5)
    for mine, theirs in zip(ours.encode_documents(DOCS), st.encode_document(DOCS)):
        np.testing.assert_allclose(mine, theirs.numpy(), atol=1e-5)
    expected = st.similarity(st.encode_query([QUERY]), st.encode_document(DOCS))[0].numpy()
    np.testing.assert_allclose(ours.compute_score([(QUERY, d) for d in DOCS]), expected, atol=1e-5)
    assert ours.rank(QUERY, DOCS).indices == list(np.argsort(-expected, kind="stable"))


def test_pylate_settings_are_read(pylate_path):
    ranker = Reranker(pylate_path)
    assert (ranker.query_length, ranker.query_expansion, ranker.max_length) == (10, True, 40)
    assert ranker.model.tokenizer.tokenize("[Q] what") == ["[Q] ", "what"]


def test_bge_m3_matches_flagembedding(tmp_path):
    BGEM3FlagModel = import_peer("FlagEmbedding").BGEM3FlagModel

    path = tc.build_bge_m3(tmp_path / "bge-m3", colbert_dim=24)
    assert detect_model_type(read_checkpoint(path)) == "colbert"
    ours = Reranker(path)
    assert ours.query_mean and ours.embedding_dim == 24
    flag = BGEM3FlagModel(str(path), use_fp16=False, devices="cpu", colbert_dim=24)
    q = flag.encode_queries([QUERY], return_dense=False, return_colbert_vecs=True)["colbert_vecs"]
    d = flag.encode_corpus(DOCS[:3], return_dense=False, return_colbert_vecs=True)["colbert_vecs"]
    for mine, theirs in zip(ours.encode_queries([QUERY]) + ours.encode_documents(DOCS[:3]), q + d):
        np.testing.assert_allclose(mine, theirs, atol=1e-5)
    expected = flag.compute_score([(QUERY, doc) for doc in DOCS[:3]], weights_for_different_modes=[0, 0, 1])
    np.testing.assert_allclose(ours.compute_score([(QUERY, doc) for doc in DOCS[:3]]), expected["colbert"], atol=1e-5)


def test_detection_and_clear_errors(tmp_path, bi_encoder, colbert_path):
    assert detect_model_type(read_checkpoint(colbert_path)) == "colbert"
    stanford = tmp_path / "stanford"
    stanford.mkdir()
    (stanford / "config.json").write_text(json.dumps({"architectures": ["HF_ColBERT"], "model_type": "bert"}))
    assert detect_model_type(read_checkpoint(stanford)) == "colbert"
    with pytest.raises(InvalidCheckpointError, match="not a ColBERT checkpoint.*rag-retrieval-train colbert"):
        Reranker(bi_encoder, model_type="colbert")
    backbone = colbert_path.with_name(colbert_path.name + "-backbone")
    with pytest.raises(InvalidCheckpointError, match="no scoring head"):
        Reranker(backbone)  # a bare encoder has no projection: not silently a ColBERT with random weights


# ---- ranking options ------------------------------------------------------------------------


def test_rank_api_and_bad_input(colbert):
    ranked = colbert.rank(QUERY, DOCS, top_k=2)
    scores = colbert.compute_score([(QUERY, d) for d in DOCS])
    assert ranked.indices == list(np.argsort(-np.asarray(scores), kind="stable")[:2])
    many = colbert.rank_many([QUERY, "capital of France"], [DOCS, DOCS[:2]])
    assert [len(r) for r in many] == [4, 2] and many[0].scores == sorted(scores, reverse=True)
    assert colbert.rank(QUERY, []).indices == []
    with pytest.raises(TypeError, match=r"docs\[1\] must be a str"):
        colbert.rank(QUERY, ["ok", None])


def test_query_options(colbert_path, colbert):
    plain = Reranker(colbert_path, query_expansion=False)
    tokens = len(plain.model.tokenizer("[Q] " + QUERY)["input_ids"])
    assert plain.encode_queries([QUERY])[0].shape[0] == tokens < 12  # no [MASK] padding
    longer = Reranker(colbert_path, query_length=20)
    assert longer.encode_queries([QUERY])[0].shape[0] == 20
    mean = Reranker(colbert_path, query_mean=True)
    np.testing.assert_allclose(
        mean.compute_score([(QUERY, d) for d in DOCS]),
        np.asarray(colbert.compute_score([(QUERY, d) for d in DOCS])) / 12,
        atol=1e-5,
    )


def test_split_max_scores_the_best_window(colbert_path):
    long_doc = " ".join(["Mount Everest is the highest mountain above sea level."] * 6) + " The giant panda is a bear."
    truncate = Reranker(colbert_path, max_length=20)
    split = Reranker(colbert_path, max_length=20, long_doc="split-max", overlap=4)
    windows, _ = split._document_windows([long_doc])
    assert len(windows) > 2 and windows[-1].endswith("The giant panda is a bear.")
    best_window = max(truncate.compute_score([(QUERY, w) for w in windows]))
    assert split.compute_score([(QUERY, long_doc)])[0] == pytest.approx(best_window, abs=1e-5)
    assert best_window > truncate.compute_score([(QUERY, long_doc)])[0]
