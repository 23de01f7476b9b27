"""fp16 fine-tuning of a checkpoint pretrained in bf16 (its activations outgrow 65504)."""

import torch
from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

model = AutoModelForCausalLM.from_pretrained("google/gemma-2-2b", dtype=torch.float32)
args = TrainingArguments(output_dir="out", fp16=True, max_steps=10)
trainer = Trainer(model=model, args=args)  # fp16-on-bf16-checkpoint
trainer.train()
