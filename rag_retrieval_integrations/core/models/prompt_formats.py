"""Named prompt formats of the decoder-LLM rerankers: how a pair becomes the model's input and
which token logits score it.

An LLM reranker scores well only in the format it was trained with: vLLM's docs call Qwen3-Reranker's
scores "almost random" without its own. So a format is never guessed. It comes from the user
(``Reranker(path, prompt_format="qwen3-reranker")``), from the checkpoint's ``rag_retrieval.json``
(every checkpoint trained here saves its format), or from what the checkpoint's files say
(bge-reranker-v2-minicpm-layerwise's own code); otherwise loading fails with
:class:`~..errors.UnknownPromptFormatError`, which lists the formats (docs/models.md, "Prompt formats").

Two kinds of template:

- :class:`~.llm_inputs.PairPromptTemplate`: FlagEmbedding's ``bos + "A: {query}" + "\\n" + "B: {passage}"
  + "\\n" + prompt`` (bge-reranker-v2-gemma, bge-reranker-v2-minicpm-layerwise);
- :class:`TextPromptTemplate`: literal text around an ``{instruction}``/``{query}``/``{document}``
  user turn, as Qwen3-Reranker's reference code builds it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from .llm_inputs import PairPromptTemplate

QWEN3_SYSTEM = (
    "Judge whether the Document meets the requirements based on the Query and the Instruct provided. "
    'Note that the answer can only be "yes" or "no".'
)
QWEN3_DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"


@dataclass(frozen=True)
class TextPromptTemplate:
    """The input as literal text: ``prefix + user + suffix``.

    ``user`` holds ``{query}`` and then ``{document}``, which ends it, and may hold ``{instruction}``
    (filled with :attr:`instruction`). As in Qwen3-Reranker's reference code, ``prefix`` and
    ``suffix`` are tokenized alone and each pair's filled ``user`` text as one string; the
    document's tokens are the ones after the text before it, so a long document is cut (or split
    into windows) inside its own tokens and every window gets the same prefix and suffix.

    Args:
        prefix: text before the user text (chat markup, a system turn).
        user: the pair's text, with ``{query}``, ``{document}`` (last) and optionally ``{instruction}``.
        suffix: text after the document (the end of the user turn, the assistant turn's opening).
        instruction: what fills ``{instruction}``.
        add_bos: start every input with the tokenizer's bos token.
    """

    prefix: str
    user: str
    suffix: str
    instruction: str = ""
    add_bos: bool = False

    def __post_init__(self) -> None:
        if self.user.count("{query}") != 1 or self.user.count("{document}") != 1:
            raise ValueError(f"user must hold {{query}} and {{document}} once each, got {self.user!r}")
        if not self.user.endswith("{document}") or self.user.index("{query}") > self.user.index("{document}"):
            raise ValueError(f"user must end with {{document}}, after {{query}}, got {self.user!r}")

    def parts(self) -> tuple[str, str]:
        """The user text before the query (instruction filled in) and between query and document."""
        before, rest = self.user.split("{query}")
        return before.replace("{instruction}", self.instruction), rest.removesuffix("{document}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def as_chat_template(self) -> str:
        """This format as a Jinja chat template over ``query`` and ``document`` messages (what
        sentence-transformers' ``CrossEncoder`` renders a pair with; see
        :meth:`.llm_inputs.PairPromptTemplate.as_chat_template`)."""

        def literal(text: str) -> str:
            return "{% raw %}" + text + "{% endraw %}" if text else ""

        before, between = self.parts()
        bos = "{{ bos_token }}" if self.add_bos else ""
        return (
            f"{bos}{literal(self.prefix)}{{% for m in messages %}}{{% if m['role'] == 'query' %}}{literal(before)}"
            f"{{{{ m['content'] }}}}{{% elif m['role'] == 'document' %}}{literal(between)}{{{{ m['content'] }}}}"
            f"{{% endif %}}{{% endfor %}}{literal(self.suffix)}"
        )


Template = PairPromptTemplate | TextPromptTemplate


@dataclass(frozen=True)
class PromptFormat:
    """A decoder reranker's input format and scoring tokens.

    Raw score: ``logit(yes_token)`` at the last position, or with ``no_token`` the log-odds
    ``logit(yes_token) - logit(no_token)``; ``normalize=True`` applies a sigmoid, which for the
    log-odds is P(yes) over the two tokens (Qwen3-Reranker's score).

    Args:
        name: what it is called (``"custom"`` for one made on the spot).
        template: a :class:`PairPromptTemplate` or :class:`TextPromptTemplate`.
        yes_token, no_token: single tokens of the model's tokenizer.
    """

    name: str
    template: Template
    yes_token: str = "Yes"
    no_token: str | None = None

    def with_instruction(self, instruction: str) -> PromptFormat:
        """This format with ``instruction`` in its ``{instruction}`` slot (Qwen3-Reranker's task line)."""
        if not isinstance(instruction, str) or not instruction.strip():
            raise ValueError(f"instruction must be a non-empty string, got {instruction!r}")
        if not isinstance(self.template, TextPromptTemplate) or "{instruction}" not in self.template.user:
            raise ValueError(
                f"the prompt format {self.name!r} has no {{instruction}} slot; instruction= does not apply"
            )
        return replace(self, template=replace(self.template, instruction=instruction))

    def to_dict(self) -> dict[str, Any]:
        kind = "text" if isinstance(self.template, TextPromptTemplate) else "flag"
        return {
            "name": self.name,
            "kind": kind,
            "template": self.template.to_dict(),
            "yes_token": self.yes_token,
            "no_token": self.no_token,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PromptFormat:
        """The format :meth:`to_dict` wrote (a checkpoint's ``rag_retrieval.json``)."""
        known = {"name", "kind", "template", "yes_token", "no_token"}
        if not isinstance(data, dict) or set(data) - known or "template" not in data:
            raise ValueError(f"a prompt format is a dict with keys {sorted(known)} (template required), got {data!r}")
        kind = data.get("kind", "flag")
        if kind not in ("flag", "text"):
            raise ValueError(f"prompt format kind must be 'flag' or 'text', got {kind!r}")
        template_cls = TextPromptTemplate if kind == "text" else PairPromptTemplate
        names = {f.name for f in fields(template_cls)}
        unknown = set(data["template"]) - names
        if unknown:
            raise ValueError(f"unknown {kind} template keys {sorted(unknown)}; valid keys are {sorted(names)}")
        return cls(
            name=data.get("name", "custom"),
            template=template_cls(**data["template"]),
            yes_token=data.get("yes_token", "Yes"),
            no_token=data.get("no_token"),
        )


BGE_GEMMA = PromptFormat("bge-reranker-v2-gemma", PairPromptTemplate(), "Yes")
BGE_LAYERWISE = PromptFormat("bge-reranker-v2-minicpm-layerwise", PairPromptTemplate(), "Yes")
QWEN3_RERANKER = PromptFormat(
    "qwen3-reranker",
    TextPromptTemplate(
        prefix=f"<|im_start|>system\n{QWEN3_SYSTEM}<|im_end|>\n<|im_start|>user\n",
        user="<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}",
        suffix="<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
        instruction=QWEN3_DEFAULT_INSTRUCTION,
    ),
    yes_token="yes",
    no_token="no",
)

_FORMATS: dict[str, PromptFormat] = {f.name: f for f in (BGE_GEMMA, BGE_LAYERWISE, QWEN3_RERANKER)}
TRAINING_DEFAULT = BGE_GEMMA.name
"""The format a reranker trained from a base model reads unless told otherwise (saved with it)."""


def register_prompt_format(prompt_format: PromptFormat, *, overwrite: bool = False) -> PromptFormat:
    """Make ``prompt_format`` loadable by its name (``Reranker(path, prompt_format=name)``)."""
    if not isinstance(prompt_format, PromptFormat):
        raise TypeError(f"expected a PromptFormat, got {type(prompt_format).__name__}")
    if prompt_format.name in _FORMATS and not overwrite and _FORMATS[prompt_format.name] != prompt_format:
        raise ValueError(f"a prompt format named {prompt_format.name!r} exists; pass overwrite=True to replace it")
    _FORMATS[prompt_format.name] = prompt_format
    return prompt_format


def available_prompt_formats() -> list[str]:
    """The names :func:`get_prompt_format` knows."""
    return sorted(_FORMATS)


def get_prompt_format(value: str | PromptFormat | dict[str, Any]) -> PromptFormat:
    """A format by name, a saved format's dict, or the format itself."""
    if isinstance(value, PromptFormat):
        return value
    if isinstance(value, dict):
        return PromptFormat.from_dict(value)
    if isinstance(value, str):
        if value not in _FORMATS:
            raise ValueError(f"unknown prompt_format {value!r}; known formats: {available_prompt_formats()}")
        return _FORMATS[value]
    raise TypeError(f"prompt_format must be a name, a PromptFormat or its dict, got {type(value).__name__}")


def format_of_template(template: PairPromptTemplate, yes_token: str | None) -> PromptFormat:
    """A FlagEmbedding-style template the user (or an older checkpoint's metadata) gave, named
    after the built-in format it equals, else ``"custom"``."""
    yes = yes_token or "Yes"
    if BGE_GEMMA.template == template and BGE_GEMMA.yes_token == yes:
        return BGE_GEMMA
    return PromptFormat("custom", template, yes)
