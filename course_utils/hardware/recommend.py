"""Which precision to train in on a given machine or GPU, and why (``recommend_precision``).

Taught in notebook 00, section "Your hardware" (``recommend_precision``); notebook 04
(section "4. The error gallery") and notebook 05 (section "Exercise: plan a run on a T4, and
predict the audit") ask it too.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from course_utils.hardware.detection import CpuInfo, HardwareReport, as_device, detect
from course_utils.hardware.gpus import (
    _ARCH_BY_KEY,
    _HOW_TO_FIND_CC,
    TORCH_AMP,
    TORCH_AMX,
    Architecture,
    _arch_for_capability,
    _arch_for_gfx,
    _cc,
    lookup_gpu,
    parse_capability,
)
from course_utils.precision import to_dtype


# --- recommendations ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Recommendation:
    """Which precision to train in, and why."""

    precision: str  # "bf16", "fp16" or "fp32"
    reason: str
    device_kind: str  # "cuda", "rocm", "mps" or "cpu"
    architecture: str
    gpu_name: str | None = None
    capability: tuple[int, int] | str | None = None
    sources: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def dtype(self) -> torch.dtype:
        return to_dtype(self.precision)

    @property
    def use_grad_scaler(self) -> bool:
        """Loss scaling is needed for fp16 only."""
        return self.precision == "fp16"

    @property
    def load_advice(self) -> str:
        """How to load a checkpoint so mixed precision keeps fp32 master weights."""
        return LOAD_IN_FP32

    def from_pretrained_kwargs(self) -> dict[str, torch.dtype]:
        """``{"dtype": torch.float32}``: fp32 master weights whatever the checkpoint's dtype."""
        return {"dtype": torch.float32}

    def trainer_kwargs(self) -> dict[str, bool]:
        """The Hugging Face ``TrainingArguments`` flags: {"bf16": True}, {"fp16": True} or {}."""
        return {self.precision: True} if self.precision != "fp32" else {}

    def __str__(self) -> str:
        return f"{self.precision}: {self.reason}"


def _gpu_recommendation(
    arch: Architecture,
    device_kind: str,
    gpu_name: str | None,
    capability: tuple[int, int] | str | None,
    notes: list[str],
) -> Recommendation:
    if isinstance(capability, tuple):
        ident = f"compute capability {_cc(capability)}"
    else:
        ident = capability or ""
    what = gpu_name or ident
    arch_txt = arch.full_name + (f" ({ident})" if gpu_name and ident else "")
    head = f"{what} is {arch_txt}. Use {arch.precision}: {arch.why}."
    tail = ""
    if arch.precision == "bf16" and "GradScaler" not in arch.why:
        tail = " fp16 would also work but needs torch.amp.GradScaler and can overflow past 65504."
    reason = " ".join([head + tail, *notes])
    return Recommendation(
        arch.precision,
        reason,
        device_kind,
        arch.full_name,
        gpu_name,
        capability,
        arch.sources,
        tuple(notes),
    )


def _cpu_fp16_sentence(cpu: CpuInfo) -> str:
    """Why the advisor does not pick fp16 on this CPU (it depends on its fp16 units)."""
    if cpu.native_fp16:
        units = [
            n
            for k, n in (("avx512_fp16", "AVX512-FP16"), ("amx_fp16", "AMX-FP16"))
            if cpu.flags.get(k)
        ]
        return (
            f"This CPU also has native fp16 instructions ({', '.join(units)}), so fp16 autocast "
            "runs fast here too; it is still not the pick, because fp16 needs a "
            "torch.amp.GradScaler and overflows past 65504, and bf16 needs neither."
        )
    return (
        "fp16 is not the pick on this CPU: without native fp16 units (AVX512-FP16, AMX-FP16) its "
        "matmuls run many times slower than fp32 (notebook 07 measures it)."
    )


_CPU_VS_GPU = (
    "On a CPU, bf16 autocast rounds matmul inputs to the same bf16 format as on a GPU, but its "
    "list of ops that run in 16 bits, its kernels and its accumulation order differ from CUDA's "
    "(notebook 04 compares the lists), so results match a GPU's in kind, not bit for bit."
)

LOAD_IN_FP32 = (
    "Load the model with from_pretrained(..., dtype=torch.float32) for mixed precision: "
    'transformers 5 loads with dtype="auto", so a checkpoint saved in bf16 arrives with bf16 '
    "weights, and autocast or bf16=True then trains them with no fp32 master weights (pure bf16)."
)


def _cpu_recommendation(cpu: CpuInfo) -> Recommendation:
    if cpu.native_bf16:
        units = [
            n
            for k, n in (
                ("avx512_bf16", "AVX512-BF16"),
                ("amx_bf16", "AMX-BF16"),
                ("arm_bf16", "Arm BF16"),
            )
            if cpu.flags.get(k)
        ]
        arch = f"{cpu.arch} CPU with {' + '.join(units)}"
        reason = " ".join(
            [
                f"This CPU ({cpu.model}) has native bf16 instructions ({', '.join(units)}), so "
                "torch.autocast('cpu', dtype=torch.bfloat16) runs matmuls in bf16 kernels that can "
                "be faster than fp32 and shrink activation memory (not by half: notebook 04 measures it); "
                "bf16 needs no loss scaling.",
                _cpu_fp16_sentence(cpu),
            ]
        )
        return Recommendation("bf16", reason, "cpu", arch, sources=(TORCH_AMX, TORCH_AMP))
    missing = "no avx512_bf16, no AMX" if cpu.is_x86 else "no bf16 extension"
    if cpu.flags_source == "unknown":
        missing = "its bf16 support could not be detected"
    reason = " ".join(
        [
            f"This CPU ({cpu.model}) has no native bf16 matmul instructions ({missing}), so mixed "
            "precision brings no speedup here: bf16 matmul inputs are converted to fp32 for the "
            "multiply and the whole thing runs slower than fp32. Train in fp32 for speed. bf16 "
            "autocast still works, just slower, and the course uses it on small examples to show "
            "what bf16 does to your numbers.",
            _CPU_VS_GPU,
            _cpu_fp16_sentence(cpu),
        ]
    )
    return Recommendation(
        "fp32", reason, "cpu", f"{cpu.arch} CPU without native bf16", sources=(TORCH_AMP,)
    )


def recommend_for_report(report: HardwareReport) -> Recommendation:
    """The recommendation for a detected machine: its first GPU, else Apple MPS, else its CPU."""
    if report.gpus:
        gpu = report.gpus[0]
        notes = []
        if len({g.name for g in report.gpus}) > 1:
            notes.append(f"This machine mixes GPU models; the answer is for GPU {gpu.index}.")
        if gpu.vendor == "AMD":
            if gpu.gfx is None:
                return _recommend_by_name(gpu.name, None, "rocm")
            try:
                arch = _arch_for_gfx(gpu.gfx)
            except ValueError:
                return _recommend_by_name(gpu.name, None, "rocm")
            return _gpu_recommendation(arch, "rocm", gpu.name, gpu.gfx, notes)
        arch = _arch_for_capability(gpu.capability) if gpu.capability else None
        if arch is None:
            return _recommend_by_name(gpu.name, None, "cuda")
        return _gpu_recommendation(arch, "cuda", gpu.name, gpu.capability, notes)
    if report.mps_available:
        return _gpu_recommendation(_ARCH_BY_KEY["apple_mps"], "mps", "Apple MPS", None, [])
    return _cpu_recommendation(report.cpu)


def recommend_for_device(device: str | torch.device) -> Recommendation:
    """The recommendation for the device the code runs on, not for the machine's best one: a CPU
    run on a machine with a GPU (``COURSE_DEVICE=cpu``, or a Mac, where the course runs on the CPU)
    gets the CPU's answer, so an fp16 recommendation for a GPU never turns on fp16 autocast and a
    loss scaler on a CPU."""
    dev = as_device(device)
    report = detect()
    if dev.type == "cpu":
        return _cpu_recommendation(report.cpu)
    if dev.type == "cuda":
        index = dev.index or 0
        gpus = [g for g in report.gpus if g.index == index]
        if not gpus:
            raise ValueError(f"no CUDA/ROCm GPU {index} on this machine")
        return recommend_for_report(replace(report, gpus=tuple(gpus)))
    if dev.type == "mps" and report.mps_available:
        return _gpu_recommendation(_ARCH_BY_KEY["apple_mps"], "mps", "Apple MPS", None, [])
    raise ValueError(f"no {dev.type} device on this machine")


def _recommend_by_name(name: str, capability: Any, device_kind: str | None) -> Recommendation:
    known = lookup_gpu(name)
    cap = parse_capability(capability) if capability is not None else None
    notes: list[str] = []
    if known is None and cap is None:
        raise ValueError(
            f"we do not know the GPU {name!r}: pass its compute capability too, e.g. "
            f"recommend_precision({name!r}, capability=(8, 6)). " + _HOW_TO_FIND_CC
        )
    if known is not None and known.apple:
        if cap is not None:
            notes.append("Apple GPUs have no CUDA compute capability; it was ignored.")
        return _gpu_recommendation(known.architecture, "mps", name, None, notes)
    if known is not None and known.gfx:  # AMD: torch's (major, minor) pairs are not CUDA's
        gfx = known.gfx
        if isinstance(cap, str) and cap != known.gfx:
            notes.append(
                f"The name suggests {known.model} ({known.gfx}) but the gfx target given is "
                f"{cap}; trusting the gfx target."
            )
            gfx = cap
        elif isinstance(cap, tuple):
            notes.append(
                f"On AMD GPUs torch's (major, minor) pair {cap} is not a CUDA compute capability; "
                f"answered from the name ({known.model}, {known.gfx})."
            )
        return _gpu_recommendation(_arch_for_gfx(gfx), "rocm", name, gfx, notes)
    if isinstance(cap, str):  # unknown or NVIDIA name with an AMD gfx target: trust the target
        if known is not None:
            notes.append(
                f"The name suggests NVIDIA {known.model} but an AMD gfx target ({cap}) was "
                "given; trusting the gfx target."
            )
        return _gpu_recommendation(_arch_for_gfx(cap), "rocm", name, cap, notes)
    if known is None:
        notes.append(f"{name!r} is not in the name table; answered from its compute capability.")
        return _gpu_recommendation(_arch_for_capability(cap), "cuda", name, cap, notes)
    if cap is not None and cap != known.capability:
        notes.append(
            f"The name suggests {known.model} (compute capability {_cc(known.capability)}) "
            f"but {_cc(cap)} was given; trusting the capability."
        )
    cap = cap or known.capability
    return _gpu_recommendation(_arch_for_capability(cap), device_kind or "cuda", name, cap, notes)


def recommend_precision(name: str | None = None, capability: Any = None) -> Recommendation:
    """Which precision to train in: bf16, fp16 or fp32, with the reason.

    >>> recommend_precision("Tesla V100-SXM2-16GB", (7, 0)).precision
    'fp16'
    >>> recommend_precision(capability="8.6").precision
    'bf16'

    No arguments: this machine (its first CUDA/ROCm GPU, else Apple MPS, else its CPU).
    A name alone works for GPUs in ``KNOWN_GPUS``; a capability alone always works. When name and
    capability disagree, the capability wins and ``.notes`` says so.
    """
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a str (the GPU's name), got {type(name).__name__}")
    if name is not None and not name.strip():
        raise ValueError("name is empty: pass a GPU name like 'NVIDIA A100-SXM4-40GB' or None")
    if name is None and capability is None:
        return recommend_for_report(detect())
    if name is None:
        cap = parse_capability(capability)
        if isinstance(cap, str):
            return _gpu_recommendation(_arch_for_gfx(cap), "rocm", None, cap, [])
        return _gpu_recommendation(_arch_for_capability(cap), "cuda", None, cap, [])
    return _recommend_by_name(name, capability, None)


# --- tables for notebooks ----------------------------------------------------------------------
