"""QLoRA without a compute dtype on a model loaded in fp16: the 4-bit layers get fp16 inputs and
compute in fp32, bitsandbytes' default (a model loaded in bf16 would compute in bf16)."""

import torch
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

quant = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4"}
bnb_config = BitsAndBytesConfig(**quant)  # qlora-fp32-compute
model = AutoModelForCausalLM.from_pretrained(
    "gpt2", quantization_config=bnb_config, dtype=torch.float16
)
