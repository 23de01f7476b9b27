"""bf16=True on a machine without a GPU, without use_cpu=True: TrainingArguments raises
"Your setup doesn't support bf16/gpu" (transformers 5.24). On a GPU with bf16 it is fine."""

from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

model = AutoModelForCausalLM.from_pretrained("gpt2", dtype="float32")
args = TrainingArguments(output_dir="out", bf16=True, max_steps=10)  # bf16-needs-use-cpu (no GPU)
trainer = Trainer(model=model, args=args)
trainer.train()
