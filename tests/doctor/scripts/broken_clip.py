"""A hand-written fp16 loop that clips the scaled gradients and saves no scaler state."""

import torch
from torch import nn

model = nn.Linear(16, 1).cuda()
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
scaler = torch.amp.GradScaler("cuda")

for step in range(100):
    x, y = torch.randn(8, 16, device="cuda"), torch.randn(8, 1, device="cuda")
    with torch.autocast("cuda", dtype=torch.float16):
        loss = nn.functional.mse_loss(model(x), y)
    scaler.scale(loss).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)  # clip-before-unscale
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad()
    if step % 50 == 0:
        torch.save(  # scaler-not-checkpointed
            {"model": model.state_dict(), "optimizer": optimizer.state_dict()}, "ckpt.pt"
        )
