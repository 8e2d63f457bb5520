"""Training losses.

Reranker losses (:mod:`.reranker_pointwise`, :mod:`.reranker_pairwise`, :mod:`.reranker_listwise`)
take score tensors, ``forward(scores, targets)``: ``(N,)`` for pointwise, ``(queries,
group_size)`` for the group losses, the scores coming from the core layer's ``forward_scores``.

Embedding losses use the sentence-transformers loss interface.

Each loss is an ``nn.Module`` built as ``Loss(model, ...)`` whose ``forward(sentence_features,
labels)`` plugs into ``SentenceTransformerTrainer``, with a pure ``compute_loss_from_embeddings``
for use on precomputed embeddings. What sentence-transformers already has (MNRL, its
MatryoshkaLoss, MSE ...) is not duplicated: :class:`InfoNCELoss` equals its MNRL and exists for
the FlagEmbedding-style temperature parameterization and rank-aware gathering; the others are
ours (per-query LLM-preference KL, Jasper/Stella distillation) or wrap ours (Matryoshka).
"""

from .colbert import ColBERTContrastiveLoss, ColBERTDistillKLLoss
from .embedding_distillation import EmbeddingDistillationLoss, relative_similarity_margin_loss
from .info_nce import InfoNCELoss
from .matryoshka import MatryoshkaLoss
from .preference_kl import PreferenceKLLoss
from .reranker_listwise import ListNetLoss, ListwiseCELoss, ListwiseKLCELoss, ListwiseKLLoss
from .reranker_pairwise import MarginMSELoss, RankNetLoss
from .reranker_pointwise import PointwiseBCELoss, PointwiseMSELoss

__all__ = [
    "ColBERTContrastiveLoss",
    "ColBERTDistillKLLoss",
    "EmbeddingDistillationLoss",
    "InfoNCELoss",
    "ListNetLoss",
    "ListwiseCELoss",
    "ListwiseKLCELoss",
    "ListwiseKLLoss",
    "MarginMSELoss",
    "MatryoshkaLoss",
    "PointwiseBCELoss",
    "PointwiseMSELoss",
    "PreferenceKLLoss",
    "RankNetLoss",
    "relative_similarity_margin_loss",
]
