"""fp32 fine-tuning with TF32 matmuls on (say bf16=False: TRL turns bf16 on by default)."""

import torch
from transformers import AutoModelForCausalLM
from trl import SFTConfig, SFTTrainer

torch.backends.cuda.matmul.allow_tf32 = True
model = AutoModelForCausalLM.from_pretrained("gpt2", dtype=torch.float32)
config = SFTConfig(output_dir="out", bf16=False, max_steps=10)
SFTTrainer(model=model, args=config).train()
