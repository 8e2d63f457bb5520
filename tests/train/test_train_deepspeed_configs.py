"""The shipped DeepSpeed configs (``accelerate_configs/deepspeed_zero{1,2,3}.yaml``) build DeepSpeed's own config
objects, as a launch does: accelerate reads the file and builds its ``DeepSpeedPlugin``, the HF Trainer fills the
``auto`` values from the training arguments, and DeepSpeed validates the result (``DeepSpeedConfig``, pydantic).
No engine starts: that needs a GPU (docs/training.md)."""

from __future__ import annotations

from importlib import resources

import pytest

ACCELERATE_TO_PLUGIN = (
    "zero_stage",
    "gradient_accumulation_steps",
    "gradient_clipping",
    "offload_optimizer_device",
    "offload_param_device",
    "zero3_init_flag",
    "zero3_save_16bit_model",
)


def deepspeed_config(stage: int, *, batch_size: int = 4, accumulation: int = 2) -> dict:
    """The config DeepSpeed receives from ``accelerate launch --config_file deepspeed_zero<stage>.yaml``."""
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DeepSpeedPlugin
    from transformers import TrainingArguments
    from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig

    path = resources.files("rag_retrieval_train").joinpath(f"accelerate_configs/deepspeed_zero{stage}.yaml")
    launch = load_config_from_file(str(path))
    unknown = set(launch.deepspeed_config) - set(ACCELERATE_TO_PLUGIN)
    assert not unknown, f"keys accelerate does not pass to DeepSpeedPlugin: {unknown}"
    plugin = DeepSpeedPlugin(**launch.deepspeed_config)
    plugin.set_mixed_precision(launch.mixed_precision)
    args = TrainingArguments(
        output_dir="unused",
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=accumulation,
        max_grad_norm=1.0,
        bf16=launch.mixed_precision == "bf16",
        use_cpu=True,
        report_to=[],
    )
    config = HfTrainerDeepSpeedConfig(plugin.deepspeed_config)
    config.trainer_config_process(args)
    return config.config


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_shipped_deepspeed_configs_build_deepspeeds_config(stage):
    from deepspeed.runtime.config import DeepSpeedConfig

    built = DeepSpeedConfig(deepspeed_config(stage))  # world size 1: train_batch_size = micro x accumulation
    assert built.zero_optimization_stage == stage
    assert (built.train_micro_batch_size_per_gpu, built.gradient_accumulation_steps) == (4, 2)
    assert built.train_batch_size == 8 and built.gradient_clipping == 1.0
    assert built.bfloat16_config.enabled and not built.float16_config.enabled
    if stage == 3:  # whole 16-bit weights gathered on save: the checkpoint loads on one device
        assert built.zero_config.gather_16bit_weights_on_model_save


def test_a_bad_deepspeed_value_is_refused():
    """The validation can fail: DeepSpeed refuses an unknown offload device."""
    from deepspeed.runtime.config import DeepSpeedConfig

    config = deepspeed_config(2)
    config["zero_optimization"]["offload_optimizer"]["device"] = "tpu"
    with pytest.raises(Exception, match="tpu|offload"):
        DeepSpeedConfig(config)
