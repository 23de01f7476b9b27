"""QLoRA without a compute dtype: the 4-bit layers compute in fp32."""

from transformers import AutoModelForCausalLM, BitsAndBytesConfig

quant = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4"}
bnb_config = BitsAndBytesConfig(**quant)  # qlora-fp32-compute
model = AutoModelForCausalLM.from_pretrained("gpt2", quantization_config=bnb_config)
