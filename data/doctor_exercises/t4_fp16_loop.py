"""Exercise 1 -- judge it as if it ran on a Tesla T4 (16 GB, no native bf16).

Fine-tune GPT-2 in fp16 with a hand-written loop.
"""

import torch
from my_project.data import train_loader  # batches of input_ids, attention_mask, labels
from transformers import AutoModelForCausalLM

model = AutoModelForCausalLM.from_pretrained("gpt2").cuda()
model.half()  # "fp16 training": half the memory for the weights
optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
scaler = torch.cuda.amp.GradScaler()

for batch in train_loader:
    batch = {k: v.cuda() for k, v in batch.items()}
    with torch.autocast("cuda", dtype=torch.float16):
        loss = model(**batch).loss
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad()
