"""The reranker trainer end to end on tiny models: every trained checkpoint loads in
``Reranker(path)`` with no arguments and in the peers (sentence-transformers CrossEncoder,
FlagReranker, FlagLLMReranker) with equal scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from kit import checkpoints
from kit.peers import import_peer
from kit.train_data import SENTENCES, query_of, write_grouped

from rag_retrieval_integrations import Reranker
from rag_retrieval_train.cli import main
from rag_retrieval_train.config import ConfigError
from rag_retrieval_train.reranker import RerankerTrainConfig, RerankerTrainingRun

PAIRS = [
    ("what is a panda?", "The giant panda is a bear native to China."),
    ("what is a panda?", "Paris is the capital and most populous city of France."),
    ("capital of france", "Paris is the capital and most populous city of France."),
    ("capital of france", "Python is a programming language that lets you work quickly."),
]


def write_pointwise(path: Path, n: int = 12) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            pos = SENTENCES[i % len(SENTENCES)]
            neg = SENTENCES[(i + 7) % len(SENTENCES)]
            f.write(json.dumps({"query": query_of(pos), "content": pos, "label": 2}) + "\n")
            f.write(json.dumps({"query": query_of(pos), "content": neg, "label": 0}) + "\n")
    return path


def options(model, tmp_path, **overrides):
    values = {
        "model_name_or_path": str(model),
        "train_data": str(write_grouped(tmp_path / "train.jsonl")),
        "output_dir": str(tmp_path / "out"),
        "batch_size": 4,
        "max_steps": 3,
        "logging_steps": 1,
        "learning_rate": 1e-3,
        "report_to": [],
        "disable_progress_bar": True,
        "max_length": 64,
        "train_group_size": 3,
    }
    values.update(overrides)
    return values


def train(**values) -> Path:
    return Path(RerankerTrainingRun(RerankerTrainConfig(**values)).run())


def test_cross_encoder_from_a_bi_encoder_loads_in_sentence_transformers_and_flag(bi_encoder, tmp_path):
    FlagReranker = import_peer("FlagEmbedding").FlagReranker
    from sentence_transformers import CrossEncoder
    from torch import nn

    argv = ["reranker"] + [
        token
        for key, value in options(
            bi_encoder, tmp_path, loss="bce", train_data=str(write_pointwise(tmp_path / "p.jsonl"))
        ).items()
        for token in (f"--{key}", value if isinstance(value, str) else json.dumps(value))
    ]
    assert main(argv) == 0
    out = tmp_path / "out"
    metadata = json.loads((out / "rag_retrieval.json").read_text())
    assert metadata["model_type"] == "cross-encoder" and metadata["label_scale"] == 2.0
    assert metadata["training"]["steps"] == 3 and (out / "loss_curve.png").exists()

    ours = np.array(Reranker(out).compute_score(PAIRS))
    assert type(Reranker(out)).__name__ == "CrossEncoderReranker"
    st = CrossEncoder(str(out), device="cpu", activation_fn=nn.Identity()).predict(PAIRS)
    flag = FlagReranker(str(out), use_fp16=False, devices="cpu").compute_score(PAIRS)
    np.testing.assert_allclose(ours, st, atol=1e-5)
    np.testing.assert_allclose(ours, flag, atol=1e-5)


@pytest.mark.parametrize("loss", ["listwise_ce", "ranknet", "listnet", "mse"])
def test_group_and_pointwise_losses_train_a_cross_encoder(bert_cross_encoder, tmp_path, loss):
    before = np.array(Reranker(bert_cross_encoder).compute_score(PAIRS))
    out = train(**options(bert_cross_encoder, tmp_path, loss=loss))
    after = np.array(Reranker(out).compute_score(PAIRS))
    assert not np.allclose(before, after, atol=1e-4), "training must change the scores"


def test_yes_token_llm_reranker_loads_in_flag_llm_reranker_with_its_template(decoder_llm, tmp_path):
    FlagLLMReranker = import_peer("FlagEmbedding").FlagLLMReranker

    template = {"prompt": "Is the passage relevant? Answer Yes or No.", "query_instruction": "Q: "}
    out = train(**options(decoder_llm, tmp_path, loss="listwise_ce", prompt_template=template))
    metadata = json.loads((out / "rag_retrieval.json").read_text())
    assert metadata["model_type"] == "llm"
    assert metadata["reranker_options"]["prompt_format"]["template"]["prompt"] == template["prompt"]

    ranker = Reranker(out)  # no arguments: template and yes token come from the metadata
    assert ranker.prompt_template.query_instruction == "Q: "
    ours = np.array(ranker.compute_score(PAIRS))
    flag = FlagLLMReranker(
        str(out),
        use_fp16=False,
        devices="cpu",
        query_instruction_for_rerank="Q: ",
        passage_instruction_for_rerank="B: ",
    )
    theirs = flag.compute_score(PAIRS, prompt=template["prompt"], max_length=512)
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_a_qwen3_reranker_trains_in_its_format_and_reloads_in_it_without_being_told(qwen3_reranker, tmp_path):
    with pytest.raises(ConfigError, match="prompt_format: unknown prompt_format 'qwen4'"):
        RerankerTrainConfig(**options(qwen3_reranker, tmp_path, prompt_format="qwen4")).validate()
    instruction = "Given a question, retrieve the passage that answers it"
    out = train(
        **options(qwen3_reranker, tmp_path, prompt_format="qwen3-reranker", instruction=instruction, max_length=256)
    )
    saved = json.loads((out / "rag_retrieval.json").read_text())["reranker_options"]["prompt_format"]
    assert saved["name"] == "qwen3-reranker" and saved["template"]["instruction"] == instruction
    ranker = Reranker(out)
    assert ranker.prompt_format.name == "qwen3-reranker" and (ranker.yes_token, ranker.no_token) == ("yes", "no")
    assert ranker.prompt_template.instruction == instruction
    (tmp_path / "again").mkdir()
    again = train(**options(out, tmp_path / "again", max_length=256))  # fine-tuning keeps the saved format
    assert Reranker(again).prompt_format == ranker.prompt_format


def test_llm_classifier_backbone_with_lora_merged(decoder_classifier, tmp_path):
    out = train(
        **options(
            decoder_classifier,
            tmp_path,
            backbone="llm-classifier",
            loss="listwise_ce",
            lora=True,
            max_length=256,
            lora_r=4,
            lora_alpha=8,
        )
    )
    metadata = json.loads((out / "rag_retrieval.json").read_text())
    assert metadata["model_type"] == "llm-classifier" and metadata["lora"]["merged"]
    assert not any("lora" in name for name in json.loads((out / "config.json").read_text()))
    ranker = Reranker(out)
    assert type(ranker).__name__ == "LLMClassifierReranker"
    scores = ranker.compute_score(PAIRS)
    assert len(scores) == 4 and np.isfinite(scores).all()
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert not any("lora" in key for key in f.keys())


def test_training_scores_are_inference_scores(bert_cross_encoder, tmp_path):
    """The forward pass the trainer optimizes is the one Reranker runs: same encoding, same head."""
    import torch

    from rag_retrieval_train.reranker import PairCollator, PairScorer, build_reranker

    config = RerankerTrainConfig(**options(bert_cross_encoder, tmp_path))
    scorer = build_reranker(config)
    module = PairScorer(scorer).eval()
    batch = PairCollator(scorer)([{"query": q, "document": d, "label": 1.0} for q, d in PAIRS])
    labels = batch.pop("labels")
    assert labels.shape == (4,)
    with torch.no_grad():
        trained_view = module(**batch).numpy()
    np.testing.assert_allclose(
        trained_view, Reranker(bert_cross_encoder, max_length=64).compute_score(PAIRS), atol=1e-5
    )


def test_group_loss_on_pointwise_only_data_without_positives_is_a_clear_error(bert_cross_encoder, tmp_path):
    data = tmp_path / "neg.jsonl"
    data.write_text(json.dumps({"query": "q", "content": "d", "label": 0}) + "\n")
    with pytest.raises(Exception, match="no line can form a training group"):
        train(**options(bert_cross_encoder, tmp_path, loss="listwise_ce", train_data=str(data)))


def test_distill_loss_needs_teacher_scores(bert_cross_encoder, tmp_path):
    with pytest.raises(ValueError, match=r"train\.jsonl:1: .*teacher scores"):
        train(**options(bert_cross_encoder, tmp_path, loss="distill_kl"))


def test_yes_token_llm_with_lora_resumes_and_merges(decoder_llm, tmp_path):
    """Intermediate checkpoints (the LoRA-wrapped model, tied embeddings) save and resume, and
    the merged result scores like FlagLLMReranker."""
    FlagLLMReranker = import_peer("FlagEmbedding").FlagLLMReranker

    values = options(
        decoder_llm,
        tmp_path,
        loss="listwise_ce",
        max_length=256,
        lora=True,
        lora_r=4,
        lora_alpha=8,
        save_steps=2,
        max_steps=2,
        keep_checkpoints=True,  # trained on below
    )
    train(**values)
    assert (tmp_path / "out" / "checkpoint-2").is_dir()
    out = train(**{**values, "max_steps": 3, "resume": True})
    assert json.loads((out / "rag_retrieval.json").read_text())["training"]["steps"] == 3
    ours = np.array(Reranker(out).compute_score(PAIRS))
    theirs = FlagLLMReranker(str(out), use_fp16=False, devices="cpu").compute_score(PAIRS, max_length=512)
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_a_two_logit_cross_encoder_trains_with_its_own_head(bert_cross_encoder, tmp_path):
    """A 2-label checkpoint's config.json holds id2label, not num_labels: the trainer used to load it
    with num_labels=1 and crash on the head's size mismatch; the family now keeps the head it has."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rag_retrieval_train.reranker import build_reranker

    two = tmp_path / "two-logit"
    model = AutoModelForSequenceClassification.from_pretrained(
        bert_cross_encoder, num_labels=2, ignore_mismatched_sizes=True
    )
    model.save_pretrained(two)
    AutoTokenizer.from_pretrained(bert_cross_encoder).save_pretrained(two)
    assert "num_labels" not in json.loads((two / "config.json").read_text())
    scorer = build_reranker(RerankerTrainConfig(**options(two, tmp_path)))
    assert scorer.model.config.num_labels == 2
    torch.testing.assert_close(scorer.model.classifier.weight, model.classifier.weight)
    assert scorer.model_type == "cross-encoder"


def test_backbones_come_from_the_families(bert_cross_encoder, decoder_llm, tmp_path):
    """Each backbone is its family's for_training; the options saved for Reranker(path) are the family's."""
    from rag_retrieval_integrations.core import CrossEncoderReranker, LLMClassifierReranker, LLMReranker
    from rag_retrieval_train.reranker import build_reranker

    cases = [
        (bert_cross_encoder, "auto", CrossEncoderReranker, set()),
        (decoder_llm, "auto", LLMReranker, {"prompt_format"}),
        (decoder_llm, "llm-classifier", LLMClassifierReranker, {"prompt_format"}),
    ]
    for model, backbone, family, saved in cases:
        scorer = build_reranker(RerankerTrainConfig(**options(model, tmp_path, backbone=backbone)))
        assert type(scorer) is family and set(scorer.reranker_options()) == saved
        assert scorer.max_length == 64


@pytest.mark.parametrize("lora", [False, True])
def test_decoder_with_tied_embeddings_saves_checkpoints_and_resumes(tmp_path, lora):
    """SmolLM2, Qwen2-0.5B and Gemma share the LM head with the input embeddings. The trainer's
    model (a PairScorer, not a PreTrainedModel) was saved with safetensors' save_file, which
    refuses two names for one tensor: every intermediate checkpoint crashed the run."""
    tied = checkpoints.build_decoder_llm(tmp_path / "tied-llm", tie_word_embeddings=True)
    values = options(
        tied, tmp_path, loss="listwise_ce", save_steps=1, max_steps=2, lora=lora, lora_r=4, keep_checkpoints=True
    )
    train(**values)
    assert (tmp_path / "out" / "checkpoint-2").is_dir()
    out = train(**{**values, "max_steps": 3, "resume": True})
    assert json.loads((out / "rag_retrieval.json").read_text())["training"]["steps"] == 3
    model = Reranker(out).model
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()


def test_intermediate_checkpoints_load_in_reranker_and_the_eval_cli(bert_cross_encoder, tmp_path, capsys):
    """docs/training.md advises evaluating checkpoints: checkpoint-N loads as the model it holds
    (the last one scores as the finished run), and the eval CLI takes it."""
    from rag_retrieval_integrations.evaluation.cli import main as eval_main

    out = train(**options(bert_cross_encoder, tmp_path, save_steps=1, max_steps=2, keep_checkpoints=True))
    last = Reranker(out / "checkpoint-2")
    assert last.model_type == "cross-encoder"
    np.testing.assert_allclose(last.compute_score(PAIRS), Reranker(out).compute_score(PAIRS), atol=1e-6)
    first = Reranker(out / "checkpoint-1").compute_score(PAIRS)
    assert not np.allclose(first, last.compute_score(PAIRS))  # the step-1 weights, not the final ones
    data = tmp_path / "set.jsonl"
    candidates = [{"content": PAIRS[0][1], "label": 1}, {"content": PAIRS[1][1], "label": 0}]
    data.write_text(json.dumps({"query": PAIRS[0][0], "candidates": candidates}) + "\n")
    assert eval_main(["rerank", "--data", str(data), "--model", str(out / "checkpoint-1"), "--quiet"]) == 0
    assert "checkpoint-1 | cross-encoder |" in capsys.readouterr().out


def test_an_llm_checkpoint_loads_and_a_lora_one_is_refused_clearly(tmp_path):
    from rag_retrieval_integrations import InvalidCheckpointError

    tied = checkpoints.build_decoder_llm(tmp_path / "tied-llm", tie_word_embeddings=True)
    out = train(**options(tied, tmp_path, loss="listwise_ce", save_steps=2, max_steps=2, keep_checkpoints=True))
    np.testing.assert_allclose(
        Reranker(out / "checkpoint-2").compute_score(PAIRS), Reranker(out).compute_score(PAIRS), atol=1e-5
    )
    (tmp_path / "lora").mkdir()
    lora = train(
        **options(
            tied,
            tmp_path / "lora",
            loss="listwise_ce",
            save_steps=2,
            max_steps=2,
            keep_checkpoints=True,
            lora=True,
            lora_r=4,
        )
    )
    with pytest.raises(InvalidCheckpointError, match="intermediate checkpoint of a LoRA run"):
        Reranker(lora / "checkpoint-2")
