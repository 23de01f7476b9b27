"""FSDP2 ``fully_shard`` with ``MixedPrecisionPolicy``: what is stored, computed and reduced in
which dtype, and what reducing gradients in bf16 costs.

    torchrun --standalone --nproc_per_node=2 scripts/dist_fsdp.py

The same model, the same batches, three policies:

- ``fp32``: no policy, everything in fp32 (the reference);
- ``bf16/fp32``: ``MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)``,
  compute in bf16, gradients reduce-scattered in fp32;
- ``bf16/bf16``: ``MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.bfloat16)``,
  gradients reduced in bf16 too (half the traffic, one more rounding per hop).

Each rank gathers the full gradients, and the errors against fp32 are printed; then a few
training steps with the bf16/fp32 policy show the loss going down.
"""

from __future__ import annotations

import argparse

import torch
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

from course_utils import dist_worker as W

POLICIES = {
    "fp32": None,
    "bf16/fp32": MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32),
    "bf16/bf16": MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.bfloat16),
}


def shard(model: torch.nn.Module, policy: MixedPrecisionPolicy | None) -> torch.nn.Module:
    """``fully_shard`` each block, then the root (which takes the embeddings and the head)."""
    kwargs = {} if policy is None else {"mp_policy": policy}
    for block in W.blocks_of(model):
        fully_shard(block, **kwargs)
    fully_shard(model, **kwargs)
    return model


def one_backward(ctx, model_name, policy_name, args):
    """Shard a fresh model with one policy, run forward + backward on step 1's batch; report
    the dtypes seen and the full gradient."""
    model = shard(W.build_model(model_name).to(ctx.device), POLICIES[policy_name])
    vocab = model.config.vocab_size
    seen = {}
    block = W.blocks_of(model)[0]

    def record(_module, _inputs, output):  # a forward hook that returns None keeps the output
        seen.setdefault("block_output", (output[0] if isinstance(output, tuple) else output).dtype)

    hook = block.register_forward_hook(record)
    batch = W.rank_batch(ctx, vocab, args.batch_size, args.seq_len, step=1)
    out = model(**batch)
    out.loss.backward()
    hook.remove()
    param = next(model.parameters())
    local = param.to_local()
    info = {
        "sharded_param_dtype": str(param.dtype),
        "local_shard_shape": list(local.shape),
        "full_shape": list(param.shape),
        "block_output_dtype": str(seen["block_output"]),
        "logits_dtype": str(out.logits.dtype),
        "grad_dtype": str(param.grad.dtype),
        "loss": out.loss.item(),
        "local_param_bytes": sum(
            p.to_local().numel() * p.element_size() for p in model.parameters()
        ),
        "full_param_bytes": sum(p.numel() * p.element_size() for p in model.parameters()),
    }
    return info, W.flat_grads(model)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=W.MODELS, default="toy")
    parser.add_argument("--steps", type=int, default=4, help="training steps with bf16/fp32")
    parser.add_argument("--batch-size", type=int, default=4, help="per rank")
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    args = parser.parse_args(argv)
    ctx = W.init()
    ctx.log(f"{ctx.backend} | device {ctx.device} | {args.model} | FSDP2 fully_shard")

    infos, grads = {}, {}
    for name in POLICIES:
        infos[name], grads[name] = one_backward(ctx, args.model, name, args)
        i = infos[name]
        ctx.log(
            f"policy {name:9} | stored {i['sharded_param_dtype']} shard {i['local_shard_shape']} "
            f"of {i['full_shape']} | block output {i['block_output_dtype']} | "
            f"grad {i['grad_dtype']} | loss {i['loss']:.4f}"
        )
    exact = grads["fp32"]
    errors = {
        "bf16/fp32 vs fp32": W.relative_error(grads["bf16/fp32"], exact),
        "bf16/bf16 vs fp32": W.relative_error(grads["bf16/bf16"], exact),
        # Same bf16 compute, different reduction: the reduction's own error.
        "bf16/bf16 vs bf16/fp32": W.relative_error(grads["bf16/bf16"], grads["bf16/fp32"]),
    }
    nonzero = grads["bf16/fp32"].abs() > 0
    worst = (
        (
            (grads["bf16/bf16"] - grads["bf16/fp32"]).abs()[nonzero]
            / grads["bf16/fp32"].abs()[nonzero]
        )
        .max()
        .item()
    )
    for what, value in errors.items():
        ctx.log(f"gradient rel. error, {what}: {value:.2e}")
    ctx.log(f"largest element-wise rel. error of the bf16 reduction: {worst:.2e}")

    # A few steps with the recommended policy: bf16 compute, fp32 reduction, fp32 master shards.
    model = shard(W.build_model(args.model).to(ctx.device), POLICIES["bf16/fp32"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    losses = []
    for step in range(1, args.steps + 1):
        batch = W.rank_batch(ctx, model.config.vocab_size, args.batch_size, args.seq_len, step=1)
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()  # on the fp32 shards: each rank updates only its part
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        ctx.log(f"train step {step} (bf16/fp32) | loss {losses[-1]:.4f}")
    identical = W.same_on_all_ranks(W.param_checksum(model))
    optimizer_dtype = str(next(iter(optimizer.state.values()))["exp_avg"].dtype)
    ctx.log(f"optimizer state {optimizer_dtype} | full weights identical on all ranks: {identical}")
    W.write_result(
        ctx,
        {
            "script": "dist_fsdp",
            "model": args.model,
            "device": str(ctx.device),
            "policies": infos,
            "grad_rel_errors": errors,
            "bf16_reduce_max_elementwise_rel_error": worst,
            "train_losses": losses,
            "optimizer_state_dtype": optimizer_dtype,
            "weights_identical": identical,
        },
    )
    W.finish()


if __name__ == "__main__":
    main()
