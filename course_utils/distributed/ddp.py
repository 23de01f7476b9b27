"""DDP + autocast on every rank: the mixed precision of one process, unchanged, times N.

Taught in notebook 08, section "1. DDP + bf16 autocast on two ranks". A torchrun worker, run as
a module (gloo on CPUs, NCCL on GPUs):

    torchrun --standalone --nproc_per_node=2 -m course_utils.distributed.ddp --precision bf16

or from Python: ``course_utils.distributed.launch("ddp", ["--precision", "bf16"])``.

Each rank trains on its slice of every step's global batch. DDP all-reduces (averages) the
gradients in backward, so every rank applies the same update. Before training, the averaged
gradient of step 1's batch is compared with the gradient one process computes on the whole
global batch, in fp32 and in the chosen precision: DDP is one big batch, split.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import time

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from course_utils.distributed import worker as W
from course_utils.precision import AUTOCAST_DTYPES


def autocast(ctx: W.Context, precision: str):
    """``torch.autocast`` for bf16/fp16; nothing for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(ctx.device.type, dtype=AUTOCAST_DTYPES[precision])


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
    model = W.build_model(args.model).to(ctx.device)
    vocab = model.config.vocab_size
    reference = copy.deepcopy(model) if ctx.rank == 0 else None  # one process, whole batch
    ddp = DDP(model, device_ids=[ctx.local_rank] if ctx.device.type == "cuda" else None)
    ctx.log(
        f"{ctx.backend} | device {ctx.device} | {args.model} | precision {args.precision} | "
        f"local batch {args.batch_size} x {args.seq_len}, global batch "
        f"{args.batch_size * ctx.world_size} x {args.seq_len}"
    )

    # DDP vs one process, on step 1's batch, before any update.
    grad_errors = {}
    for precision in dict.fromkeys(("fp32", args.precision)):
        error = compare_with_one_process(ctx, ddp, reference, vocab, args, precision)
        if error is not None:
            grad_errors[precision] = error
            ctx.log(f"step-1 gradient, DDP vs one process on the global batch, {precision}: "
                    f"rel. error {error:.2e}")  # fmt: skip

    optimizer = torch.optim.AdamW(ddp.parameters(), lr=args.lr)
    scaler = torch.amp.GradScaler(ctx.device.type, enabled=args.precision == "fp16")
    losses, global_losses, step_times = [], [], []
    norm_dtypes = {}  # autocast decides per op: in which dtype does a layer norm run?

    def record_norm(_module, inputs, output):  # returns None: the output is kept
        norm_dtypes.setdefault("in", inputs[0].dtype)
        norm_dtypes.setdefault("out", output.dtype)

    hook = W.first_layer_norm(W.blocks_of(ddp.module)[0]).register_forward_hook(record_norm)
    for step in range(1, args.steps + 1):
        started = time.perf_counter()
        batch = W.rank_batch(ctx, vocab, args.batch_size, args.seq_len, step)
        with autocast(ctx, args.precision):
            out = ddp(**batch)
        if step == 1:
            hook.remove()  # step 1 has shown the dtypes
        scaler.scale(out.loss).backward()  # DDP averages the gradients across ranks here
        scaler.unscale_(optimizer)
        if step == 1:
            logits_dtype = out.logits.dtype
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

    identical = W.same_on_all_ranks(W.param_checksum(ddp.module))
    weight_dtype = next(ddp.module.parameters()).dtype
    ctx.log(
        f"logits {logits_dtype} | layer norm in/out {norm_dtypes['in']}/{norm_dtypes['out']} | "
        f"weights {weight_dtype} | grads {grad_dtype} | weights identical on all ranks: {identical}"
    )
    W.write_result(
        ctx,
        {
            "script": "ddp",
            "model": args.model,
            "precision": args.precision,
            "device": str(ctx.device),
            "local_losses": losses,
            "global_losses": global_losses,
            "step_times_s": step_times,
            "logits_dtype": str(logits_dtype),
            "layer_norm_dtypes": [str(norm_dtypes["in"]), str(norm_dtypes["out"])],
            "weight_dtype": str(weight_dtype),
            "grad_dtype": str(grad_dtype),
            "weights_identical": identical,
            "grad_rel_error_vs_one_process": grad_errors or None,
        },
    )
    W.finish()


def compare_with_one_process(ctx, ddp, reference, vocab, args, precision):
    """Every rank: DDP's averaged gradient of step 1's batch. Rank 0 also: the gradient of one
    process on the whole global batch, and their relative difference (None on other ranks).
    Leaves no gradients behind."""
    batch = W.rank_batch(ctx, vocab, args.batch_size, args.seq_len, step=1)
    with autocast(ctx, precision):
        loss = ddp(**batch).loss
    loss.backward()  # outside autocast, as in training; DDP all-reduces across ranks here
    error = None
    if ctx.rank == 0:
        full = W.global_batch(vocab, ctx.world_size, args.batch_size, args.seq_len, step=1)
        full = {k: v.to(ctx.device) for k, v in full.items()}
        with autocast(ctx, precision):
            # Each rank's loss is a mean over its rows and DDP averages those means: with equal
            # slices that is the mean over the global batch, i.e. this loss.
            loss = reference(**full).loss
        loss.backward()
        error = W.relative_error(W.flat_grads(ddp.module), W.flat_grads(reference))
        reference.zero_grad(set_to_none=True)
    ddp.zero_grad(set_to_none=True)
    return error


if __name__ == "__main__":
    main()
