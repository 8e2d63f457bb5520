"""The core model layer: one ``Reranker`` factory over every model family.

Integrations (LangChain, LlamaIndex) and trainers use this layer; they never re-implement
tokenization, scoring or pooling.
"""

from .base import BaseReranker, available_model_types, register_model_type
from .checkpoint import METADATA_FILE, CheckpointInfo, detect_model_type, read_checkpoint, write_metadata
from .colbert import ColBERTReranker, build_colbert_model, load_colbert_model
from .colbert_index import ColBERTIndex
from .cross_encoder import CrossEncoderReranker
from .embedding import EmbeddingReranker
from .errors import CheckpointNotFoundError, InvalidCheckpointError, UnknownModelTypeError
from .factory import Reranker
from .index_folder import CorruptIndexError, IndexHit, IndexNotFoundError
from .llm_base import DecoderReranker
from .llm_classifier import LLMClassifierReranker
from .llm_inputs import PairPromptTemplate
from .llm_yes_token import LayerwiseLLMReranker, LLMReranker
from .llm_zero_shot import ZeroShotLLMReranker
from .mrl_index import MRLEncoder, MRLIndex
from .results import RankedResults, RankResult

__all__ = [
    "METADATA_FILE",
    "BaseReranker",
    "CheckpointInfo",
    "CheckpointNotFoundError",
    "ColBERTIndex",
    "ColBERTReranker",
    "CorruptIndexError",
    "CrossEncoderReranker",
    "DecoderReranker",
    "LLMClassifierReranker",
    "LLMReranker",
    "LayerwiseLLMReranker",
    "MRLEncoder",
    "MRLIndex",
    "PairPromptTemplate",
    "ZeroShotLLMReranker",
    "EmbeddingReranker",
    "IndexHit",
    "IndexNotFoundError",
    "InvalidCheckpointError",
    "RankResult",
    "RankedResults",
    "Reranker",
    "UnknownModelTypeError",
    "available_model_types",
    "build_colbert_model",
    "detect_model_type",
    "load_colbert_model",
    "read_checkpoint",
    "register_model_type",
    "write_metadata",
]
