"""The shipped fsdp.yaml wraps the transformer layers of every trainer's model (built on the CPU, FSDP not run)."""

from __future__ import annotations

from importlib import resources

import pytest
import yaml
from kit import checkpoints
from kit import colbert as tc

from rag_retrieval_train.cli import TRAINERS
from rag_retrieval_train.colbert import ColBERTTrainConfig, ColBERTTrainingRun
from rag_retrieval_train.distill import DistillTrainConfig, DistillTrainingRun
from rag_retrieval_train.embedding import EmbeddingTrainConfig, EmbeddingTrainingRun
from rag_retrieval_train.fsdp import configure_fsdp_wrap, transformer_layer_names
from rag_retrieval_train.reranker import PairScorer, RerankerTrainConfig, RerankerTrainingRun, build_reranker
from rag_retrieval_train.sparse import SparseTrainConfig, SparseTrainingRun

accelerate = pytest.importorskip("accelerate")


def fsdp_launch_env(monkeypatch):
    """The environment ``accelerate launch --config_file fsdp.yaml`` gives each process."""
    config = yaml.safe_load(resources.files("rag_retrieval_train").joinpath("accelerate_configs/fsdp.yaml").read_text())
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    for key, value in config["fsdp_config"].items():
        monkeypatch.setenv("FSDP_" + key.removeprefix("fsdp_").upper(), str(value))
    monkeypatch.delenv("FSDP_TRANSFORMER_CLS_TO_WRAP", raising=False)
    # these two need a GPU to build the plugin, and do not touch wrapping
    monkeypatch.setenv("FSDP_SYNC_MODULE_STATES", "false")
    monkeypatch.setenv("FSDP_CPU_RAM_EFFICIENT_LOADING", "false")


def wrapped_classes(model) -> set[str]:
    from accelerate.utils import FullyShardedDataParallelPlugin

    plugin = FullyShardedDataParallelPlugin()  # reads the launch environment, as the Trainer's Accelerator does
    plugin.set_auto_wrap_policy(model)
    return {cls.__name__ for cls in plugin.auto_wrap_policy.keywords["transformer_layer_cls"]}


def models(request, tmp_path):
    """What each trainer's ``build_model`` hands the Trainer (and so FSDP), with its layer class."""
    bert, llm, classifier, bi = (
        request.getfixturevalue(f) for f in ("bert_cross_encoder", "decoder_llm", "decoder_classifier", "bi_encoder")
    )
    common = {"train_data": str(tmp_path / "unused.jsonl"), "output_dir": str(tmp_path / "out")}
    backbone = tc.build_bert_backbone(tmp_path / "backbone")
    mlm = checkpoints.build_masked_lm(tmp_path / "mlm")
    runs = {
        "reranker (cross-encoder)": (RerankerTrainingRun(RerankerTrainConfig(str(bert), **common)), "BertLayer"),
        "reranker (LLM)": (RerankerTrainingRun(RerankerTrainConfig(str(llm), **common)), "Qwen2DecoderLayer"),
        "reranker (LLM classifier)": (
            RerankerTrainingRun(RerankerTrainConfig(str(classifier), backbone="llm-classifier", **common)),
            "Qwen2DecoderLayer",
        ),
        "reranker (LoRA)": (RerankerTrainingRun(RerankerTrainConfig(str(bert), lora=True, **common)), "BertLayer"),
        "distill": (DistillTrainingRun(DistillTrainConfig(str(bert), step="student", **common)), "BertLayer"),
        "embedding": (EmbeddingTrainingRun(EmbeddingTrainConfig(str(bi), **common)), "BertLayer"),
        "embedding (LLM)": (EmbeddingTrainingRun(EmbeddingTrainConfig(str(llm), **common)), "Qwen2DecoderLayer"),
        "colbert": (ColBERTTrainingRun(ColBERTTrainConfig(str(backbone), **common)), "BertLayer"),
        "sparse": (SparseTrainingRun(SparseTrainConfig(str(mlm), **common)), "BertLayer"),
    }
    return {name: (run, run.build_model(), layer) for name, (run, layer) in runs.items()}


def test_every_trainer_model_gets_its_transformer_layers_wrapped(request, tmp_path, monkeypatch):
    built = models(request, tmp_path)
    # every sub-command of the CLI is covered (a new trainer must be added here)
    assert {type(run).name for run, _, _ in built.values()} == set(TRAINERS)
    for name, (run, model, layer) in built.items():
        if type(run) in (RerankerTrainingRun, DistillTrainingRun):
            assert isinstance(model, PairScorer), name  # the reranker trainers hand over the wrapper
        fsdp_launch_env(monkeypatch)
        configure_fsdp_wrap(model)
        assert layer in wrapped_classes(model), name
        assert layer in transformer_layer_names(model), name


def test_a_users_own_layer_choice_is_kept(bert_cross_encoder, tmp_path, monkeypatch):
    common = {"train_data": str(tmp_path / "unused.jsonl"), "output_dir": str(tmp_path / "out")}
    model = PairScorer(build_reranker(RerankerTrainConfig(model_name_or_path=str(bert_cross_encoder), **common)))
    fsdp_launch_env(monkeypatch)
    monkeypatch.setenv("FSDP_TRANSFORMER_CLS_TO_WRAP", "BertEmbeddings")
    configure_fsdp_wrap(model)
    assert wrapped_classes(model) == {"BertEmbeddings"}
