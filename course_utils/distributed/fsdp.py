"""FSDP2 ``fully_shard`` with ``MixedPrecisionPolicy``: what is stored, computed and reduced in
which dtype, and what reducing gradients in bf16 costs.

Taught in notebook 08, sections "2. FSDP2: `fully_shard` with a `MixedPrecisionPolicy`" and
"3. Two FSDP2 pitfalls". A torchrun worker, run as a module:

    torchrun --standalone --nproc_per_node=2 -m course_utils.distributed.fsdp

or from Python: ``course_utils.distributed.launch("fsdp", ["--model", "mini"])``.

The same model, the same batches, three policies:

- ``fp32``: no policy, everything in fp32 (the reference);
- ``bf16/fp32``: ``MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)``,
  compute in bf16, gradients reduce-scattered in fp32;
- ``bf16/bf16``: ``MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.bfloat16)``,
  gradients reduced in bf16 too (half the traffic, one more rounding per hop).

Each rank gathers the full gradients, and the errors against fp32 are printed; then a few
training steps with the bf16/fp32 policy, each on a fresh batch, and the loss on a held-out batch
before and after.

Then two pitfalls practitioners hit:

- a model *loaded* in bf16, then sharded with the bf16/fp32 policy: the shards FSDP stores (the
  weights the optimizer updates) are bf16, so this is pure bf16 training; one AdamW step at a
  fine-tuning learning rate, compared with the same model loaded in fp32;
- gradient accumulation with ``model.set_requires_gradient_sync(False)``: in which dtype each
  rank keeps the unsharded gradients between micro-steps (``reduce_dtype``, the docs say), and
  what accumulating in bf16 costs.
"""

from __future__ import annotations

import argparse

import torch
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

from course_utils.distributed import worker as W
from course_utils.precision import DTYPES

POLICIES = {
    "fp32": None,
    "bf16/fp32": MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32),
    "bf16/bf16": MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.bfloat16),
}


LOADED = {name: DTYPES[name] for name in ("fp32", "bf16")}  # the checkpoint dtypes compared


def heldout_loss(ctx, model, args) -> float:
    """The loss on step 0's global batch (no training step uses it), averaged over the ranks."""
    batch = W.rank_batch(ctx, model.config.vocab_size, args.batch_size, args.seq_len, step=0)
    with torch.no_grad():
        loss = model(**batch).loss.detach().float()
    torch.distributed.all_reduce(loss)
    return loss.item() / ctx.world_size


def loaded_in(ctx, args, dtype: torch.dtype) -> dict:
    """Pitfall 1: the model as loaded (``from_pretrained(..., dtype=torch.bfloat16)``, or a bf16
    checkpoint with ``dtype="auto"``, gives the same parameters as ``.to(torch.bfloat16)`` here),
    sharded with the bf16/fp32 policy, one AdamW step at a fine-tuning learning rate: which
    dtype FSDP stores, and how many weights (of those with a nonzero gradient) the step changed."""
    model = shard(W.build_model(args.model).to(ctx.device, dtype), POLICIES["bf16/fp32"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.finetune_lr)
    batch = W.rank_batch(ctx, model.config.vocab_size, args.batch_size, args.seq_len, step=1)
    model(**batch).loss.backward()
    before = [p.to_local().detach().clone() for p in model.parameters()]
    grads = [p.grad.to_local() for p in model.parameters()]
    param = next(model.parameters())
    info = {"sharded_param_dtype": str(param.dtype), "grad_dtype": str(param.grad.dtype)}
    optimizer.step()
    unchanged = total = 0
    for p, old, g in zip(model.parameters(), before, grads, strict=True):
        moved = g != 0  # a weight with a zero gradient is not expected to move
        unchanged += (p.to_local().detach()[moved] == old[moved]).sum().item()
        total += moved.sum().item()
    counts = torch.tensor([unchanged, total], dtype=torch.float64)
    torch.distributed.all_reduce(counts)  # over every rank's shard: the whole model
    info["unchanged_fraction"] = (counts[0] / counts[1]).item()
    info["optimizer_state_dtype"] = str(next(iter(optimizer.state.values()))["exp_avg"].dtype)
    return info


def held_unsharded_grads(model: torch.nn.Module) -> list[torch.Tensor]:
    """The unsharded gradients FSDP2 keeps between micro-steps when gradient sync is off.

    These live in FSDP2's internals (checked against torch 2.13): each ``FSDPParam`` holds
    ``unsharded_accumulated_grad`` when it upcasts to ``reduce_dtype``, else the unsharded
    parameter's ``.grad``. There is no public API for them: a learner sees only that the sharded
    ``param.grad`` stays None until the synced micro-step."""
    held = []
    for module in model.modules():
        if not isinstance(module, FSDPModule):
            continue
        for group in module._get_fsdp_state()._fsdp_param_groups:
            for fsdp_param in group.fsdp_params:
                grad = fsdp_param.unsharded_accumulated_grad
                if grad is None:
                    unsharded = getattr(fsdp_param, "_unsharded_param", None)
                    grad = None if unsharded is None else unsharded.grad
                if grad is not None:
                    held.append(grad)
    if not held:
        raise RuntimeError(
            "found no accumulated gradients in FSDP2's internals: has torch changed?"
        )
    return held


def accumulate(ctx, args, policy_name: str) -> dict:
    """Pitfall 2: ``micro_steps`` micro-batches, gradient sync off for all but the last: the dtype
    and size of what each rank keeps between micro-steps, and the full gradient at the end."""
    model = shard(W.build_model(args.model).to(ctx.device), POLICIES[policy_name])
    vocab = model.config.vocab_size
    for micro in range(1, args.micro_steps + 1):
        last = micro == args.micro_steps
        model.set_requires_gradient_sync(last)
        batch = W.rank_batch(ctx, vocab, args.batch_size, args.seq_len, step=100 + micro)
        (model(**batch).loss / args.micro_steps).backward()
        if micro == args.micro_steps - 1:  # between micro-steps: nothing reduced yet
            held = held_unsharded_grads(model)
            info = {
                "accumulated_dtype": ",".join(sorted({str(g.dtype) for g in held})),
                "accumulated_bytes": sum(g.numel() * g.element_size() for g in held),
                "sharded_grad_is_none": all(p.grad is None for p in model.parameters()),
            }
    param = next(model.parameters())
    info["final_grad_dtype"] = str(param.grad.dtype)
    info["local_param_bytes"] = sum(
        p.to_local().numel() * p.element_size() for p in model.parameters()
    )
    info["grad"] = W.flat_grads(model)
    return info


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

    def record_norm(_module, _inputs, output):  # the policy casts per module: the norm too
        seen.setdefault("layer_norm", output.dtype)

    hooks = [
        block.register_forward_hook(record),
        W.first_layer_norm(block).register_forward_hook(record_norm),
    ]
    batch = W.rank_batch(ctx, vocab, args.batch_size, args.seq_len, step=1)
    out = model(**batch)
    out.loss.backward()
    for hook in hooks:
        hook.remove()
    param = next(model.parameters())
    local = param.to_local()
    info = {
        "sharded_param_dtype": str(param.dtype),
        "local_shard_shape": list(local.shape),
        "full_shape": list(param.shape),
        "block_output_dtype": str(seen["block_output"]),
        "layer_norm_dtype": str(seen["layer_norm"]),
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
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--finetune-lr", type=float, default=1e-5, help="for the bf16-loaded step")
    parser.add_argument("--micro-steps", type=int, default=4, help="for gradient accumulation")
    args = parser.parse_args(argv)
    if args.micro_steps < 2:
        parser.error(
            "--micro-steps must be at least 2 (accumulation needs a micro-step without sync)"
        )
    ctx = W.init()
    ctx.log(f"{ctx.backend} | device {ctx.device} | {args.model} | FSDP2 fully_shard")

    infos, grads = {}, {}
    for name in POLICIES:
        infos[name], grads[name] = one_backward(ctx, args.model, name, args)
        i = infos[name]
        ctx.log(
            f"policy {name:9} | stored {i['sharded_param_dtype']} shard {i['local_shard_shape']} "
            f"of {i['full_shape']} | layer norm out {i['layer_norm_dtype']} | "
            f"block output {i['block_output_dtype']} | "
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

    # A few steps with the recommended policy: bf16 compute, fp32 reduction, fp32 master shards,
    # a fresh batch every step, and a held-out batch (step 0, never trained on) before and after.
    model = shard(W.build_model(args.model).to(ctx.device), POLICIES["bf16/fp32"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    heldout = [heldout_loss(ctx, model, args)]
    losses = []
    for step in range(1, args.steps + 1):
        batch = W.rank_batch(ctx, model.config.vocab_size, args.batch_size, args.seq_len, step)
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()  # on the fp32 shards: each rank updates only its part
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        ctx.log(f"train step {step} (bf16/fp32, fresh batch) | loss {losses[-1]:.4f}")
    heldout.append(heldout_loss(ctx, model, args))
    ctx.log(f"held-out loss (global batch of step 0) before / after: {heldout[0]:.4f} / "
            f"{heldout[1]:.4f}")  # fmt: skip
    identical = W.same_on_all_ranks(W.param_checksum(model))
    optimizer_dtype = str(next(iter(optimizer.state.values()))["exp_avg"].dtype)
    ctx.log(f"optimizer state {optimizer_dtype} | full weights identical on all ranks: {identical}")

    loaded = {name: loaded_in(ctx, args, dtype) for name, dtype in LOADED.items()}
    for name, info in loaded.items():
        ctx.log(
            f"loaded in {name}, policy bf16/fp32 | stored {info['sharded_param_dtype']} | "
            f"grad {info['grad_dtype']} | optimizer state {info['optimizer_state_dtype']} | "
            f"weights the step left unchanged {info['unchanged_fraction']:.1%}"
        )
    accumulation = {name: accumulate(ctx, args, name) for name in POLICIES}
    for name, info in accumulation.items():
        ctx.log(
            f"accumulate {args.micro_steps} micro-steps, policy {name:9} | kept between micro-steps: "
            f"{info['accumulated_dtype']}, unsharded, {info['accumulated_bytes'] / 1e6:.2f} MB "
            f"(the sharded params: {info['local_param_bytes'] / 1e6:.2f} MB) | "
            f"final grad {info['final_grad_dtype']}"
        )
    exact = accumulation["fp32"].pop("grad")
    for name in ("bf16/fp32", "bf16/bf16"):
        accumulation[name]["grad_rel_error_vs_fp32"] = W.relative_error(
            accumulation[name]["grad"], exact
        )
    accumulation["bf16/bf16"]["grad_rel_error_vs_bf16/fp32"] = W.relative_error(
        accumulation["bf16/bf16"]["grad"], accumulation["bf16/fp32"]["grad"]
    )
    for info in accumulation.values():
        info.pop("grad", None)
    for name in ("bf16/fp32", "bf16/bf16"):
        ctx.log(f"accumulated gradient rel. error, {name} vs fp32: "
                f"{accumulation[name]['grad_rel_error_vs_fp32']:.2e}")  # fmt: skip
    W.write_result(
        ctx,
        {
            "script": "fsdp",
            "model": args.model,
            "device": str(ctx.device),
            "policies": infos,
            "grad_rel_errors": errors,
            "bf16_reduce_max_elementwise_rel_error": worst,
            "train_losses": losses,
            "heldout_losses": heldout,
            "loaded": loaded,
            "accumulation": accumulation,
            "micro_steps": args.micro_steps,
            "optimizer_state_dtype": optimizer_dtype,
            "weights_identical": identical,
        },
    )
    W.finish()


if __name__ == "__main__":
    main()
