"""Cutting very long texts before they are tokenized for truncation, without changing a token kept.

A fast tokenizer truncates after tokenizing the whole text, so one 50 MB document costs
gigabytes of memory and minutes of time to keep its first 512 tokens. A prefix of the text
tokenizes into a prefix of the text's tokens (words before the cut are split the same way),
so cutting the text far enough past what is kept changes nothing: a text is cut at a generous
``max_tokens * 32`` characters, the cut is checked to still hold more than ``max_tokens``
tokens with a margin, and where it does not (long runs of whitespace or markup that make no
tokens) the cut is moved four times further, up to the whole text.
"""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

CHARS_PER_TOKEN = 32  # English averages about 4 characters per token; code and URLs a few more
MARGIN_TOKENS = 16  # the last word before the cut may tokenize differently: keep it out of reach


def clip_for_truncation(tokenizer: PreTrainedTokenizerBase, texts: list[str], max_tokens: int) -> list[str]:
    """``texts``, each cut to a prefix that still tokenizes into more than ``max_tokens`` tokens.

    Truncating a returned text to ``max_tokens`` tokens gives exactly the tokens truncating the
    original would; texts shorter than the first cut are returned unchanged (the common case,
    which costs nothing).
    """
    bound = max(max_tokens, 1) * CHARS_PER_TOKEN + 256
    out = list(texts)
    rows = [i for i, text in enumerate(texts) if len(text) > bound]
    while rows:
        cuts = [texts[i][:bound] for i in rows]
        ids = tokenizer(cuts, add_special_tokens=False, verbose=False, return_attention_mask=False)["input_ids"]
        retry = []
        for i, cut, tokens in zip(rows, cuts, ids):
            if len(tokens) > max_tokens + MARGIN_TOKENS:
                out[i] = cut
            else:
                retry.append(i)
        bound *= 4
        rows = [i for i in retry if len(texts[i]) > bound]  # the others stay whole
    return out
