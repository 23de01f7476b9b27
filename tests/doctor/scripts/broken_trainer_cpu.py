"""fp16=True for a Trainer: on a machine without a CUDA GPU it trains fp32, silently."""

from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

model = AutoModelForCausalLM.from_pretrained("gpt2", dtype="float32")
args = TrainingArguments(output_dir="out", fp16=True, max_steps=10)  # fp16-on-cpu (no GPU)
trainer = Trainer(model=model, args=args)
trainer.train()
