"""The trainers and data tools of ``rag-retrieval-train``, by sub-command name.

Kept apart from the CLI so that what needs the list (the CLI, the keys reference in
:mod:`.keys_doc`) imports it from here, and each trainer's module (and its optional
dependencies) is imported only when that trainer is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from .config import TrainConfig

# trainer name -> (module, config class, run function); imported only when that trainer runs,
# so one trainer's optional dependencies are not needed by another.
TRAINERS: dict[str, tuple[str, str, str]] = {
    "embedding": ("rag_retrieval_train.embedding", "EmbeddingTrainConfig", "train_embedding"),
    "reranker": ("rag_retrieval_train.reranker", "RerankerTrainConfig", "train_reranker"),
    "distill": ("rag_retrieval_train.distill", "DistillTrainConfig", "run_distill"),
    "colbert": ("rag_retrieval_train.colbert", "ColBERTTrainConfig", "train_colbert"),
    "sparse": ("rag_retrieval_train.sparse", "SparseTrainConfig", "train_sparse"),
}

# sub-commands that are data tools, not trainers: module with ``main(argv) -> int`` taking its own
# argparse options (no YAML config dataclass); ``rag-retrieval-train mine --help`` lists them.
TOOLS: dict[str, str] = {"mine": "rag_retrieval_train.mining"}


def load_trainer(name: str) -> tuple[type[TrainConfig], Callable[[Any], Any]]:
    """The config class and run function of the trainer ``name`` (its module imported now)."""
    module_name, config_name, run_name = TRAINERS[name]
    module = importlib.import_module(module_name)
    return getattr(module, config_name), getattr(module, run_name)
