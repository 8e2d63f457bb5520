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
    RankedResults,
    Ranker,
    RankResult,
    Reranker,
    UnknownModelTypeError,
    available_model_types,
    register_model_type,
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
    "RankResult",
    "RankedResults",
    "Ranker",
    "RemoteReranker",
    "RemoteRerankerError",
    "Reranker",
    "UnknownModelTypeError",
    "__version__",
    "available_model_types",
    "convert_gguf",
    "register_model_type",
]
