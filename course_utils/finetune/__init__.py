"""Fine-tuning the tiny GPT-2 with TRL/PEFT in fp32, bf16 and fp16, and auditing what really ran.

Taught in notebook 05: ``sft`` in "1. The original tutorial's code" (its part "The working
version") and "2. A fine-tuning task worth watching"; ``runs`` in "3. The same fine-tuning in fp32,
bf16 and fp16, side by side" and "5. Loading in 16 bits is not mixed precision"; ``audit`` in
"4. The precision audit"; ``reference_runs`` in "6. On a GPU".
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
