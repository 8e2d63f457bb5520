"""Building decoder-LLM reranker inputs token by token, with long-document windows.

A decoder reranker reads ``head(query) + document + tail``: for the FlagEmbedding format
``bos "A: {query}" "\\n" "B: {passage}" "\\n" prompt``, for a chat model its chat template
around the query and document. Inputs are assembled from token ids, so a long document is
cut into windows of its own tokens (every token in some window) and each window gets the
same head and tail: ``split-max`` never drops text, and ``truncate`` keeps exactly the first
window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np
from transformers import PreTrainedTokenizerBase

from ..text.long_text import clip_for_truncation
from ..text.pair_encoding import EncodedPairs, query_token_budget, unique, window_overlap
from ..text.truncation import estimate_clipped

if TYPE_CHECKING:
    from .prompt_formats import TextPromptTemplate

FLAG_RERANK_PROMPT = (
    "Given a query A and a passage B, determine whether the passage contains an answer to the query by "
    "providing a prediction of either 'Yes' or 'No'."
)


@dataclass(frozen=True)
class PairPromptTemplate:
    """The FlagEmbedding LLM-reranker input: ``bos + query_instruction + query + separator +
    passage_instruction + passage + separator + prompt``; defaults are bge-reranker-v2-gemma's."""

    query_instruction: str = "A: "
    passage_instruction: str = "B: "
    separator: str = "\n"
    prompt: str = FLAG_RERANK_PROMPT
    add_bos: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def as_chat_template(self) -> str:
        """This format as a Jinja chat template over ``query`` and ``document`` messages: what
        sentence-transformers' ``CrossEncoder`` renders a pair with, so that a ``CrossEncoder`` with
        this template and a ``LogitScore(true_token_id=yes_id)`` head scores as :class:`LLMReranker`
        does (when nothing is truncated: the two cut long inputs differently).

        The template renders the text as one string; ours tokenizes ``instruction + text`` pieces
        and joins the ids. For byte-level BPE tokenizers, whose pre-tokenizer splits at the newline
        separators, the ids agree (tested on SmolLM2's tokenizer).
        """

        def literal(text: str) -> str:
            return "{% raw %}" + text + "{% endraw %}" if text else ""

        bos = "{{ bos_token }}" if self.add_bos else ""
        return (
            f"{bos}{{% for m in messages %}}{{% if m['role'] == 'query' %}}{literal(self.query_instruction)}"
            f"{{{{ m['content'] }}}}{literal(self.separator)}{{% elif m['role'] == 'document' %}}"
            f"{literal(self.passage_instruction)}{{{{ m['content'] }}}}{literal(self.separator)}"
            f"{{% endif %}}{{% endfor %}}{literal(self.prompt)}"
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PairPromptTemplate:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown prompt template keys {sorted(unknown)}; valid keys are {sorted(known)}")
        return cls(**data)


def token_id(tokenizer: PreTrainedTokenizerBase, token: str, role: str) -> int:
    """The id of ``token``, which must be a single token of this tokenizer."""
    ids = tokenizer(token, add_special_tokens=False, verbose=False)["input_ids"]
    if len(ids) != 1:
        pieces = tokenizer.convert_ids_to_tokens(ids)
        raise ValueError(
            f"the {role} token {token!r} is not a single token of this tokenizer (it splits into {pieces}); "
            f"pass a {role}_token= that is one token"
        )
    return int(ids[0])


def truncate_query_ids(
    query_ids: list[list[int]], max_length: int, min_doc_share: float, prompt_tokens: int
) -> list[list[int]]:
    """Queries cut to their share of ``max_length``, and, where ``prompt_tokens`` (every token of an
    input but the query's and the document's) leave less, so that one document token still fits."""
    budget = query_budget(max_length, min_doc_share, prompt_tokens)
    return [ids[:budget] for ids in query_ids]


def query_budget(max_length: int, min_doc_share: float, prompt_tokens: int) -> int:
    """The most tokens a query keeps: its share of ``max_length``, less where ``prompt_tokens`` leave
    less room (one document token must still fit), and at least one."""
    return max(1, min(query_token_budget(max_length, min_doc_share), max_length - prompt_tokens - 1))


def tokens_before(offsets: Sequence[tuple[int, int]], boundary: int) -> int:
    """How many leading tokens lie wholly before character ``boundary`` (a token that straddles it,
    such as a space-led word, starts the text after it)."""
    n = 0
    while n < len(offsets) and offsets[n][1] <= boundary and offsets[n][0] < boundary:
        n += 1
    return n


def bos_lead(tokenizer: PreTrainedTokenizerBase, add_bos: bool) -> list[int]:
    """``[bos]`` when asked and the tokenizer has one that is not its pad token, else nothing."""
    bos = tokenizer.bos_token_id
    return [bos] if add_bos and bos is not None and bos != tokenizer.pad_token_id else []


def split_prefix(
    tokenizer: PreTrainedTokenizerBase, instruction: str, docs: Sequence[str]
) -> tuple[list[list[int]], list[list[int]]]:
    """Tokenize ``instruction + doc`` as one text (as FlagEmbedding does) and split off the
    tokens that lie wholly inside the instruction: those start every window of the document."""
    encoded = tokenizer(
        [instruction + d for d in docs],
        add_special_tokens=False,
        verbose=False,
        return_offsets_mapping=True,
        return_attention_mask=False,
    )
    prefixes, bodies = [], []
    for ids, offsets in zip(encoded["input_ids"], encoded["offset_mapping"]):
        n = tokens_before(offsets, len(instruction))
        prefixes.append(ids[:n])
        bodies.append(ids[n:])
    return prefixes, bodies


def assemble_inputs(
    heads: Sequence[list[int]],
    bodies: Sequence[list[int]],
    tails: Sequence[list[int]],
    *,
    max_length: int,
    split_long_docs: bool,
    overlap: int,
) -> EncodedPairs:
    """``head + window + tail`` for every pair: one window (the first) or, with
    ``split_long_docs``, overlapping windows covering the whole body."""
    input_ids: list[list[int]] = []
    owner: list[int] = []
    rooms: list[int] = []
    for i, (head, body, tail) in enumerate(zip(heads, bodies, tails)):
        room = max_length - len(head) - len(tail)
        if room < 1:
            raise ValueError(
                f"max_length={max_length} leaves {room} tokens for the document after the query and prompt "
                f"({len(head) + len(tail)} tokens); raise max_length or shorten the prompt"
            )
        rooms.append(room)
        step_overlap = window_overlap(overlap, room)
        starts = range(0, max(len(body) - step_overlap, 1), room - step_overlap) if split_long_docs else [0]
        for start in starts:
            input_ids.append(head + body[start : start + room] + tail)
            owner.append(i)
    encoded = EncodedPairs(input_ids, None, np.asarray(owner, dtype=np.int64), len(heads))
    if not split_long_docs:
        encoded.doc_tokens = np.array([len(body) for body in bodies], dtype=np.int64)
        encoded.kept_doc_tokens = np.minimum(encoded.doc_tokens, np.array(rooms, dtype=np.int64))
    return encoded


def encode_flag_pairs(
    tokenizer: PreTrainedTokenizerBase,
    template: PairPromptTemplate,
    queries: list[str],
    docs: list[str],
    *,
    max_length: int,
    min_doc_share: float,
    split_long_docs: bool,
    overlap: int,
) -> EncodedPairs:
    """Inputs in the FlagEmbedding LLM-reranker format (see :class:`PairPromptTemplate`)."""
    distinct, query_of_pair = unique(queries)
    query_ids = tokenizer([template.query_instruction + q for q in distinct], add_special_tokens=False, verbose=False)[
        "input_ids"
    ]
    originals = docs
    if not split_long_docs:
        docs = clip_for_truncation(tokenizer, docs, max_length)
    prefixes, bodies = split_prefix(tokenizer, template.passage_instruction, docs)
    sep = tokenizer(template.separator, add_special_tokens=False, verbose=False)["input_ids"]
    prompt = tokenizer(template.prompt, add_special_tokens=False, verbose=False)["input_ids"]
    lead = bos_lead(tokenizer, template.add_bos)
    fixed = len(lead) + 2 * len(sep) + len(prompt)
    # Each pair's own prompt length (its document's prefix can differ by a token): a query is
    # never cut by what another document in the call needs, so a score does not depend on the batch.
    heads = [
        lead + truncate_query_ids([query_ids[q]], max_length, min_doc_share, fixed + len(prefix))[0] + sep + prefix
        for q, prefix in zip(query_of_pair, prefixes)
    ]
    tail = sep + prompt
    encoded = assemble_inputs(
        heads, bodies, [tail] * len(docs), max_length=max_length, split_long_docs=split_long_docs, overlap=overlap
    )
    if encoded.doc_tokens is not None:
        encoded.doc_tokens = estimate_clipped(encoded.doc_tokens, originals, docs)
    return encoded


def encode_text_pairs(
    tokenizer: PreTrainedTokenizerBase,
    template: TextPromptTemplate,
    queries: list[str],
    docs: list[str],
    *,
    max_length: int,
    min_doc_share: float,
    split_long_docs: bool,
    overlap: int,
) -> EncodedPairs:
    """Inputs in a literal-text format (see :class:`.prompt_formats.TextPromptTemplate`): prefix and
    suffix tokenized alone, each pair's user text as one string, whose tokens after the text before
    the document are the document's. A query longer than its share of the room the format's text
    leaves (``1 - min_doc_share`` of it) loses its last tokens."""
    before, between = template.parts()
    prefix, suffix = tokenizer([template.prefix, template.suffix], add_special_tokens=False, verbose=False)["input_ids"]
    prefix = bos_lead(tokenizer, template.add_bos) + prefix
    originals = docs
    if not split_long_docs:
        docs = clip_for_truncation(tokenizer, docs, max_length)
    texts = [before + q + between + d for q, d in zip(queries, docs)]
    encoded = tokenizer(texts, add_special_tokens=False, verbose=False, return_offsets_mapping=True)
    heads, bodies = [], []
    for q, ids, offsets in zip(queries, encoded["input_ids"], encoded["offset_mapping"]):
        query_start, query_end = len(before), len(before) + len(q)
        n = tokens_before(offsets, query_end + len(between))
        head, body = ids[:n], ids[n:]
        # the query's own tokens (a token shared with the text around it stays as fixed text)
        in_query = [i for i in range(n) if offsets[i][0] >= query_start and offsets[i][1] <= query_end]
        # the document's share is of the room the format's own text leaves: a long prompt (Qwen3's is
        # about 100 tokens) must not leave a long query all of it
        room = max_length - (len(prefix) + len(suffix) + n - len(in_query))
        budget = query_budget(room, min_doc_share, 0)
        if len(in_query) > budget:
            cut = set(in_query[budget:])
            head = [t for i, t in enumerate(head) if i not in cut]
        heads.append(prefix + head)
        bodies.append(body)
    encoded_pairs = assemble_inputs(
        heads, bodies, [suffix] * len(docs), max_length=max_length, split_long_docs=split_long_docs, overlap=overlap
    )
    if encoded_pairs.doc_tokens is not None:
        encoded_pairs.doc_tokens = estimate_clipped(encoded_pairs.doc_tokens, originals, docs)
    return encoded_pairs
