"""A model loaded in bf16 and trained with TRL's default bf16=True: no fp32 master weights."""

import torch
from transformers import AutoModelForCausalLM
from trl import SFTConfig, SFTTrainer

model = AutoModelForCausalLM.from_pretrained("gpt2", dtype=torch.bfloat16)  # pure-bf16
config = SFTConfig(output_dir="out", max_steps=10)  # bf16=True: TRL's default
trainer = SFTTrainer(model=model, args=config)
trainer.train()
