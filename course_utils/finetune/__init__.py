"""Fine-tuning the tiny GPT-2 with TRL/PEFT in fp32, bf16 and fp16, and auditing what really ran.

Taught in notebook 05.
"""

from course_utils.finetune.sft import (
    DATASET_NAME,
    DEFAULT_BATCH_SIZE,
    DEFAULT_LEARNING_RATE,
    DEFAULT_MAX_LENGTH,
    SPLITS,
    TEXT_FIELD,
    available_precisions,
    check_sft_dataset,
    dataset_path,
    finetune_dir,
    generate_answer,
    load_finetune_dataset,
    lora_config,
    outcome,
    prompt_of,
    sft_config,
    sft_trainer,
    text_loss,
)

__all__ = [
    "DATASET_NAME",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_LEARNING_RATE",
    "DEFAULT_MAX_LENGTH",
    "SPLITS",
    "TEXT_FIELD",
    "available_precisions",
    "check_sft_dataset",
    "dataset_path",
    "finetune_dir",
    "generate_answer",
    "load_finetune_dataset",
    "lora_config",
    "outcome",
    "prompt_of",
    "sft_config",
    "sft_trainer",
    "text_loss",
]
