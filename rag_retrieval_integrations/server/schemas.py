"""Request and response bodies of the HTTP API, in the shapes existing clients speak.

- ``POST /v1/rerank`` (and ``/v2/rerank``, the path the Cohere SDK's ``ClientV2`` calls): the
  Cohere v2 / Jina / vLLM rerank shape.
- ``POST /rerank``: Hugging Face Text Embeddings Inference's shape.
- ``POST /v1/embeddings``: OpenAI's shape.

Fields a client may send that this server does not act on (Cohere's ``max_tokens_per_doc``,
TEI's ``truncate``) are accepted, so existing clients work, and named in the response's
``meta.warnings`` (rerank) or ignored where the format has no place for a warning.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictStr

NonNegativeInt = Annotated[int, Field(strict=True, ge=0)]
PositiveInt = Annotated[int, Field(strict=True, gt=0)]


class _Request(BaseModel):
    # extra fields are kept (not rejected) so that clients sending options of other servers still work
    model_config = ConfigDict(extra="allow", protected_namespaces=())

    def ignored_fields(self) -> list[str]:
        """The fields sent that this server does not act on."""
        return sorted(self.model_extra or {})


class RerankDocument(BaseModel):
    """A document given as an object, as Jina and Cohere v1 accept (``{"text": ...}``)."""

    model_config = ConfigDict(extra="allow")
    text: StrictStr


def _as_document(value: Any) -> Any:
    """A string document as ``{"text": ...}``; anything else but an object is refused here, with one
    message, instead of one error per member of a ``str | object`` union."""
    if isinstance(value, str):
        return {"text": value}
    if not isinstance(value, dict):
        raise ValueError(f"a document must be a string or an object with a 'text' string, got {type(value).__name__}")
    return value


class RerankRequest(_Request):
    """``POST /v1/rerank``: rank ``documents`` for ``query``."""

    model: StrictStr | None = Field(default=None, description="The served model's name; other names are refused.")
    query: StrictStr
    documents: list[Annotated[RerankDocument, BeforeValidator(_as_document)]]
    top_n: NonNegativeInt | None = Field(default=None, description="Return the best top_n (default: all).")
    return_documents: StrictBool = Field(default=False, description="Include each document's text.")
    raw_scores: StrictBool = Field(
        default=False,
        description="Extension: relevance_score is the model's raw score instead of sigmoid(raw), in (0, 1).",
    )

    def texts(self) -> list[str]:
        return [d.text for d in self.documents]


class RerankResultDocument(BaseModel):
    """The ranked document's text, when ``return_documents`` is set."""

    text: str


class RerankResult(BaseModel):
    """One ranked document: its index in the request's list and its score."""

    index: int
    relevance_score: float
    document: RerankResultDocument | None = None


class ApiVersion(BaseModel):
    """Cohere's ``meta.api_version``."""

    version: str = "2"


class RerankMeta(BaseModel):
    """Cohere's ``meta``: the API version, and warnings (fields sent that were not acted on)."""

    api_version: ApiVersion = Field(default_factory=ApiVersion)
    warnings: list[str] | None = None


class RerankUsage(BaseModel):
    """What the request cost: its (query, document) pairs."""

    pairs: int


class RerankResponse(BaseModel):
    """The answer of ``POST /v1/rerank``: ``results`` best first."""

    id: str
    model: str
    results: list[RerankResult]
    meta: RerankMeta
    usage: RerankUsage


class TEIRerankRequest(_Request):
    """``POST /rerank`` in Text Embeddings Inference's shape."""

    query: StrictStr
    texts: list[StrictStr]
    raw_scores: StrictBool = False
    return_text: StrictBool = False


class TEIRank(BaseModel):
    """One entry of TEI's answer (a JSON list of them, best first)."""

    index: int
    score: float
    text: str | None = None


class EmbeddingsRequest(_Request):
    """``POST /v1/embeddings`` in OpenAI's shape (text inputs; token-id inputs are refused)."""

    input: StrictStr | list[StrictStr]
    model: StrictStr | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: PositiveInt | None = Field(
        default=None, description="Keep the first `dimensions` dims (Matryoshka), re-normalized for cosine models."
    )
    input_type: Literal["query", "document"] = Field(
        default="document", description="Extension: embed as queries (the model's query prompt) or documents."
    )
    user: StrictStr | None = None  # OpenAI's end-user id: accepted, not used

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class Embedding(BaseModel):
    """One vector of the answer, a list of floats or base64 of little-endian float32."""

    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingsUsage(BaseModel):
    """OpenAI's usage block: the tokens the model read (each input as tokenized, capped at max_length)."""

    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    """The answer of ``POST /v1/embeddings``."""

    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingsUsage


class ErrorBody(BaseModel):
    """Every error's body: ``{"error": {"type", "message", "field"?}}``."""

    type: str
    message: str
    field: str | None = None
    details: list[dict[str, Any]] | None = None
