"""InfoNCE with in-batch and hard negatives over every candidate document of the batch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import EmbeddingLoss, check_columns, check_positive, cosine_matrix, gather_rows_with_grad

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


class InfoNCELoss(EmbeddingLoss):
    """Contrastive InfoNCE loss: each query must pick its own positive among all documents of the batch.

    Formula, for a batch of B queries q_i, each with a positive p_i and k hard negatives
    n_i1..n_ik (k >= 0). The candidate set D holds every document of the batch: all B positives
    and all B*k hard negatives, so other queries' positives and negatives are negatives too::

        loss = 1/B * sum_i  -log( exp(cos(q_i, p_i) / t) / sum_{d in D} exp(cos(q_i, d) / t) )

    This is cross-entropy over ``cos(q_i, d) / t`` for all d in D with target p_i. (The original
    RAG-Retrieval code scored a query only against its own positive and the hard negatives,
    leaving the other queries' positives out of the softmax; here they are in it.)

    With ``scale = 1 / temperature`` it is exactly sentence-transformers'
    ``MultipleNegativesRankingLoss(model, scale=1/temperature)`` with its defaults (cosine,
    ``directions=("query_to_doc",)``): same candidates, same values, same gradients.

    Args:
        model: the SentenceTransformer being trained.
        temperature: t in the formula, > 0. Default 0.02, FlagEmbedding's default for embedding
            models (and the original RAG-Retrieval trainer's); sentence-transformers' MNRL default
            ``scale=20`` corresponds to t = 0.05.
        gather_across_devices: when torch.distributed is initialized, all-gather the candidate
            documents of every process so each query also sees the other processes' documents
            as negatives. Gradients flow back to the local shard; the target of local query i
            is ``offset + i``, where offset is the number of rows held by lower ranks. Without
            a process group it does nothing.

    Inputs (the columns the data layer produces; labels are not used):
        ``(query, positive)`` or ``(query, positive, negative_1, ..., negative_k)``, so that
        ``sentence_features = [q, p, n_1, ..., n_k]``.

    Example::

        from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
        from datasets import Dataset
        from rag_retrieval_train.losses import InfoNCELoss

        model = SentenceTransformer("BAAI/bge-small-en-v1.5")
        train_dataset = Dataset.from_dict({
            "query": ["what is a panda?", "capital of France"],
            "positive": ["The giant panda is a bear native to China.", "Paris is the capital of France."],
            "negative_1": ["Pandas is a Python library.", "Lyon is a city in France."],
        })
        loss = InfoNCELoss(model, temperature=0.02)
        SentenceTransformerTrainer(model=model, train_dataset=train_dataset, loss=loss).train()
    """

    def __init__(
        self,
        model: SentenceTransformer,
        temperature: float = 0.02,
        gather_across_devices: bool = False,
    ) -> None:
        super().__init__(model)
        self.temperature = check_positive(temperature, "temperature")
        self.gather_across_devices = bool(gather_across_devices)

    @property
    def scale(self) -> float:
        """``1 / temperature``: the ``scale`` of the equivalent sentence-transformers MNRL."""
        return 1.0 / self.temperature

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None = None) -> Tensor:
        """The loss from ``[q, p, n_1, ..., n_k]`` embeddings, each ``(batch, dim)``; ``labels`` is ignored."""
        check_columns(embeddings, type(self).__name__, "(query, positive, negative_1, ..., negative_k)", 2)
        queries, documents = embeddings[0], list(embeddings[1:])
        offset = 0
        if self.gather_across_devices:
            documents, offset = gather_rows_with_grad(documents)
        # Candidate order: all positives, then every rank's first negatives, second negatives, ...
        # Positives come first, so query i's target is its row in the (gathered) positives.
        scores = cosine_matrix(queries, torch.cat(documents, dim=0)) / self.temperature
        targets = torch.arange(offset, offset + queries.size(0), device=queries.device)
        return F.cross_entropy(scores, targets)

    def get_config_dict(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "gather_across_devices": self.gather_across_devices}

    @property
    def citation(self) -> str:
        return """
@misc{oord2019representationlearningcontrastivepredictive,
      title={Representation Learning with Contrastive Predictive Coding},
      author={Aaron van den Oord and Yazhe Li and Oriol Vinyals},
      year={2019},
      eprint={1807.03748},
      archivePrefix={arXiv},
      primaryClass={cs.LG},
      url={https://arxiv.org/abs/1807.03748},
}
"""
