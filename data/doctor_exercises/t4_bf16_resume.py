"""Exercise 3 -- judge it as if it ran on a Tesla T4 (16 GB, no native bf16).

A long run with bf16 autocast, clipping and a checkpoint every 1000 steps.
"""

import torch
from my_project.data import train_loader  # batches (x, y)
from my_project.model import Net
from torch import nn

device = "cuda"
model = Net().to(device)
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
scaler = torch.amp.GradScaler(device)

for step, (x, y) in enumerate(train_loader):
    x, y = x.to(device), y.to(device)
    with torch.autocast(device, dtype=torch.bfloat16):
        loss = nn.functional.cross_entropy(model(x), y)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad()
    if step % 1000 == 0:
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step}
        torch.save(state, f"checkpoint-{step}.pt")
