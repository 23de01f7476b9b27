"""DDP + autocast on every rank: the mixed precision of one process, unchanged, times N.

Run with torchrun (gloo on CPUs, NCCL on GPUs):

    torchrun --standalone --nproc_per_node=2 scripts/dist_ddp.py --precision bf16

or from Python: ``course_utils.distributed.launch("dist_ddp", ["--precision", "bf16"])``.

Each rank trains on its slice of every step's global batch. DDP all-reduces (averages) the
gradients in backward, so every rank applies the same update. Step 1's averaged gradient is
compared with the gradient one process computes on the whole global batch: DDP is one big
batch, split.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from course_utils import dist_worker as W

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=W.MODELS, default="toy")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="bf16")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=4, help="per rank")
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    args = parser.parse_args(argv)

    ctx = W.init()
    amp_dtype = DTYPES.get(args.precision)
    model = W.build_model(args.model).to(ctx.device)
    vocab = model.config.vocab_size
    reference = copy.deepcopy(model) if ctx.rank == 0 else None  # one process, whole batch
    ddp = DDP(model, device_ids=[ctx.local_rank] if ctx.device.type == "cuda" else None)
    optimizer = torch.optim.AdamW(ddp.parameters(), lr=args.lr)
    scaler = torch.amp.GradScaler(ctx.device.type, enabled=args.precision == "fp16")
    ctx.log(
        f"{ctx.backend} | device {ctx.device} | {args.model} | precision {args.precision} | "
        f"local batch {args.batch_size} x {args.seq_len}, global batch "
        f"{args.batch_size * ctx.world_size} x {args.seq_len}"
    )

    losses, global_losses, step_times = [], [], []
    grad_error = None
    for step in range(1, args.steps + 1):
        started = time.perf_counter()
        batch = W.rank_batch(ctx, vocab, args.batch_size, args.seq_len, step)
        with torch.autocast(
            ctx.device.type, dtype=amp_dtype or torch.bfloat16, enabled=bool(amp_dtype)
        ):
            out = ddp(**batch)
        if step == 1:
            logits_dtype = out.logits.dtype
        scaler.scale(out.loss).backward()  # DDP averages the gradients across ranks here
        scaler.unscale_(optimizer)
        if step == 1:
            grad_error = _compare_with_one_process(ctx, ddp, reference, vocab, args, amp_dtype)
            grad_dtype = next(ddp.parameters()).grad.dtype
        torch.nn.utils.clip_grad_norm_(ddp.parameters(), max_norm=1.0)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        mean_loss = out.loss.detach().float().clone()
        torch.distributed.all_reduce(mean_loss)  # for the log only: the global batch's loss
        mean_loss = mean_loss.item() / ctx.world_size
        step_times.append(time.perf_counter() - started)
        losses.append(out.loss.item())
        global_losses.append(mean_loss)
        ctx.log(f"step {step} | local loss {losses[-1]:.4f} | global loss {mean_loss:.4f}")

    checksum = W.param_checksum(ddp.module)
    identical = W.same_on_all_ranks(checksum)
    weight_dtype = next(ddp.module.parameters()).dtype
    ctx.log(
        f"logits {logits_dtype} | weights {weight_dtype} | grads {grad_dtype} | "
        f"weights identical on all ranks: {identical}"
    )
    if grad_error is not None:
        ctx.log(f"step-1 gradient vs one process on the global batch: rel. error {grad_error:.2e}")
    W.write_result(
        ctx,
        {
            "script": "dist_ddp",
            "model": args.model,
            "precision": args.precision,
            "device": str(ctx.device),
            "local_losses": losses,
            "global_losses": global_losses,
            "step_times_s": step_times,
            "logits_dtype": str(logits_dtype),
            "weight_dtype": str(weight_dtype),
            "grad_dtype": str(grad_dtype),
            "weights_identical": identical,
            "grad_rel_error_vs_one_process": grad_error,
        },
    )
    W.finish()


def _compare_with_one_process(ctx, ddp, reference, vocab, args, amp_dtype):
    """Rank 0: the gradient of one process on the whole global batch vs DDP's averaged one."""
    if ctx.rank != 0:
        return None
    full = W.global_batch(vocab, ctx.world_size, args.batch_size, args.seq_len, step=1)
    full = {k: v.to(ctx.device) for k, v in full.items()}
    with torch.autocast(
        ctx.device.type, dtype=amp_dtype or torch.bfloat16, enabled=bool(amp_dtype)
    ):
        # Each rank's loss is a mean over its rows; DDP averages those means. With equal slices
        # that is the mean over the global batch, i.e. this loss.
        loss = reference(**full).loss
    loss.backward()
    return W.relative_error(W.flat_grads(ddp.module), W.flat_grads(reference))


if __name__ == "__main__":
    main()
