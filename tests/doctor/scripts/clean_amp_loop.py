"""The course's recipe: autocast for the forward only, a scaler only for fp16, unscale_ before
clipping, the scaler saved with the checkpoint."""

import torch
from torch import nn

device = "cuda"
dtype = torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
torch.set_float32_matmul_precision("high")

model = nn.Linear(16, 1).to(device)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
scaler = torch.amp.GradScaler(device, enabled=(dtype == torch.float16))

for step in range(100):
    x, y = torch.randn(8, 16, device=device), torch.randn(8, 1, device=device)
    with torch.autocast(device, dtype=dtype):
        loss = nn.functional.mse_loss(model(x), y)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad()
    if step % 50 == 0:
        checkpoint = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(),
        }
        torch.save(checkpoint, "ckpt.pt")
