"""Distillation of an LLM's (or any teacher's) preference over each query's documents, REPLUG style."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import EmbeddingLoss, check_columns, check_positive, label_tensor

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


class PreferenceKLLoss(EmbeddingLoss):
    """KL divergence from a teacher's preference over a query's documents to the embedder's cosine scores.

    Formula, for B queries q_i, each with its own n documents d_i1..d_in and teacher scores
    y_i1..y_in (e.g. an LLM's log-likelihood of the answer given each document)::

        P_i = softmax_j( y_ij / teacher_temperature )            teacher distribution
        Q_i = softmax_j( cos(q_i, d_ij) / temperature )          student distribution
        loss = 1/B * sum_i KL(P_i || Q_i) = 1/B * sum_i sum_j P_ij * (log P_ij - log Q_ij)

    Each softmax runs over that query's own n documents only, never across queries, so the loss
    does not depend on the order of the batch. (The original RAG-Retrieval code took one softmax
    over the whole flattened batch, which mixed queries as soon as the data was shuffled.) The
    loss is 0 exactly when Q_i = P_i for every query. The direction is KL(teacher || student),
    i.e. cross-entropy against the teacher's soft targets up to a constant (gradient
    (Q_ij - P_ij) / temperature on each cosine score), as in the original RAG-Retrieval code.
    REPLUG's LSR loss (Shi et al. 2023) writes the reverse direction, KL(retriever || LM); both
    vanish exactly when the two distributions agree.

    Args:
        model: the SentenceTransformer being trained.
        temperature: student temperature, > 0; default 0.05.
        teacher_temperature: teacher temperature, > 0; default 1.0 (teacher scores used as logits).

    Inputs (the columns the data layer produces):
        ``(query, doc_1, ..., doc_n)``, so that ``sentence_features = [q, d_1, ..., d_n]``, with
        column j holding every query's j-th document; and ``labels`` = teacher scores of shape
        ``(batch, n)``, from a ``"label"`` column holding a list of n floats per row. Every row
        has the same n.

    Example::

        from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
        from datasets import Dataset
        from rag_retrieval_train.losses import PreferenceKLLoss

        model = SentenceTransformer("BAAI/bge-small-en-v1.5")
        train_dataset = Dataset.from_dict({
            "query": ["what is a panda?"],
            "doc_1": ["The giant panda is a bear native to China."],
            "doc_2": ["Pandas is a Python library."],
            "doc_3": ["Red pandas live in the Himalayas."],
            "label": [[-0.3, -4.1, -1.2]],   # e.g. LLM log p(answer | query, doc)
        })
        loss = PreferenceKLLoss(model, temperature=0.05)
        SentenceTransformerTrainer(model=model, train_dataset=train_dataset, loss=loss).train()
    """

    def __init__(
        self,
        model: SentenceTransformer,
        temperature: float = 0.05,
        teacher_temperature: float = 1.0,
    ) -> None:
        super().__init__(model)
        self.temperature = check_positive(temperature, "temperature")
        self.teacher_temperature = check_positive(teacher_temperature, "teacher_temperature")

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None) -> Tensor:
        """The loss from ``[q, d_1, ..., d_n]`` embeddings (each ``(batch, dim)``) and ``(batch, n)`` teacher scores."""
        name = type(self).__name__
        check_columns(embeddings, name, "(query, doc_1, ..., doc_n)", 2)
        queries = F.normalize(embeddings[0], p=2, dim=-1)
        docs = F.normalize(torch.stack(embeddings[1:], dim=1), p=2, dim=-1)  # (batch, n, dim)
        batch, n = docs.shape[:2]
        teacher = label_tensor(labels, name, f"teacher scores of shape (batch, n) = ({batch}, {n})", queries)
        if tuple(teacher.shape) != (batch, n):
            raise ValueError(
                f"{name}: labels have shape {tuple(teacher.shape)} but the batch has {batch} queries with "
                f"{n} documents each; expected ({batch}, {n})"
            )
        student_scores = torch.einsum("bd,bnd->bn", queries, docs) / self.temperature
        student_log_probs = F.log_softmax(student_scores, dim=-1)
        teacher_log_probs = F.log_softmax(teacher / self.teacher_temperature, dim=-1)
        # kl_div(input=log Q, target=log P, log_target=True) = sum P * (log P - log Q); batchmean divides by B.
        return F.kl_div(student_log_probs, teacher_log_probs, reduction="batchmean", log_target=True)

    def get_config_dict(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "teacher_temperature": self.teacher_temperature}

    @property
    def citation(self) -> str:
        return """
@misc{shi2023replug,
      title={REPLUG: Retrieval-Augmented Black-Box Language Models},
      author={Weijia Shi and Sewon Min and Michihiro Yasunaga and Minjoon Seo and Rich James and Mike Lewis and Luke Zettlemoyer and Wen-tau Yih},
      year={2023},
      eprint={2301.12652},
      archivePrefix={arXiv},
      primaryClass={cs.CL},
      url={https://arxiv.org/abs/2301.12652},
}
"""
