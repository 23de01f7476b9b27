"""The pre-2.4 spelling of AMP, with the backward pass inside the autocast block."""

import torch
from torch import nn

model = nn.Linear(16, 1).cuda()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
scaler = torch.cuda.amp.GradScaler()  # deprecated-cuda-amp

for _ in range(10):
    x = torch.randn(8, 16, device="cuda")
    with torch.cuda.amp.autocast():  # deprecated-cuda-amp
        loss = model(x).pow(2).mean()
        scaler.scale(loss).backward()  # backward-in-autocast
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad()
