"""A model cast to fp16 and trained with fp16=True: the GradScaler refuses fp16 gradients."""

from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

model = AutoModelForCausalLM.from_pretrained("gpt2")
model.half()  # fp16-trainable-weights
args = TrainingArguments(output_dir="out", fp16=True, max_steps=10)
Trainer(model=model, args=args).train()
