"""rag-retrieval: use any RAG ranking model through one API, in LangChain and LlamaIndex.

>>> from rag_retrieval_integrations import Reranker
>>> ranker = Reranker("BAAI/bge-reranker-base")                   # doctest: +SKIP
>>> ranker.rank("what is a panda?", docs, top_k=3)                 # doctest: +SKIP
"""

from .core import (
    BaseReranker,
    CheckpointNotFoundError,
    CrossEncoderReranker,
    EmbeddingModel,
    EmbeddingReranker,
    InvalidCheckpointError,
    ListwiseLLMReranker,
    OpenAIListwiseReranker,
    PromptFormat,
    RankedResults,
    Ranker,
    RankResult,
    Reranker,
    UnknownModelTypeError,
    UnknownPromptFormatError,
    available_model_types,
    available_prompt_formats,
    register_model_type,
    register_prompt_format,
)
from .core.models.gguf import convert_gguf
from .core.models.remote import RemoteReranker, RemoteRerankerError

__version__ = "0.1.0"

__all__ = [
    "BaseReranker",
    "CheckpointNotFoundError",
    "CrossEncoderReranker",
    "EmbeddingModel",
    "EmbeddingReranker",
    "InvalidCheckpointError",
    "ListwiseLLMReranker",
    "OpenAIListwiseReranker",
    "RankResult",
    "RankedResults",
    "Ranker",
    "RemoteReranker",
    "RemoteRerankerError",
    "Reranker",
    "UnknownModelTypeError",
    "UnknownPromptFormatError",
    "PromptFormat",
    "available_prompt_formats",
    "register_prompt_format",
    "__version__",
    "available_model_types",
    "convert_gguf",
    "register_model_type",
]
