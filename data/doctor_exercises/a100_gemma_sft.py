"""Exercise 2 -- judge it as if it ran on NVIDIA A100s (80 GB, native bf16).

Supervised fine-tuning of Gemma 2 with TRL, sharded with FSDP over the node's GPUs.
"""

import torch
from datasets import load_dataset
from transformers import AutoModelForCausalLM
from trl import SFTConfig, SFTTrainer

model = AutoModelForCausalLM.from_pretrained("google/gemma-2-2b", dtype=torch.bfloat16)
dataset = load_dataset("trl-lib/Capybara", split="train")
config = SFTConfig(
    output_dir="gemma-sft",
    max_length=1024,
    learning_rate=2e-5,
    fsdp="full_shard auto_wrap",
)
trainer = SFTTrainer(model=model, args=config, train_dataset=dataset)
trainer.train()
