"""The embedding, ColBERT and sparse trainers' losses by name (see :mod:`.specs`): the first entry of each
table is that trainer's default ``loss``; ``data`` names the training view (``"infonce"``:
positive + hard negatives, ``"preference"``: scored documents) or the teacher's vectors."""

from __future__ import annotations

from .specs import LossSpec, table


def _embedding() -> dict[str, LossSpec]:
    from .embedding_distillation import EmbeddingDistillationLoss
    from .info_nce import InfoNCELoss
    from .preference_kl import PreferenceKLLoss

    def distill(c, m):
        cosine, matrix, margin = c.distill_weights
        return EmbeddingDistillationLoss(m, cosine_weight=cosine, similarity_weight=matrix, margin_weight=margin)

    return table(
        LossSpec(
            "infonce",
            lambda c, m: InfoNCELoss(m, temperature=c.temperature, gather_across_devices=c.gather_across_devices),
            "infonce",
            "contrastive: the positive against in-batch and hard negatives",
        ),
        LossSpec(
            "preference",
            lambda c, m: PreferenceKLLoss(m, temperature=c.temperature, teacher_temperature=c.teacher_temperature),
            "preference",
            "KL from the softmax of scored documents (e.g. LLM preferences) to the student's",
        ),
        LossSpec("distill", distill, "teacher_vectors", "Jasper/Stella distillation of a teacher's vectors"),
    )


def _colbert() -> dict[str, LossSpec]:
    from .colbert import ColBERTContrastiveLoss, ColBERTDistillKLLoss

    def chunking(c):
        return {"chunk_elements": c.score_chunk_elements, "mini_batch_size": c.mini_batch_size}

    return table(
        LossSpec(
            "contrastive",
            lambda c, m: ColBERTContrastiveLoss(
                m, c.temperature, gather_across_devices=c.gather_across_devices, **chunking(c)
            ),
            "infonce",
            "the positive against in-batch and hard negatives, by MaxSim",
        ),
        LossSpec(
            "distill",
            lambda c, m: ColBERTDistillKLLoss(m, c.temperature, c.teacher_temperature, **chunking(c)),
            "preference",
            "KL from a teacher's scores over a query's documents to the student's MaxSim",
            2,
        ),
    )


def _sparse() -> dict[str, LossSpec]:
    def splade(c, m):
        from sentence_transformers.sparse_encoder.losses import SparseMultipleNegativesRankingLoss, SpladeLoss

        # inference-free models (a static query side) regularize documents only, as sentence-transformers
        # trains opensearch's models; SPLADE regularizes both sides
        query_weight = None if c.architecture == "inference-free" else c.query_regularizer_weight
        return SpladeLoss(
            m,
            SparseMultipleNegativesRankingLoss(m, scale=1.0 / c.temperature),
            document_regularizer_weight=c.document_regularizer_weight,
            query_regularizer_weight=query_weight,
            use_document_regularizer_only=query_weight is None,
        )

    return table(
        LossSpec(
            "splade",
            splade,
            "infonce",
            "SPLADE: the positive against in-batch and hard negatives by dot product, plus FLOPS regularizers "
            "that keep the term weights sparse",
        ),
    )


EMBEDDING_LOSSES: dict[str, LossSpec] = _embedding()
SPARSE_LOSSES: dict[str, LossSpec] = _sparse()
COLBERT_LOSSES: dict[str, LossSpec] = _colbert()
