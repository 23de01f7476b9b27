"""Both precision flags, through a dict of settings."""

from transformers import TrainingArguments

settings = dict(output_dir="out", fp16=True, bf16=True, use_cpu=False)
args = TrainingArguments(**settings)  # fp16-and-bf16
