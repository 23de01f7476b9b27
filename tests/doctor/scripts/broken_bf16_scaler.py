"""bf16 autocast with a GradScaler (needless; on CUDA it fails on bf16 gradients)."""

import torch
from torch import nn

model = nn.Linear(16, 1).cuda()
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
scaler = torch.amp.GradScaler("cuda")  # scaler-with-bf16

for _ in range(10):
    x = torch.randn(8, 16, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):  # bf16-emulated on a T4
        loss = model(x).pow(2).mean()
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad()
