"""Reading a checkpoint (local folder, hub id or GGUF file) once: the JSON files that describe it,
and the facts about its layout that detection (:mod:`.registry`) and loading ask about.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CheckpointNotFoundError, InvalidCheckpointError

METADATA_FILE = "rag_retrieval.json"
METADATA_FORMAT_VERSION = 1

# A hub id is "name" or "namespace/name" made of these characters; anything else that does not
# exist on disk is reported as a missing path rather than sent to the hub.
_HUB_ID = re.compile(r"^(?:[\w.-]+/)?[\w.-]+$")


@dataclass
class CheckpointInfo:
    """What a checkpoint says about itself: the JSON files detection and loading need."""

    path: str
    is_local: bool
    config: dict[str, Any] | None = None
    st_config: dict[str, Any] | None = None
    modules: list[dict[str, Any]] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    gguf_file: str | None = None  # the GGUF file (in ``path``) that holds config, tokenizer and weights

    @property
    def architectures(self) -> list[str]:
        return list((self.config or {}).get("architectures") or [])

    def describe(self) -> str:
        """A one-line account of what was found, for error messages."""
        found = []
        if self.metadata:
            found.append(f"{METADATA_FILE} (model_type={self.metadata.get('model_type')!r})")
        if self.st_config is not None:
            found.append(f"config_sentence_transformers.json (model_type={self.st_config.get('model_type')!r})")
        if self.modules is not None:
            found.append("modules.json")
        if self.config is not None:
            found.append(
                f"config.json (model_type={self.config.get('model_type')!r}, architectures={self.architectures})"
            )
        return ", ".join(found) if found else "none of config.json, modules.json, " + METADATA_FILE


# What each file we read must hold at its top level: anything else is a broken checkpoint.
_JSON_SHAPES: dict[str, type] = {"modules.json": list}


def _checked_shape(data: Any, name: str, where: str) -> Any:
    expected = _JSON_SHAPES.get(name, dict)
    if not isinstance(data, expected):
        raise InvalidCheckpointError(
            f"{where} holds a JSON {type(data).__name__}, not the JSON {'list' if expected is list else 'object'} "
            "a checkpoint has there"
        )
    return data


def _read_local_json(folder: Path, name: str) -> Any | None:
    file = folder / name
    if not file.is_file():
        return None
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InvalidCheckpointError(f"{file} is not valid JSON: {e}") from None
    return _checked_shape(data, name, str(file))


def _read_hub_json(repo_id: str, name: str, revision: str | None, token: str | bool | None) -> Any | None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

    try:
        file = hf_hub_download(repo_id, name, revision=revision, token=token)
    except EntryNotFoundError:
        # The file is not in the repository, or (offline) not in the local cache: both mean
        # "this checkpoint does not say"; read_checkpoint reports a repo with nothing at all.
        return None
    except RepositoryNotFoundError:
        raise CheckpointNotFoundError(
            f"model {repo_id!r} is not a local folder and the hub has no repository of that name "
            "(or it is private or gated: pass token=)"
        ) from None
    with open(file, encoding="utf-8") as f:
        return _checked_shape(json.load(f), name, f"{name} of {repo_id!r}")


def read_checkpoint(
    model_name_or_path: str | os.PathLike[str],
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    gguf_file: str | None = None,
) -> CheckpointInfo:
    """Read the files that describe a checkpoint, from a local folder or the Hugging Face hub.

    With ``gguf_file`` (a file name inside the folder or hub repo, as transformers takes it), the
    config comes from that GGUF file; a path to a ``.gguf`` file is read the same way.

    Raises:
        CheckpointNotFoundError: the path does not exist and is not a reachable hub id.
        InvalidCheckpointError: the path is a file, or a folder without any checkpoint file.
    """
    if not isinstance(model_name_or_path, (str, os.PathLike)):
        raise TypeError(f"model_name_or_path must be a str or a path, got {type(model_name_or_path).__name__}")
    raw = os.fspath(model_name_or_path)
    local = Path(raw).expanduser()
    if gguf_file is None and local.is_file() and local.suffix == ".gguf":
        local, gguf_file = local.parent, local.name
    if gguf_file is not None:
        return _gguf_checkpoint(raw, local, gguf_file, revision, token)
    if local.exists():
        if not local.is_dir():
            raise InvalidCheckpointError(f"model path {raw!r} is a file; a checkpoint is a folder")
        files = ("config.json", "config_sentence_transformers.json", "modules.json", METADATA_FILE)
        config, st_config, modules, metadata = (_read_local_json(local, n) for n in files)
        info = CheckpointInfo(str(local), True, config, st_config, modules, metadata or {})
        if config is None and modules is None and not metadata:
            raise InvalidCheckpointError(
                f"{raw!r} is not a model checkpoint: it has no config.json, modules.json or {METADATA_FILE}"
            )
        return info
    if os.path.isabs(raw) or raw.startswith((".", "~")) or not _HUB_ID.match(raw):
        raise CheckpointNotFoundError(f"model path {raw!r} does not exist")
    metadata = _read_hub_json(raw, METADATA_FILE, revision, token)
    modules = _read_hub_json(raw, "modules.json", revision, token)
    st_config = _read_hub_json(raw, "config_sentence_transformers.json", revision, token)
    config = _read_hub_json(raw, "config.json", revision, token)
    if config is None and modules is None and not metadata:
        raise CheckpointNotFoundError(
            f"model {raw!r} is not a local folder, and neither the hub nor the local cache has a checkpoint "
            "of that name (offline? pass the path of a downloaded checkpoint)"
        )
    return CheckpointInfo(raw, False, config, st_config, modules, metadata or {})


def checkpoint_info(checkpoint: str | os.PathLike[str] | CheckpointInfo) -> CheckpointInfo:
    """``checkpoint`` read (a folder or hub id), or as it is when it was read already."""
    return checkpoint if isinstance(checkpoint, CheckpointInfo) else read_checkpoint(checkpoint)


def _gguf_checkpoint(
    raw: str, local: Path, gguf_file: str, revision: str | None, token: str | bool | None
) -> CheckpointInfo:
    """A checkpoint whose config, tokenizer and weights are one GGUF file (llama.cpp's format).

    transformers dequantizes such a file on every load (seconds to minutes):
    :func:`~rag_retrieval_integrations.convert_gguf` writes an ordinary folder once instead.
    GGUF holds generative LMs, so the config names the causal-LM class of its architecture.
    """
    if not isinstance(gguf_file, str) or not gguf_file.endswith(".gguf"):
        raise ValueError(f"gguf_file must be the name of a .gguf file, got {gguf_file!r}")
    is_local = local.is_dir()
    if is_local and not (local / gguf_file).is_file():
        raise CheckpointNotFoundError(f"GGUF file {gguf_file!r} not found in {str(local)!r}")
    if not is_local and (os.path.isabs(raw) or raw.startswith((".", "~")) or not _HUB_ID.match(raw)):
        raise CheckpointNotFoundError(f"model path {raw!r} does not exist")
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    from .gguf import GGUF_READ_ERRORS, require_gguf

    require_gguf()
    where = str(local) if is_local else raw
    try:
        config = AutoConfig.from_pretrained(where, gguf_file=gguf_file, revision=revision, token=token).to_dict()
    except GGUF_READ_ERRORS as exc:
        raise InvalidCheckpointError(
            f"{gguf_file!r} in {where!r} is not a GGUF checkpoint transformers reads ({type(exc).__name__}: {exc}); "
            "a truncated download? copy or download it again"
        ) from exc
    causal = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(config.get("model_type"))
    if not config.get("architectures") and causal:
        config["architectures"] = [causal]
    metadata = _read_local_json(local, METADATA_FILE) if is_local else None
    return CheckpointInfo(where, is_local, config, None, None, metadata or {}, gguf_file=gguf_file)


def write_metadata(folder: str | os.PathLike[str], model_type: str, **fields: Any) -> Path:
    """Write our metadata file into a checkpoint folder (used by trainers and converters)."""
    path = Path(folder) / METADATA_FILE
    payload = {"format_version": METADATA_FORMAT_VERSION, "model_type": model_type, **fields}
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def is_decoder_only(config: dict[str, Any]) -> bool:
    """Whether ``config.json`` describes a decoder-only LM (Qwen2, Llama, Gemma...) rather than an encoder."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    kind = config.get("model_type")
    return kind in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and kind not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


BGE_M3_COLBERT_FILE = "colbert_linear.pt"


def colbert_format(info: CheckpointInfo) -> str | None:
    """Which ColBERT layout a checkpoint has: ``"multi-vector"`` (sentence-transformers
    ``MultiVectorEncoder``, PyLate, Stanford-NLP ``HF_ColBERT``), ``"bge-m3"`` (a transformers
    encoder with BGE-M3's ``colbert_linear.pt`` next to it, local folders only) or ``None``."""
    st_kind = st_model_type(info)
    pylate_modules = any(str(m.get("type", "")).startswith("pylate.") for m in info.modules or [])
    if st_kind in ("MultiVectorEncoder", "ColBERT") or pylate_modules or "HF_ColBERT" in info.architectures:
        return "multi-vector"
    if info.is_local and (Path(info.path) / BGE_M3_COLBERT_FILE).is_file():
        return "bge-m3"
    return None


def has_classification_head(info: CheckpointInfo) -> bool:
    """Whether ``config.json`` names a ``*ForSequenceClassification`` architecture (a scoring head)."""
    return any(a.endswith("ForSequenceClassification") for a in info.architectures)


def has_generation_head(info: CheckpointInfo) -> bool:
    """Whether ``config.json`` names a ``*ForCausalLM`` / ``*ForConditionalGeneration`` architecture."""
    return any(a.endswith(("ForCausalLM", "ForConditionalGeneration")) for a in info.architectures)


def st_model_type(info: CheckpointInfo) -> str | None:
    """The ``model_type`` of ``config_sentence_transformers.json`` (``"SentenceTransformer"``,
    ``"CrossEncoder"``, ``"MultiVectorEncoder"``, ``"SparseEncoder"``...), ``None`` when it has none."""
    return (info.st_config or {}).get("model_type")


def has_logit_score_head(info: CheckpointInfo) -> bool:
    """A sentence-transformers folder whose score is read from the LM head's logits (a ``LogitScore``
    module: how sentence-transformers 5.4+ saves Qwen3-Reranker), not from a classification head."""
    return any(str(module.get("type", "")).endswith("LogitScore") for module in info.modules or [])


def is_pair_classifier(info: CheckpointInfo) -> bool:
    """A sentence-transformers ``CrossEncoder`` folder (but one scoring with a ``LogitScore`` head: a
    causal LM, the ``"llm"`` family's), or a plain transformers folder with a sequence-classification
    head: one model reading query and document together."""
    kind = st_model_type(info)
    if kind == "CrossEncoder":
        return not has_logit_score_head(info)
    return kind is None and info.modules is None and has_classification_head(info)
