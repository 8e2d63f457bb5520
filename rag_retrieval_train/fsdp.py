"""FSDP auto-wrap for every trainer: the transformer layers of whatever model a trainer hands over.

accelerate's ``TRANSFORMER_BASED_WRAP`` (the shipped ``fsdp.yaml``) wraps the classes named by
the *top* module's ``_no_split_modules``. The models our trainers train are wrappers:
sentence-transformers' ``SentenceTransformer`` and ``MultiVectorEncoder`` report ``[]``, and the
reranker trainer's ``PairScorer`` had no such attribute, so FSDP wrapped no layer at all and
sharded the whole model as one unit. Here the layer classes are read from the ``transformers``
models inside and handed to accelerate through ``FSDP_TRANSFORMER_CLS_TO_WRAP``, which it reads
when the ``Trainer`` builds its FSDP plugin.
"""

from __future__ import annotations

import logging
import os

import torch

logger = logging.getLogger(__name__)

WRAP_ENV = "FSDP_TRANSFORMER_CLS_TO_WRAP"


def transformer_layer_names(model: torch.nn.Module) -> list[str]:
    """The ``_no_split_modules`` classes of the ``transformers`` models inside ``model`` that it holds."""
    from transformers import PreTrainedModel

    present = {type(module).__name__ for module in model.modules()}
    names: set[str] = set()
    for module in model.modules():
        if isinstance(module, PreTrainedModel):
            names.update(name for name in module._no_split_modules or [] if name in present)
    return sorted(names)


def configure_fsdp_wrap(model: torch.nn.Module) -> None:
    """Under an FSDP launch with transformer-based wrapping and no layer classes given, name the
    layers of ``model`` for accelerate (a user's own ``FSDP_TRANSFORMER_CLS_TO_WRAP`` is kept)."""
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() not in ("1", "true"):
        return
    if os.environ.get("FSDP_AUTO_WRAP_POLICY", "").upper() != "TRANSFORMER_BASED_WRAP" or os.environ.get(WRAP_ENV):
        return
    names = transformer_layer_names(model)
    if names:
        os.environ[WRAP_ENV] = ",".join(names)
        logger.info("FSDP wraps %s", ", ".join(names))
