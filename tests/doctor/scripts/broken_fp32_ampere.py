"""A plain fp32 loop: fine anywhere, but on an Ampere+ GPU TF32 would be faster (tf32-off)."""

import torch
from torch import nn

model = nn.Linear(1024, 1024).cuda()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for _ in range(10):
    loss = model(torch.randn(64, 1024, device="cuda")).pow(2).mean()
    loss.backward()  # tf32-off on an A100
    optimizer.step()
    optimizer.zero_grad()
