"""Exporting a transformer to ONNX once, quantizing it to int8, and caching both by its weights.

The graph is exported with ``torch.onnx``'s dynamo exporter, dynamic in batch and sequence. Its
older TorchScript exporter traces ``transformers``' attention mask as it was for the example
batch (no padding: no mask), so padded batches score wrong (0.018 apart on MiniLM); the dynamo
exporter keeps the mask logic and equals PyTorch to 1e-7. ``int8`` is onnxruntime's dynamic
quantization (int8 weights, activations quantized per batch), with one scale per output channel
(see :func:`quantize_int8`); given calibration texts, of the model smoothed first (see
:mod:`.smoothing`).
``onnxruntime.transformers.optimizer``'s BERT fusions were measured and left out: onnxruntime's
own graph optimizations at session start already give what they give (fused: 9.5 s, plain: 8.9 s
on the same MiniLM batches).

A cached model is a folder named for what it was made from: the model's output, its inputs, the weights'
fingerprint (:func:`~..fingerprint.weights_fingerprint`, or the hub commit), the precision and
the exporter's versions; a new fingerprint is a new name, and the stale entries of that output are
removed. Each entry has a manifest of its files' sizes and SHA-256: a garbled, truncated or emptied
``model.onnx`` is exported again, with a WARNING, instead of failing in onnxruntime. The cache lives in the checkpoint folder (``rag_retrieval_onnx/``) when it is writable,
else under ``$RAG_RETRIEVAL_CACHE`` (default ``~/.cache/rag_retrieval``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import OnnxExportError
from ..fingerprint import FINGERPRINT_PREFIX, file_sha256, weights_fingerprint
from .onnx_runtime import int8_reduce_range, require_onnxruntime
from .smoothing import SMOOTHING_RECIPE, smoothed_copy

logger = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
ENTRY_MANIFEST = "manifest.json"
"""Each cached entry's files with their sizes and SHA-256, written last: an entry is verified before use."""
ONNX_FOLDER = "rag_retrieval_onnx"
"""The cache folder's name inside a checkpoint (not ``onnx/``: sentence-transformers reads that one)."""
EXPORT_FORMAT = 2  # bump when the export recipe changes, so old cached files are not reused
_EXTERNAL_DATA_BYTES = 1_500_000_000  # ONNX protobufs end at 2 GB: larger weights go to a side file


def onnx_cache_dir() -> Path:
    """Where exports go when the checkpoint folder is not writable: ``$RAG_RETRIEVAL_CACHE/onnx``."""
    root = os.environ.get("RAG_RETRIEVAL_CACHE") or Path.home() / ".cache" / "rag_retrieval"
    return Path(root) / "onnx"


class _Forward(torch.nn.Module):
    """The model's forward pass on named tensors, returning one output (what is exported)."""

    def __init__(self, model: torch.nn.Module, output: str) -> None:
        super().__init__()
        self.model = model
        self.output = output

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        return getattr(
            self.model(input_ids=input_ids, attention_mask=attention_mask, **extra, return_dict=True), self.output
        )


def _example_inputs(model: torch.nn.Module, input_names: Sequence[str]) -> dict[str, torch.Tensor]:
    """A padded batch of two (batch and length above 1, so the exporter keeps them dynamic)."""
    vocab = int(getattr(model.config, "vocab_size", 100) or 100)
    generator = torch.Generator().manual_seed(0)
    inputs = {"input_ids": torch.randint(min(5, vocab - 1), vocab, (2, 8), generator=generator)}
    inputs["attention_mask"] = torch.ones(2, 8, dtype=torch.long)
    inputs["attention_mask"][1, 5:] = 0
    if "token_type_ids" in input_names:
        inputs["token_type_ids"] = torch.zeros(2, 8, dtype=torch.long)
        inputs["token_type_ids"][:, 4:] = 1
    return inputs


def export_onnx(
    model: torch.nn.Module, output: str, input_names: Sequence[str], path: Path, *, external_data: bool = False
) -> None:
    """``model``'s forward pass (``input_names`` in, ``output`` out) as an ONNX file at ``path``."""
    require_onnxruntime()
    inputs = _example_inputs(model, input_names)
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    dynamic = {name: {0: batch, 1: sequence} for name in inputs}
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings(), torch.no_grad(), _quiet("torch.onnx"):
            warnings.simplefilter("ignore")  # the exporter's deprecation chatter, not the user's concern
            program = torch.onnx.export(
                _Forward(model, output),
                args=(),
                kwargs=inputs,
                input_names=list(inputs),
                output_names=[output],
                dynamic_shapes=dynamic,
                dynamo=True,
                external_data=external_data,
                verbose=False,
            )
            program.save(str(path), external_data=external_data)
    except Exception as err:  # the exporter raises many kinds; the user needs to know which model failed
        raise OnnxExportError(
            f"torch.onnx could not export {type(model).__name__} ({err.__class__.__name__}: {str(err)[:500]}); "
            "use backend='torch' for this model"
        ) from err
    finally:
        model.train(was_training)


def quantize_int8(source: Path, target: Path, *, external_data: bool = False, reduce_range: bool = False) -> None:
    """onnxruntime's dynamic int8 quantization of ``source``: int8 weights with one scale per output
    channel, activations quantized per batch, the weight MatMuls only.

    The defaults of ``quantize_dynamic`` (one scale per weight matrix, embedding tables too) moved
    all-MiniLM-L6-v2's WikiQA dev MAP by -0.020 (cosine to fp32: mean 0.961, worst 0.857);
    per-channel scales on the MatMuls give a mean cosine of 0.993 (worst 0.973) for about 10% of
    the int8 speed-up (1.84x over onnx fp32 instead of 2.05x, same run).

    ``reduce_range``: 7-bit weights, for CPUs whose int8 kernels saturate at 16 bits (see
    :func:`.onnx_runtime.int8_reduce_range`).
    """
    require_onnxruntime()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # it logs advice ("consider pre-processing") through logging.warning on every call; only those
    # records are dropped (a filter on the root logger sees what is logged to it, not what propagates)
    root = logging.getLogger()
    root.addFilter(_not_from_onnxruntime)
    try:
        quantize_dynamic(
            str(source),
            str(target),
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=reduce_range,
            op_types_to_quantize=["MatMul"],  # not Gather: int8 embedding tables lose accuracy and save no time
            use_external_data_format=external_data,
        )
    finally:
        root.removeFilter(_not_from_onnxruntime)


def _not_from_onnxruntime(record: logging.LogRecord) -> bool:
    return f"onnxruntime{os.sep}quantization" not in record.pathname or record.levelno >= logging.ERROR


@contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Only errors from the logger ``name`` for the block."""
    target = logging.getLogger(name)
    level = target.level
    target.setLevel(logging.ERROR)
    try:
        yield
    finally:
        target.setLevel(level)


@dataclass(frozen=True)
class OnnxModelCache:
    """The cached ONNX files of one checkpoint: where they go and what names them.

    Args:
        checkpoint: the checkpoint's folder (or hub id).
        key: what identifies its weights (a fingerprint, a hub commit); ``None``: nothing does,
            and every load exports anew into a temporary folder.
    """

    checkpoint: str
    key: str | None

    @classmethod
    def for_model(cls, checkpoint: str, model: torch.nn.Module) -> OnnxModelCache:
        """The cache of ``model`` loaded from ``checkpoint``: keyed by its weights' fingerprint, or
        for a hub model by the commit ``transformers`` downloaded."""

        fingerprint = weights_fingerprint(checkpoint)
        key = None if fingerprint is None else fingerprint.removeprefix(FINGERPRINT_PREFIX)[:24]
        if key is None:
            commit = getattr(model.config, "_commit_hash", None)
            key = f"hub{commit[:16]}" if commit else None
        return cls(checkpoint, key)

    def folder(self) -> Path:
        """The checkpoint's own ``rag_retrieval_onnx/`` when writable, else one under :func:`onnx_cache_dir`."""
        if self.key is None:
            return Path(tempfile.mkdtemp(prefix="rag_retrieval_onnx_"))
        local = Path(self.checkpoint)
        if local.is_dir():
            folder = local / ONNX_FOLDER
            if _writable(folder):
                return folder
        where = hashlib.sha256(str(local.resolve() if local.is_dir() else self.checkpoint).encode()).hexdigest()[:16]
        folder = onnx_cache_dir() / where
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OnnxExportError(
                f"cannot cache the ONNX export of {self.checkpoint!r}: "
                f"{'its folder is not writable, and ' if local.is_dir() else ''}the cache folder {str(folder)!r} "
                f"cannot be created ({err.strerror or err}); set RAG_RETRIEVAL_CACHE to a writable folder"
            ) from None
        return folder

    def entry_name(self, output: str, input_names: Sequence[str], precision: str, calibration_key: str = "") -> str:
        """The cached entry's folder name: output, precision, weights key and a hash of the recipe
        (for a smoothed int8 model, the smoothing and its calibration texts too; for int8, whether
        its weights have 7 bits, as this CPU asks: a cache shared by two machines never hands one
        the other's)."""
        import onnxruntime

        recipe = f"{EXPORT_FORMAT}:{','.join(input_names)}:torch{torch.__version__}:ort{onnxruntime.__version__}"
        if precision == "int8" and int8_reduce_range():
            recipe += ":reduce_range"
        if precision == "int8" and calibration_key:
            recipe += f":{SMOOTHING_RECIPE}:{calibration_key}"
        return f"{output}.{precision}.{self.key}.{hashlib.sha256(recipe.encode()).hexdigest()[:8]}"

    def model_file(
        self,
        model: torch.nn.Module,
        output: str,
        input_names: Sequence[str],
        precision: str,
        calibration: Sequence[dict[str, torch.Tensor]] = (),
        calibration_key: str = "",
    ) -> Path:
        """The ONNX file of ``model`` at ``precision`` (``"fp32"`` or ``"int8"``), exported (and
        quantized) only when the cache does not hold it yet. For int8, ``calibration`` (model
        inputs, :func:`.smoothing.calibration_batches`) smooths the model first, and
        ``calibration_key`` (:func:`.smoothing.calibration_key`) names those inputs in the cache;
        without them, int8 quantizes the cached fp32 export as it is."""
        return self._model_file(self.folder(), model, output, input_names, precision, calibration, calibration_key)

    def _model_file(
        self,
        folder: Path,
        model: torch.nn.Module,
        output: str,
        input_names: Sequence[str],
        precision: str,
        calibration: Sequence[dict[str, torch.Tensor]] = (),
        calibration_key: str = "",
    ) -> Path:
        entry = folder / self.entry_name(output, input_names, precision, calibration_key if calibration else "")
        target = entry / MODEL_FILE
        if entry.is_dir():
            problem = _entry_problem(entry)
            if problem is None:
                logger.info("using the cached ONNX model %s", target)
                return target
            logger.warning("the cached ONNX model %s is unusable (%s); exporting it again", entry, problem)
            shutil.rmtree(entry, ignore_errors=True)
        big = _parameter_bytes(model) > _EXTERNAL_DATA_BYTES
        if precision == "int8" and calibration:
            logger.info("exporting %s smoothed, to ONNX int8 (once; cached in %s)", self.checkpoint, entry)

            def write(path: Path) -> None:
                # the smoothed float32 graph is only a step to int8: exported beside it, then deleted
                with tempfile.TemporaryDirectory(dir=path.parent) as step:
                    smoothed = Path(step) / MODEL_FILE
                    export_onnx(smoothed_copy(model, calibration), output, input_names, smoothed, external_data=big)
                    quantize_int8(smoothed, path, external_data=big, reduce_range=int8_reduce_range())

            _write_entry(entry, write)
        elif precision == "int8":
            source = self._model_file(folder, model, output, input_names, "fp32")
            reduce_range = int8_reduce_range()
            _write_entry(entry, lambda path: quantize_int8(source, path, external_data=big, reduce_range=reduce_range))
        else:
            logger.info("exporting %s to ONNX (once; cached in %s)", self.checkpoint, entry)
            _write_entry(entry, lambda path: export_onnx(model, output, input_names, path, external_data=big))
        _remove_stale(folder, f"{output}.{precision}.", keep=entry)
        return target


def _parameter_bytes(model: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def _write_entry(entry: Path, write: Callable[[Path], None]) -> None:
    """``write(model file)`` in a temporary sibling folder, then renamed to ``entry``: a load killed
    midway leaves no half-written model that the next load would take for a cached one, and an
    external-data file (next to the model file) moves with it."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        write(tmp / MODEL_FILE)
        files = {p.name: {"bytes": p.stat().st_size, "sha256": file_sha256(p)} for p in sorted(tmp.iterdir())}
        (tmp / ENTRY_MANIFEST).write_text(json.dumps({"files": files}, indent=2) + "\n", encoding="utf-8")
        try:
            os.rename(tmp, entry)
        except OSError:
            if not (entry / MODEL_FILE).is_file():  # not another process that got there first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _entry_problem(entry: Path) -> str | None:
    """What makes a cached entry unusable (a file missing, truncated, changed), or ``None``: each
    file must have the size and SHA-256 its manifest recorded when it was written. A cache is only
    a cache, so a bad entry is exported again rather than handed to onnxruntime."""
    try:
        manifest = json.loads((entry / ENTRY_MANIFEST).read_text(encoding="utf-8"))
        files = manifest["files"]
        if MODEL_FILE not in files:
            return f"its {ENTRY_MANIFEST} lists no {MODEL_FILE}"
        for name, expected in files.items():
            file = entry / name
            if not file.is_file():
                return f"{name} is missing"
            if file.stat().st_size != expected["bytes"] or file_sha256(file) != expected["sha256"]:
                return f"{name} differs from what was written (size or SHA-256)"
    except FileNotFoundError:
        return f"it has no {ENTRY_MANIFEST} (written by an older version, or cut short)"
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        return f"its {ENTRY_MANIFEST} is unreadable: {err}"
    return None


def _remove_stale(folder: Path, prefix: str, keep: Path) -> None:
    """Delete the entries of earlier weights (another fingerprint) for the same output and precision."""
    for old in folder.glob(f"{prefix}*"):
        if old != keep and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
