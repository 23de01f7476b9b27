"""LoRA on an fp32-loaded model with bf16 autocast on the CPU: fp32 master weights, no scaler."""

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

model = AutoModelForCausalLM.from_pretrained("gpt2", dtype=torch.float32)
model = get_peft_model(model, LoraConfig(r=8, target_modules=["c_attn"]))
args = TrainingArguments(output_dir="out", bf16=True, use_cpu=True, max_steps=10)
Trainer(model=model, args=args).train()
