"""The same DDP + bf16 autocast through Hugging Face Accelerate.

Taught in notebook 08, section "4. The same in Hugging Face Accelerate". Named
``with_accelerate`` (not ``accelerate``) so that it never shadows the ``accelerate`` library.

`accelerate launch --mixed_precision bf16 script.py` (or `mixed_precision: bf16` in the config file
``accelerate launch --config_file`` reads) sets ``ACCELERATE_MIXED_PRECISION=bf16`` in the
environment and starts the processes; ``Accelerator()`` reads that variable. Launching this
worker with torchrun and that variable set is the same thing:

    ACCELERATE_MIXED_PRECISION=bf16 torchrun --standalone --nproc_per_node=2 \\
        -m course_utils.distributed.with_accelerate

``accelerator.prepare`` wraps the model in DDP and its forward in autocast;
``accelerator.backward`` scales the loss when fp16 needs it.
"""

from __future__ import annotations

import argparse
import os

import torch

from course_utils.distributed import worker as W


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=W.MODELS, default="toy")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4, help="per rank")
    parser.add_argument("--seq-len", type=int, default=32)
    args = parser.parse_args(argv)

    from accelerate import Accelerator  # only where accelerate is installed

    # Mixed precision comes from ACCELERATE_MIXED_PRECISION. On CPUs (or fewer GPUs than
    # ranks) run on the CPU with gloo, as `accelerate launch --cpu` / `use_cpu: true` would.
    gpus_enough = torch.cuda.device_count() >= int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    accelerator = Accelerator(cpu=not (torch.cuda.is_available() and gpus_enough))
    rank, world = accelerator.process_index, accelerator.num_processes

    def log(message: str) -> None:
        print(f"[rank {rank}/{world}] {message}", flush=True)

    model = W.build_model(args.model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model, optimizer = accelerator.prepare(model, optimizer)
    log(
        f"ACCELERATE_MIXED_PRECISION={os.environ.get('ACCELERATE_MIXED_PRECISION')} -> "
        f"mixed_precision {accelerator.mixed_precision} | {accelerator.distributed_type} | "
        f"device {accelerator.device} | model wrapped in {type(model).__name__}"
    )
    ctx = W.Context(rank, world, accelerator.local_process_index, accelerator.device, "")
    losses = []
    for step in range(1, args.steps + 1):
        batch = W.rank_batch(ctx, 256 if args.model == "toy" else model.module.config.vocab_size,
                             args.batch_size, args.seq_len, step)  # fmt: skip
        out = model(**batch)  # prepare() put autocast around forward
        accelerator.backward(out.loss)
        optimizer.step()
        optimizer.zero_grad()
        losses.append(out.loss.item())
        log(f"step {step} | logits {out.logits.dtype} | loss {losses[-1]:.4f}")
    weight_dtype = next(model.parameters()).dtype
    log(f"weights {weight_dtype} (autocast keeps fp32 master weights)")
    W.write_result(
        W.Context(rank, world, ctx.local_rank, ctx.device, str(accelerator.distributed_type)),
        {
            "script": "with_accelerate",
            "mixed_precision": accelerator.mixed_precision,
            "distributed_type": str(accelerator.distributed_type),
            "logits_dtype": str(out.logits.dtype),
            "weight_dtype": str(weight_dtype),
            "losses": losses,
        },
    )
    accelerator.end_training()


if __name__ == "__main__":
    main()
