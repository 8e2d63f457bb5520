"""The core model layer: one ``Reranker`` factory over every model family.

Integrations (LangChain, LlamaIndex) and trainers use this layer; they never re-implement
tokenization, scoring or pooling.
"""

from .engines.qdrant.colbert import QdrantColBERTIndex
from .engines.qdrant.hybrid import QdrantHybridIndex
from .engines.qdrant.mrl import QdrantMRLIndex
from .errors import CheckpointNotFoundError, InvalidCheckpointError, UnknownModelTypeError, UnknownPromptFormatError
from .indexes.base import Index
from .indexes.bm25 import BM25Index
from .indexes.bm25_text import BM25Analyzer
from .indexes.colbert import ColBERTIndex
from .indexes.documents import IndexHit
from .indexes.folder import CorruptIndexError, IndexNotFoundError
from .indexes.hybrid import HybridIndex
from .indexes.mrl import MRLIndex
from .indexes.mrl_encoder import MRLEncoder
from .indexes.sparse import SparseIndex
from .models.base import BaseReranker
from .models.checkpoint import METADATA_FILE, CheckpointInfo, read_checkpoint, write_metadata
from .models.colbert import ColBERTReranker, build_colbert_model, load_colbert_model
from .models.cross_encoder import CrossEncoderReranker
from .models.embedding import EmbeddingModel, EmbeddingReranker
from .models.factory import Reranker
from .models.listwise_endpoint import OpenAIListwiseReranker
from .models.listwise_order import PermutationRepairs, SlidingWindow
from .models.llm_base import DecoderReranker
from .models.llm_classifier import LLMClassifierReranker
from .models.llm_inputs import PairPromptTemplate
from .models.llm_listwise import ListwiseLLMReranker
from .models.llm_yes_token import LayerwiseLLMReranker, LLMReranker
from .models.llm_zero_shot import ZeroShotLLMReranker
from .models.prompt_formats import (
    PromptFormat,
    TextPromptTemplate,
    available_prompt_formats,
    get_prompt_format,
    register_prompt_format,
)
from .models.ranker import Ranker
from .models.registry import available_model_types, detect_model_type, register_model_type
from .models.sparse import SparseModel
from .results import RankedResults, RankResult

__all__ = [
    "BM25Analyzer",
    "BM25Index",
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
    "ListwiseLLMReranker",
    "OpenAIListwiseReranker",
    "PermutationRepairs",
    "SlidingWindow",
    "MRLEncoder",
    "MRLIndex",
    "QdrantMRLIndex",
    "QdrantColBERTIndex",
    "QdrantHybridIndex",
    "PairPromptTemplate",
    "Ranker",
    "SparseIndex",
    "SparseModel",
    "ZeroShotLLMReranker",
    "EmbeddingModel",
    "EmbeddingReranker",
    "HybridIndex",
    "Index",
    "IndexHit",
    "IndexNotFoundError",
    "InvalidCheckpointError",
    "RankResult",
    "RankedResults",
    "Reranker",
    "UnknownModelTypeError",
    "UnknownPromptFormatError",
    "PromptFormat",
    "TextPromptTemplate",
    "available_prompt_formats",
    "get_prompt_format",
    "register_prompt_format",
    "available_model_types",
    "build_colbert_model",
    "detect_model_type",
    "load_colbert_model",
    "read_checkpoint",
    "register_model_type",
    "write_metadata",
]
