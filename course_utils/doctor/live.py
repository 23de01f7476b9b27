"""Live checks: look at the objects themselves -- a model, ``TrainingArguments`` / ``SFTConfig``, an
optimizer, a ``GradScaler``, an FSDP ``MixedPrecisionPolicy`` -- against the hardware.

Everything is read by attribute (duck typing), so a ``SimpleNamespace(fp16=True, bf16=False)``
works as ``args`` and a bitsandbytes config is recognised without bitsandbytes installed.

Taught in notebook 09.
"""

from __future__ import annotations

from collections import Counter

import torch
from torch import nn

from course_utils.doctor.checkpoint import saved_dtype, short_name
from course_utils.doctor.machine import Machine
from course_utils.doctor.report import Finding, make_finding
from course_utils.doctor.static import BF16_PRETRAINED


def check_types(*, model, args, optimizer, scaler, policy) -> None:
    """TypeError with a clear message for arguments of the wrong kind."""
    if model is not None and not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if args is not None and not (hasattr(args, "fp16") and hasattr(args, "bf16")):
        raise TypeError(
            "args must be TrainingArguments, an SFTConfig or any object with fp16 and bf16 "
            f"attributes, got {type(args).__name__}"
        )
    if optimizer is not None and not hasattr(optimizer, "param_groups"):
        raise TypeError(
            f"optimizer must be a torch.optim.Optimizer (with param_groups), got "
            f"{type(optimizer).__name__}"
        )
    if scaler is not None and not isinstance(scaler, torch.amp.GradScaler):
        raise TypeError(f"scaler must be a torch.amp.GradScaler, got {type(scaler).__name__}")
    if policy is not None and _policy_dtypes(policy) is None:
        raise TypeError(
            "policy must be an FSDP MixedPrecisionPolicy (torch.distributed.fsdp), an FSDP1 "
            "MixedPrecision, accelerate's FullyShardedDataParallelPlugin or a dict with "
            f"param_dtype and reduce_dtype, got {type(policy).__name__}"
        )


def _policy_dtypes(policy) -> tuple[str | None, str | None] | None:
    inner = getattr(policy, "mixed_precision_policy", policy)  # accelerate's plugin
    if isinstance(inner, dict):
        if "param_dtype" not in inner:
            return None
        return short_name(inner.get("param_dtype")), short_name(inner.get("reduce_dtype"))
    if inner is None:
        return (None, None)
    if hasattr(inner, "param_dtype") and hasattr(inner, "reduce_dtype"):
        return short_name(inner.param_dtype), short_name(inner.reduce_dtype)
    return None


def _trainable_dtypes(params) -> Counter:
    counts: Counter = Counter()
    for p in params:
        if p.requires_grad:
            counts[short_name(p.dtype)] += p.numel()
    return counts


def _checkpoint_dtype(model: nn.Module) -> str | None:
    """The dtype the checkpoint was saved in when it can be found on this machine (the config's
    dtype is the one it was *loaded* in), else the config's."""
    config = getattr(model, "config", None)
    name = getattr(config, "_name_or_path", None) if config is not None else None
    if isinstance(name, str) and name:
        saved = saved_dtype(name)
        if saved is not None:
            return saved
    for attr in ("dtype", "torch_dtype"):
        value = getattr(config, attr, None) if config is not None else None
        if value is not None:
            return short_name(value)
    return None


def _quantization(model: nn.Module):
    config = getattr(model, "config", None)
    q = getattr(config, "quantization_config", None) if config is not None else None
    return q if q is not None else getattr(model, "quantization_config", None)


def _get(obj, name):
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _tf32_enabled() -> bool:
    return torch.get_float32_matmul_precision() in ("high", "medium")


def analyse(*, model, args, optimizer, scaler, policy, machine: Machine) -> list[Finding]:  # noqa: C901
    out: list[Finding] = []

    def add(code: str, where: str, message: str) -> None:
        out.append(make_finding(code, message, where))

    fp16 = bool(getattr(args, "fp16", False)) if args is not None else False
    bf16 = bool(getattr(args, "bf16", False)) if args is not None else False
    args_name = type(args).__name__ if args is not None else ""
    scaler_on = scaler is not None and scaler.is_enabled()

    trainable: Counter = Counter()
    where_weights = ""
    if model is not None:
        trainable = _trainable_dtypes(model.parameters())
        where_weights = "model"
    if optimizer is not None and not trainable:
        groups = getattr(optimizer, "param_groups", [])
        trainable = _trainable_dtypes(p for g in groups for p in g.get("params", []))
        where_weights = "optimizer"
    low = {d for d in trainable if d in ("bf16", "fp16")}

    if fp16 and bf16:
        add("fp16-and-bf16", "args", f"{args_name} has fp16=True and bf16=True.")
    if fp16 and (getattr(args, "use_cpu", False) or not (machine.has_cuda or machine.mps)):
        why = "use_cpu=True" if getattr(args, "use_cpu", False) else machine.label
        add("fp16-on-cpu", "args", f"{args_name}(fp16=True) without a CUDA device ({why}): the "
            "Trainer trains in fp32, silently.")  # fmt: skip

    use_cpu = bool(getattr(args, "use_cpu", False) or getattr(args, "no_cuda", False))
    if bf16 and not use_cpu and not (machine.has_cuda or machine.mps) and hasattr(args, "use_cpu"):
        add("bf16-needs-use-cpu", "args", f"{args_name}(bf16=True) without use_cpu=True on "
            f"{machine.label}: transformers refuses to build it there (ValueError: Your setup "
            "doesn't support bf16/gpu).")  # fmt: skip

    policy_dtypes = _policy_dtypes(policy) if policy is not None else None
    if machine.bf16_emulated:
        asks = []
        if bf16 and not getattr(args, "use_cpu", False):
            asks.append(("args", f"{args_name}(bf16=True)"))
        if "bf16" in low:
            asks.append((where_weights, "bf16 trainable weights"))
        if policy_dtypes and policy_dtypes[0] == "bf16":
            asks.append(("policy", "an FSDP policy with param_dtype=bf16"))
        for where, what in asks:
            add("bf16-emulated", where, f"{what} on {machine.label}, which has no native bf16: "
                "accepted, but it runs on CUDA's bf16 emulation, without bf16 tensor cores (at a "
                "speed the course has not measured).")  # fmt: skip

    if model is not None and fp16:
        ckpt = _checkpoint_dtype(model)
        name = str(getattr(getattr(model, "config", None), "_name_or_path", "") or "")
        if ckpt == "bf16" or "bf16" in trainable or (name and BF16_PRETRAINED.search(name)):
            what = "it was saved in bf16" if ckpt == "bf16" else (
                "its weights are bf16" if "bf16" in trainable else f"{name!r} was pretrained in bf16"
            )  # fmt: skip
            add("fp16-on-bf16-checkpoint", "model", f"fp16=True on a model whose checkpoint is "
                f"bf16 ({what}): activations may outgrow fp16's 65504.")  # fmt: skip

    if "fp16" in low and (fp16 or scaler_on):
        by = "fp16=True" if fp16 else "an enabled GradScaler"
        add("fp16-trainable-weights", where_weights, f"{trainable['fp16']:,} trainable parameters "
            f"are fp16 and {by} will unscale their gradients: ValueError: Attempting to unscale "
            "FP16 gradients.")  # fmt: skip

    if scaler_on and (bf16 or "bf16" in low):
        if "bf16" in low:
            msg = ("an enabled GradScaler with bf16 trainable weights, so bf16 gradients: bf16 "
                   "needs no loss scaling, and on CUDA unscaling bf16 gradients is reported to "
                   "fail (NotImplementedError; not run by the course).")  # fmt: skip
        elif trainable:
            msg = ("an enabled GradScaler with bf16=True over fp32 trainable weights, so fp32 "
                   "gradients: the scaler is needless (bf16 has fp32's range) but harmless (the "
                   "failure on CUDA reported in pytorch#127176 needs bf16 parameters).")  # fmt: skip
        else:
            msg = ("an enabled GradScaler with bf16=True: bf16 needs no loss scaling (harmless "
                   "over fp32 weights; with bf16 parameters, unscaling their bf16 gradients on "
                   "CUDA is reported to fail).")  # fmt: skip
        add("scaler-with-bf16", "scaler", msg)
    elif fp16 and not bf16 and "bf16" in low and machine.has_cuda:
        add("scaler-with-bf16", where_weights, "fp16=True makes the Trainer build a GradScaler, "
            "and the trainable weights are bf16: on CUDA unscaling their bf16 gradients is "
            "reported to fail (NotImplementedError).")  # fmt: skip

    if low == {"bf16"} and not fp16:
        how = "bf16=True" if bf16 else ("no autocast" if args is not None else "as they are")
        add("pure-bf16", where_weights, f"all {sum(trainable.values()):,} trainable parameters "
            f"are bf16 and train {how}: no fp32 master weights, small updates are lost.")  # fmt: skip

    if scaler is not None and type(scaler).__module__.startswith(
        ("torch.cuda.amp", "torch.cpu.amp")
    ):
        add("deprecated-cuda-amp", "scaler", f"the scaler is a {type(scaler).__module__}."
            f"{type(scaler).__name__}, deprecated.")  # fmt: skip

    if policy_dtypes and policy_dtypes[0] == "bf16" and policy_dtypes[1] in (None, "bf16"):
        red = policy_dtypes[1] or "None"
        add("bf16-gradient-reduce", "policy", f"MixedPrecisionPolicy(param_dtype=bf16, "
            f"reduce_dtype={red}): gradients are reduced across ranks in bf16.")  # fmt: skip
    elif policy is None and args is not None and getattr(args, "fsdp", None) and bf16:
        add("bf16-gradient-reduce", "args", f"{args_name}(fsdp=..., bf16=True) with no policy: "
            "accelerate's FSDP default reduces gradients in bf16.")  # fmt: skip

    if model is not None:
        q = _quantization(model)
        if q is not None and _get(q, "load_in_4bit"):
            compute = short_name(_get(q, "bnb_4bit_compute_dtype"))
            # Linear4bit computes in its input's dtype when that is fp32 or bf16, in the config's
            # compute dtype when it is fp16: the dtype of the other (not quantized) weights decides
            others = {short_name(p.dtype) for p in model.parameters() if p.is_floating_point()}
            if compute in (None, "fp32") and others and others <= {"fp16", "fp32"}:
                add("qlora-fp32-compute", "model", "the model's 4-bit quantization config has "
                    f"bnb_4bit_compute_dtype={compute or 'None'} and its other weights are "
                    f"{'/'.join(sorted(others))}: the 4-bit layers compute in fp32.")  # fmt: skip

    if (
        machine.ampere_plus
        and args is not None
        and not (fp16 or bf16)
        and not low
        and getattr(args, "tf32", None) is not True
        and not _tf32_enabled()
    ):
        add("tf32-off", "args", f"fp32 training on {machine.label} with TF32 matmuls off.")
    return out
