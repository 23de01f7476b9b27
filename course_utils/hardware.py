"""What hardware is this, and which precision should you train in on it?

- ``detect()`` -> ``HardwareReport``: CPU (model, cores, bf16/fp16 instruction flags, what torch
  dispatches to), CUDA/ROCm GPUs (name, compute capability or gfx target, memory, native bf16,
  driver), Apple MPS. It never raises: on an odd machine fields are ``None`` or ``"unknown"``.
- ``recommend_precision(name=None, capability=None)`` -> ``Recommendation`` with ``.precision`` in
  {"bf16", "fp16", "fp32"} and a one-paragraph ``.reason``. No arguments: this machine (CUDA/ROCm
  GPU, else Apple MPS, else CPU). With a GPU name and/or compute capability: that GPU.
- ``ARCHITECTURES`` / ``KNOWN_GPUS``: the table behind the answers, each row with its source URLs;
  ``architecture_table()`` / ``known_gpu_table()`` give them as rows for a DataFrame.
- ``explain_capability(cap)``, ``cpu_has_native_bf16()``, ``supports_native_bf16(device)``.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

__all__ = [
    "ARCHITECTURES",
    "KNOWN_GPUS",
    "Architecture",
    "CpuInfo",
    "GpuInfo",
    "HardwareReport",
    "KnownGpu",
    "Recommendation",
    "architecture_table",
    "cpu_has_native_bf16",
    "detect",
    "explain_capability",
    "known_gpu_table",
    "lookup_gpu",
    "parse_capability",
    "recommend_for_report",
    "recommend_precision",
    "supports_native_bf16",
]

PRECISIONS = ("bf16", "fp16", "fp32")

# --- sources -----------------------------------------------------------------------------------
CUDA_GPUS = "https://developer.nvidia.com/cuda-gpus"
CUDA_THROUGHPUT = (
    "https://docs.nvidia.com/cuda/cuda-c-programming-guide/index.html#arithmetic-instructions"
)
CUDA_WMMA = "https://docs.nvidia.com/cuda/cuda-c-programming-guide/index.html#warp-matrix-functions"
CUDA_ALT_FP = (
    "https://docs.nvidia.com/cuda/cuda-c-programming-guide/index.html#alternate-floating-point"
)
CUDA_CC_TABLE = (
    "https://docs.nvidia.com/cuda/cuda-programming-guide/05-appendices/compute-capabilities.html"
)
CUDA13_NOTES = "https://docs.nvidia.com/cuda/cuda-toolkit-release-notes/index.html"
ROCM_SPECS = "https://rocm.docs.amd.com/en/latest/reference/gpu-arch-specs.html"
ROCM_PRECISION = "https://rocm.docs.amd.com/en/latest/reference/precision-support.html"
ROCM_MI300 = "https://rocm.docs.amd.com/en/latest/conceptual/gpu-arch/mi300.html"
AMD_MATRIX_CORES = "https://gpuopen.com/learn/amd-lab-notes/amd-lab-notes-matrix-cores-readme/"
AMD_WMMA_RDNA3 = "https://gpuopen.com/learn/wmma_on_rdna3/"
LLVM_AMDGPU = "https://llvm.org/docs/AMDGPUUsage.html"
MPS_FP16_AUTOCAST = "https://github.com/pytorch/pytorch/pull/99272"
MPS_BF16_AUTOCAST = "https://github.com/pytorch/pytorch/issues/139386"
MPS_GRADSCALER = "https://github.com/pytorch/pytorch/issues/142397"
TORCH_AMP = "https://docs.pytorch.org/docs/stable/amp.html"
TORCH_AMX = "https://docs.pytorch.org/tutorials/recipes/amx.html"

_HOW_TO_FIND_CC = (
    "Find it with `torch.cuda.get_device_capability()` (e.g. (8, 6)) or "
    "`nvidia-smi --query-gpu=name,compute_cap --format=csv`; on AMD pass the gfx target "
    "(`torch.cuda.get_device_properties(0).gcnArchName`, e.g. 'gfx90a'). "
    f"NVIDIA's list: {CUDA_GPUS}"
)


# --- the architecture table --------------------------------------------------------------------
@dataclass(frozen=True)
class Architecture:
    """One GPU architecture (or family member) and the precision to train in on it."""

    key: str
    vendor: str  # "NVIDIA", "AMD" or "Apple"
    name: str  # e.g. "Ampere (GA10x)"
    examples: str
    matrix_units: str  # which 16-bit types the matrix (tensor) units take
    native_bf16: bool
    fast_fp16: bool
    precision: str
    why: str  # completes "Use <precision>: ..."
    sources: tuple[str, ...]
    capabilities: tuple[tuple[int, int], ...] = ()  # CUDA compute capabilities (NVIDIA only)
    gfx: tuple[str, ...] = ()  # LLVM gfx targets (AMD only)

    @property
    def full_name(self) -> str:
        """Vendor and name, e.g. "NVIDIA Ampere (GA10x)"."""
        return self.name if self.name.startswith(self.vendor) else f"{self.vendor} {self.name}"

    def label(self) -> str:
        """Full name with every capability or gfx target the row covers."""
        if self.capabilities:
            return f"{self.full_name} (compute capability {', '.join(map(_cc, self.capabilities))})"
        if self.gfx:
            return f"{self.full_name} ({', '.join(self.gfx)})"
        return self.full_name


_BF16_TC = (
    "its tensor cores take bf16 at the same rate as fp16 (bf16 and tf32 tensor-core support "
    "starts at compute capability 8.0), and bf16 keeps fp32's exponent range, so training "
    "needs no loss scaling"
)
_FP16_TC = (
    "its tensor cores multiply fp16 (with fp32 accumulation) but not bf16, which needs "
    "compute capability 8.0. Use fp16 autocast with torch.amp.GradScaler. bf16 is accepted "
    "there without bf16 tensor cores (emulated, at a speed the course has not measured): "
    "torch.cuda.is_bf16_supported() answers True because it counts "
    "emulation by default (ask is_bf16_supported(including_emulation=False) for native support), "
    "so bf16=True in a Trainer does not raise on this GPU"
)

# fmt: off
_BF16_MC = (
    "its matrix cores take bf16 at the same rate as fp16, and bf16 keeps fp32's exponent "
    "range, so training needs no loss scaling"
)
_BF16_WMMA = (
    "its WMMA matrix instructions take bf16 as well as fp16, and bf16 keeps fp32's exponent "
    "range, so training needs no loss scaling"
)

ARCHITECTURES: tuple[Architecture, ...] = (
    Architecture(
        key="kepler", vendor="NVIDIA", name="Kepler", capabilities=((3, 0), (3, 2), (3, 5), (3, 7)),
        examples="Tesla K80, K40, GTX 780", matrix_units="none",
        native_bf16=False, fast_fp16=False, precision="fp32",
        why="it has no 16-bit floating-point arithmetic (the CUDA throughput table lists none "
        "below compute capability 5.3) and no tensor cores, and current CUDA toolkits no longer "
        "support it",
        sources=(CUDA_GPUS, CUDA_THROUGHPUT),
    ),
    Architecture(
        key="maxwell", vendor="NVIDIA", name="Maxwell", capabilities=((5, 0), (5, 2)),
        examples="GTX 750/900 series, Tesla M40, GTX Titan X", matrix_units="none",
        native_bf16=False, fast_fp16=False, precision="fp32",
        why="it has no 16-bit floating-point arithmetic (none listed for 5.0/5.2 in the CUDA "
        "throughput table) and no tensor cores: 16-bit types would only save memory",
        sources=(CUDA_GPUS, CUDA_THROUGHPUT),
    ),
    Architecture(
        key="maxwell_tegra", vendor="NVIDIA", name="Maxwell (Tegra X1)", capabilities=((5, 3),),
        examples="Jetson Nano, Jetson TX1", matrix_units="none (no tensor cores)",
        native_bf16=False, fast_fp16=True, precision="fp16",
        why="it runs fp16 arithmetic at twice its fp32 rate (256 vs 128 results per clock per "
        "SM) but has no tensor cores and no bf16; use fp16 autocast with torch.amp.GradScaler",
        sources=(CUDA_GPUS, CUDA_THROUGHPUT),
    ),
    Architecture(
        key="pascal_gp100", vendor="NVIDIA", name="Pascal (GP100)", capabilities=((6, 0),),
        examples="Tesla P100, Quadro GP100", matrix_units="none (no tensor cores)",
        native_bf16=False, fast_fp16=True, precision="fp16",
        why="it runs fp16 arithmetic at twice its fp32 rate (128 vs 64 results per clock per "
        "SM) but has no tensor cores and no bf16: fp16 saves activation memory and speeds up "
        "bandwidth-bound ops. Use fp16 autocast with torch.amp.GradScaler",
        sources=(CUDA_GPUS, CUDA_THROUGHPUT),
    ),
    Architecture(
        key="pascal", vendor="NVIDIA", name="Pascal (GP10x)", capabilities=((6, 1),),
        examples="GTX 1050-1080 Ti, Titan Xp, Tesla P40/P4, Quadro P-series", matrix_units="none",
        native_bf16=False, fast_fp16=False, precision="fp32",
        why="its fp16 arithmetic runs at 1/64 of the fp32 rate (2 vs 128 results per clock per "
        "SM) and it has no tensor cores and no bf16, so fp16 autocast would slow training "
        "down; fp16 is only useful here for storing weights or activations",
        sources=(CUDA_GPUS, CUDA_THROUGHPUT),
    ),
    Architecture(
        key="pascal_tegra", vendor="NVIDIA", name="Pascal (Tegra)", capabilities=((6, 2),),
        examples="Jetson TX2", matrix_units="none (no tensor cores)",
        native_bf16=False, fast_fp16=True, precision="fp16",
        why="it runs fp16 arithmetic at twice its fp32 rate (256 vs 128 results per clock per "
        "SM) but has no tensor cores and no bf16; use fp16 autocast with torch.amp.GradScaler",
        sources=(CUDA_GPUS, CUDA_THROUGHPUT),
    ),
    Architecture(
        key="volta", vendor="NVIDIA", name="Volta", capabilities=((7, 0),),
        examples="Tesla V100, Titan V, Quadro GV100", matrix_units="fp16",
        native_bf16=False, fast_fp16=True, precision="fp16",
        why=_FP16_TC, sources=(CUDA_GPUS, CUDA_WMMA, CUDA_ALT_FP),
    ),
    Architecture(
        key="volta_tegra", vendor="NVIDIA", name="Volta (Xavier)", capabilities=((7, 2),),
        examples="Jetson AGX Xavier, Xavier NX", matrix_units="fp16",
        native_bf16=False, fast_fp16=True, precision="fp16",
        why=_FP16_TC, sources=(CUDA_GPUS, CUDA_WMMA, CUDA_ALT_FP),
    ),
    Architecture(
        key="turing", vendor="NVIDIA", name="Turing", capabilities=((7, 5),),
        examples="Tesla T4, RTX 2060-2080 Ti, Titan RTX, Quadro RTX, GTX 1650/1660",
        matrix_units="fp16 (and int8, int4)",
        native_bf16=False, fast_fp16=True, precision="fp16",
        why=_FP16_TC + " (GTX 16xx cards have no tensor cores but still run fp16 at twice the "
        "fp32 rate)",
        sources=(CUDA_GPUS, CUDA_WMMA, CUDA_ALT_FP),
    ),
    Architecture(
        key="ampere_ga100", vendor="NVIDIA", name="Ampere (GA100)", capabilities=((8, 0),),
        examples="A100, A30, A800", matrix_units="fp16, bf16, tf32",
        native_bf16=True, fast_fp16=True, precision="bf16",
        why=_BF16_TC, sources=(CUDA_GPUS, CUDA_ALT_FP),
    ),
    Architecture(
        key="ampere", vendor="NVIDIA", name="Ampere (GA10x)", capabilities=((8, 6),),
        examples="A10, A10G, A40, A16, A2, RTX A2000-A6000, RTX 3050-3090 (incl. RTX 3080)",
        matrix_units="fp16, bf16, tf32",
        native_bf16=True, fast_fp16=True, precision="bf16",
        why=_BF16_TC, sources=(CUDA_GPUS, CUDA_ALT_FP),
    ),
    Architecture(
        key="ampere_tegra", vendor="NVIDIA", name="Ampere (Orin)", capabilities=((8, 7),),
        examples="Jetson AGX Orin, Orin NX, Orin Nano", matrix_units="fp16, bf16, tf32",
        native_bf16=True, fast_fp16=True, precision="bf16",
        why=_BF16_TC, sources=(CUDA_GPUS, CUDA_ALT_FP),
    ),
    Architecture(
        key="ada", vendor="NVIDIA", name="Ada Lovelace", capabilities=((8, 9),),
        examples="L4, L40, L40S, RTX 4050-4090, RTX 6000 Ada", matrix_units="fp16, bf16, tf32, fp8",
        native_bf16=True, fast_fp16=True, precision="bf16",
        why=_BF16_TC, sources=(CUDA_GPUS, CUDA_ALT_FP),
    ),
    Architecture(
        key="hopper", vendor="NVIDIA", name="Hopper", capabilities=((9, 0),),
        examples="H100, H200, H800, H20, GH200", matrix_units="fp16, bf16, tf32, fp8",
        native_bf16=True, fast_fp16=True, precision="bf16",
        why=_BF16_TC, sources=(CUDA_GPUS, CUDA_ALT_FP),
    ),
    Architecture(
        key="blackwell_dc", vendor="NVIDIA", name="Blackwell (data center)",
        capabilities=((10, 0), (10, 3)),
        examples="B200, B100, GB200, B300, GB300", matrix_units="fp16, bf16, tf32, fp8, fp4",
        native_bf16=True, fast_fp16=True, precision="bf16",
        why=_BF16_TC, sources=(CUDA_GPUS, CUDA_ALT_FP),
    ),
    Architecture(
        key="blackwell_thor", vendor="NVIDIA", name="Blackwell (Thor)",
        capabilities=((11, 0), (10, 1)),
        examples="Jetson Thor (reported as 10.1 before CUDA 13, 11.0 since)",
        matrix_units="fp16, bf16, tf32, fp8, fp4",
        native_bf16=True, fast_fp16=True, precision="bf16",
        why=_BF16_TC, sources=(CUDA_GPUS, CUDA13_NOTES, CUDA_ALT_FP),
    ),
    Architecture(
        key="blackwell", vendor="NVIDIA", name="Blackwell (RTX / GB10)",
        capabilities=((12, 0), (12, 1)),
        examples="RTX 5050-5090, RTX PRO 4000-6000 Blackwell, DGX Spark (GB10)",
        matrix_units="fp16, bf16, tf32, fp8, fp4",
        native_bf16=True, fast_fp16=True, precision="bf16",
        why=_BF16_TC, sources=(CUDA_GPUS, CUDA_ALT_FP),
    ),
    Architecture(
        key="amd_vega", vendor="AMD", name="GCN 5 (Vega)", gfx=("gfx900", "gfx906"),
        examples="Instinct MI25, MI50, MI60, Radeon VII", matrix_units="none (packed fp16 math)",
        native_bf16=False, fast_fp16=True, precision="fp16",
        why="it runs packed fp16 math at twice its fp32 rate but has no matrix cores and no "
        "bf16 hardware (ROCm builds of torch report bf16 as supported on every AMD GPU, but "
        "here no unit is built for it); use fp16 autocast with torch.amp.GradScaler",
        sources=(ROCM_SPECS, ROCM_PRECISION, LLVM_AMDGPU),
    ),
    Architecture(
        key="amd_cdna1", vendor="AMD", name="CDNA (MI100)", gfx=("gfx908",),
        examples="Instinct MI100", matrix_units="fp16, bf16 (half rate)",
        native_bf16=True, fast_fp16=True, precision="bf16",
        why="its matrix cores take bf16, though at half the fp16 rate (full-rate bf16 came with "
        "CDNA 2); bf16 is still far faster than fp32 and needs no loss scaling. For the last "
        "factor of two, fp16 with torch.amp.GradScaler is the alternative",
        sources=(ROCM_SPECS, AMD_MATRIX_CORES, ROCM_PRECISION),
    ),
    Architecture(
        key="amd_cdna2", vendor="AMD", name="CDNA 2 (MI200)", gfx=("gfx90a",),
        examples="Instinct MI210, MI250, MI250X", matrix_units="fp16, bf16",
        native_bf16=True, fast_fp16=True, precision="bf16",
        why=_BF16_MC, sources=(ROCM_SPECS, AMD_MATRIX_CORES, ROCM_MI300),
    ),
    Architecture(
        key="amd_cdna3", vendor="AMD", name="CDNA 3 (MI300)", gfx=("gfx940", "gfx941", "gfx942"),
        examples="Instinct MI300X, MI300A, MI325X", matrix_units="fp16, bf16, tf32, fp8",
        native_bf16=True, fast_fp16=True, precision="bf16",
        why=_BF16_MC, sources=(ROCM_SPECS, ROCM_MI300, ROCM_PRECISION),
    ),
    Architecture(
        key="amd_cdna4", vendor="AMD", name="CDNA 4 (MI350)", gfx=("gfx950",),
        examples="Instinct MI350X, MI355X", matrix_units="fp16, bf16, fp8, fp6, fp4",
        native_bf16=True, fast_fp16=True, precision="bf16",
        why=_BF16_MC, sources=(ROCM_SPECS, ROCM_PRECISION),
    ),
    Architecture(
        key="amd_rdna2", vendor="AMD", name="RDNA 2",
        gfx=("gfx1030", "gfx1031", "gfx1032", "gfx1033", "gfx1034", "gfx1035", "gfx1036"),
        examples="Radeon RX 6400-6950 XT, Radeon PRO W6800", matrix_units="none (packed fp16)",
        native_bf16=False, fast_fp16=True, precision="fp16",
        why="it has no matrix (WMMA) instructions and no bf16 hardware, but runs packed fp16 "
        "math at twice its fp32 rate; use fp16 autocast with torch.amp.GradScaler",
        sources=(ROCM_SPECS, ROCM_PRECISION, LLVM_AMDGPU),
    ),
    Architecture(
        key="amd_rdna3", vendor="AMD", name="RDNA 3 / 3.5",
        gfx=("gfx1100", "gfx1101", "gfx1102", "gfx1103", "gfx1150", "gfx1151", "gfx1152"),
        examples="Radeon RX 7600-7900 XTX, Radeon PRO W7500-W7900, Ryzen AI APUs",
        matrix_units="fp16, bf16 (WMMA)",
        native_bf16=True, fast_fp16=True, precision="bf16",
        why=_BF16_WMMA, sources=(ROCM_SPECS, AMD_WMMA_RDNA3, ROCM_PRECISION),
    ),
    Architecture(
        key="amd_rdna4", vendor="AMD", name="RDNA 4", gfx=("gfx1200", "gfx1201"),
        examples="Radeon RX 9060/9070 (XT), Radeon AI PRO R9700",
        matrix_units="fp16, bf16, fp8 (WMMA)",
        native_bf16=True, fast_fp16=True, precision="bf16",
        why=_BF16_WMMA, sources=(ROCM_SPECS, ROCM_PRECISION),
    ),
    Architecture(
        key="apple_mps", vendor="Apple", name="Apple silicon GPU (MPS)",
        examples="M1-M4 family", matrix_units="not documented",
        native_bf16=False, fast_fp16=True, precision="fp16",
        why="PyTorch's MPS backend supports fp16 autocast (torch 2.5+) and torch.amp.GradScaler "
        "('mps', torch 2.8+); bf16 autocast works too (torch 2.6+, macOS 14+) and needs no "
        "scaler, but Apple does not document bf16 throughput for its GPUs, so the course does "
        "not promise a bf16 speedup. The course notebooks run on a Mac's CPU unless you set "
        "COURSE_DEVICE=mps",
        sources=(MPS_FP16_AUTOCAST, MPS_BF16_AUTOCAST, MPS_GRADSCALER),
    ),
)
# fmt: on
_ARCH_BY_KEY = {a.key: a for a in ARCHITECTURES}


# --- known GPU names ---------------------------------------------------------------------------
@dataclass(frozen=True)
class KnownGpu:
    """A GPU model the name matcher knows: a regex over the normalized name (lower case,
    punctuation to spaces) and its compute capability (NVIDIA) or gfx target (AMD)."""

    pattern: str
    model: str
    capability: tuple[int, int] | None = None
    gfx: str | None = None
    apple: bool = False

    @property
    def vendor(self) -> str:
        return "Apple" if self.apple else ("AMD" if self.gfx else "NVIDIA")

    @property
    def architecture(self) -> Architecture:
        if self.apple:
            return _ARCH_BY_KEY["apple_mps"]
        if self.gfx:
            return _arch_for_gfx(self.gfx)
        return _arch_for_capability(self.capability)


def _nv(pattern: str, model: str, cap: tuple[int, int]) -> KnownGpu:
    return KnownGpu(pattern, model, capability=cap)


def _amd(pattern: str, model: str, gfx: str) -> KnownGpu:
    return KnownGpu(pattern, model, gfx=gfx)


_N = r"(?!\d)"  # "no more digits": rtx 3080 must not match rtx 30800
# Order matters: more specific patterns first (GH200 before H200, RTX 6000 Ada before RTX 6000).
KNOWN_GPUS: tuple[KnownGpu, ...] = (
    _nv(r"\bgh200\b", "GH200", (9, 0)),
    _nv(r"\bgb200\b", "GB200", (10, 0)),
    _nv(r"\bgb300\b", "GB300", (10, 3)),
    _nv(r"\bgb10\b|\bdgx spark\b", "GB10 (DGX Spark)", (12, 1)),
    _nv(r"\bh100\b", "H100", (9, 0)),
    _nv(r"\bh200\b", "H200", (9, 0)),
    _nv(r"\bh800\b", "H800", (9, 0)),
    _nv(r"\bh20\b", "H20", (9, 0)),
    _nv(r"\bb200\b", "B200", (10, 0)),
    _nv(r"\bb100\b", "B100", (10, 0)),
    _nv(r"\bb300\b", "B300", (10, 3)),
    _nv(r"\bthor\b", "Jetson Thor", (11, 0)),
    _nv(r"\brtx pro ?\d{4}" + _N, "RTX PRO Blackwell", (12, 0)),
    _nv(r"\brtx ?50[5-9]0" + _N, "GeForce RTX 50xx", (12, 0)),
    _nv(r"\brtx ?\d{4}( sff)? ada\b", "RTX Ada Generation", (8, 9)),
    _nv(r"\brtx ?40[5-9]0" + _N, "GeForce RTX 40xx", (8, 9)),
    _nv(r"\bl40s?\b", "L40 / L40S", (8, 9)),
    _nv(r"\bl4\b", "L4", (8, 9)),
    _nv(r"\bl20\b", "L20", (8, 9)),
    _nv(r"\borin\b", "Jetson Orin", (8, 7)),
    _nv(r"\ba100\b", "A100", (8, 0)),
    _nv(r"\ba800\b", "A800", (8, 0)),
    _nv(r"\ba30\b", "A30", (8, 0)),
    _nv(r"\ba10g?\b", "A10 / A10G", (8, 6)),
    _nv(r"\ba40\b", "A40", (8, 6)),
    _nv(r"\ba16\b", "A16", (8, 6)),
    _nv(r"\ba2\b", "A2", (8, 6)),
    _nv(r"\b(rtx ?)?a(2000|4000|4500|5000|5500|6000)\b", "RTX A-series", (8, 6)),
    _nv(r"\brtx ?30[5-9]0" + _N, "GeForce RTX 30xx", (8, 6)),
    _nv(r"\bxavier\b", "Jetson Xavier", (7, 2)),
    _nv(r"\btitan rtx\b", "Titan RTX", (7, 5)),
    _nv(r"\bquadro rtx ?\d{4}" + _N, "Quadro RTX", (7, 5)),
    _nv(r"\brtx ?20[6-8]0" + _N, "GeForce RTX 20xx", (7, 5)),
    _nv(r"\bgtx ?16[5-6]0" + _N, "GeForce GTX 16xx", (7, 5)),
    _nv(r"\bt4\b", "Tesla T4", (7, 5)),
    _nv(r"\bt(400|600|1000)\b", "T400 / T600 / T1000", (7, 5)),
    _nv(r"\bv100s?\b", "Tesla V100", (7, 0)),
    _nv(r"\btitan v\b", "Titan V", (7, 0)),
    _nv(r"\bquadro gv100\b", "Quadro GV100", (7, 0)),
    _nv(r"\bp100\b|\bquadro gp100\b", "Tesla P100", (6, 0)),
    _nv(r"\btx2\b|\btegra x2\b", "Jetson TX2", (6, 2)),
    _nv(r"\btitan xp\b|\btitan x pascal\b", "Titan Xp / Titan X (Pascal)", (6, 1)),
    _nv(r"\bgtx ?10[5-8]0" + _N, "GeForce GTX 10xx", (6, 1)),
    _nv(r"\bp40\b|\bp4\b", "Tesla P40 / P4", (6, 1)),
    _nv(r"\bquadro p\d{3,4}\b", "Quadro P-series", (6, 1)),
    _nv(r"\bjetson nano\b|\btx1\b|\btegra x1\b", "Jetson Nano / TX1", (5, 3)),
    _nv(r"\bgtx titan x\b|\bm40\b|\bgtx ?9[5-8]0" + _N, "Maxwell (GTX 9xx, M40)", (5, 2)),
    _nv(r"\bk80\b", "Tesla K80", (3, 7)),
    _amd(r"\bmi300[xa]?\b", "Instinct MI300X / MI300A", "gfx942"),
    _amd(r"\bmi325x?\b", "Instinct MI325X", "gfx942"),
    _amd(r"\bmi35[05]x?\b", "Instinct MI350X / MI355X", "gfx950"),
    _amd(r"\bmi2[15]0x?\b", "Instinct MI210 / MI250 / MI250X", "gfx90a"),
    _amd(r"\bmi100\b", "Instinct MI100", "gfx908"),
    _amd(r"\bmi[56]0\b|\bradeon vii\b", "Instinct MI50 / MI60, Radeon VII", "gfx906"),
    _amd(r"\bmi25\b|\bvega (56|64)\b", "Instinct MI25, RX Vega", "gfx900"),
    _amd(r"\brx ?79\d0" + _N + r"|\bw7[89]00\b", "Radeon RX 7900 / PRO W7800-W7900", "gfx1100"),
    _amd(r"\brx ?7[78]\d0" + _N + r"|\bw7700\b", "Radeon RX 7700 / 7800", "gfx1101"),
    _amd(r"\brx ?76\d0" + _N + r"|\bw7[56]00\b", "Radeon RX 7600 / PRO W7500-W7600", "gfx1102"),
    _amd(r"\brx ?9070" + _N + r"|\bai pro r9700\b", "Radeon RX 9070, AI PRO R9700", "gfx1201"),
    _amd(r"\brx ?9060" + _N, "Radeon RX 9060", "gfx1200"),
    _amd(r"\brx ?6[89]\d0" + _N + r"|\bw6800\b", "Radeon RX 6800 / 6900 / PRO W6800", "gfx1030"),
    _amd(r"\brx ?67\d0" + _N, "Radeon RX 6700", "gfx1031"),
    _amd(r"\brx ?66\d0" + _N, "Radeon RX 6600", "gfx1032"),
    KnownGpu(r"\bapple m\d", "Apple M-series GPU", apple=True),
)


def _normalize(name: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", name.lower()).split())


def lookup_gpu(name: str) -> KnownGpu | None:
    """The table entry matching a GPU name (as torch or nvidia-smi print it), or None."""
    if not isinstance(name, str):
        raise TypeError(f"GPU name must be a str, got {type(name).__name__}")
    norm = _normalize(name)
    for gpu in KNOWN_GPUS:
        if re.search(gpu.pattern, norm):
            return gpu
    return None


# --- compute capability parsing ----------------------------------------------------------------
_GFX_RE = re.compile(r"^(gfx[0-9a-f]{3,4})(:.*)?$")


def parse_capability(capability: Any) -> tuple[int, int] | str:
    """Validate a compute capability: ``(8, 6)``, ``"8.6"``, ``"sm_86"`` -> ``(8, 6)``; an AMD gfx
    target (``"gfx90a"``, ``"gfx942:sramecc+:xnack-"``) -> ``"gfx90a"``. Anything else: ValueError."""
    hint = (
        "a compute capability is (major, minor) like (8, 6) or the string '8.6' "
        "(AMD: a gfx target like 'gfx90a'). " + _HOW_TO_FIND_CC
    )
    if isinstance(capability, str):
        text = capability.strip().lower()
        gfx = _GFX_RE.match(text)
        if gfx:
            return gfx.group(1)
        m = re.fullmatch(r"(\d{1,2})\.(\d)", text) or re.fullmatch(
            r"(?:sm|compute)_?(\d{1,2})(\d)[af]?", text
        )
        if not m:
            raise ValueError(f"malformed compute capability {capability!r}: {hint}")
        major, minor = int(m.group(1)), int(m.group(2))
    elif isinstance(capability, (tuple, list)):
        if len(capability) != 2 or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in capability
        ):
            raise ValueError(f"malformed compute capability {capability!r}: {hint}")
        major, minor = capability
    else:
        raise ValueError(
            f"malformed compute capability {capability!r} ({type(capability).__name__}): {hint}"
        )
    if not (1 <= major <= 30 and 0 <= minor <= 9):
        raise ValueError(
            f"compute capability {capability!r} is out of range (major 1-30, minor 0-9): {hint}"
        )
    return (major, minor)


def _generic_nvidia(cap: tuple[int, int]) -> Architecture:
    """A row for a capability the table does not list, decided by its major version."""
    major, minor = cap
    if major >= 8:
        precision, bf16, fp16, why = "bf16", True, True, _BF16_TC
    elif major == 7:
        precision, bf16, fp16, why = "fp16", False, True, _FP16_TC
    else:
        precision, bf16, fp16 = "fp32", False, False
        why = "GPUs before Volta (7.0) have no tensor cores, and most have slow or no fp16 math"
    return Architecture(
        key=f"nvidia_{major}{minor}",
        vendor="NVIDIA",
        name=f"architecture not in this table (major version {major})",
        capabilities=(cap,),
        examples="not in this table",
        matrix_units="unknown",
        native_bf16=bf16,
        fast_fp16=fp16,
        precision=precision,
        why=why + " (decided from the major version alone: this capability is not in the table)",
        sources=(CUDA_GPUS, CUDA_ALT_FP),
    )


def _arch_for_capability(cap: tuple[int, int]) -> Architecture:
    for arch in ARCHITECTURES:
        if cap in arch.capabilities:
            return arch
    return _generic_nvidia(cap)


def _arch_for_gfx(gfx: str) -> Architecture:
    for arch in ARCHITECTURES:
        if gfx in arch.gfx:
            return arch
    known = sorted(g for a in ARCHITECTURES for g in a.gfx)
    raise ValueError(
        f"unknown AMD gfx target {gfx!r}: this table knows {', '.join(known)}. "
        f"Look up your GPU's architecture in {ROCM_SPECS}"
    )


def explain_capability(capability: Any) -> str:
    """One paragraph: which architecture a compute capability (or gfx target) is, what its
    matrix units take, and which precision the course recommends there."""
    cap = parse_capability(capability)
    arch = _arch_for_gfx(cap) if isinstance(cap, str) else _arch_for_capability(cap)
    shown = cap if isinstance(cap, str) else f"{cap[0]}.{cap[1]}"
    examples = f", e.g. {arch.examples}" if arch.key in _ARCH_BY_KEY else ""
    return (
        f"{shown} is {arch.label()}{examples}. Matrix units take: {arch.matrix_units}; "
        f"native bf16: {'yes' if arch.native_bf16 else 'no'}; fast fp16 math: "
        f"{'yes' if arch.fast_fp16 else 'no'}. Recommended: {arch.precision}, because "
        f"{arch.why}. Sources: {', '.join(arch.sources)}"
    )


# --- hardware detection ------------------------------------------------------------------------
_X86_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_fp16")
# /proc/cpuinfo name -> torch.cpu.get_capabilities() name, where they differ
_TORCH_FLAG_NAMES = {"avx512f": "avx512_f"}


@dataclass(frozen=True)
class CpuInfo:
    """The CPU: model, cores, and the instruction-set flags that matter for 16-bit math."""

    model: str
    arch: str  # platform.machine(): x86_64, aarch64, arm64, ...
    logical_cores: int | None
    usable_cores: int | None  # cores this process may run on (containers often have fewer)
    flags: dict[str, bool] = field(default_factory=dict)
    flags_source: str = "unknown"  # "/proc/cpuinfo", "torch.cpu.get_capabilities" or "unknown"
    torch_capability: str = "unknown"  # torch.backends.cpu.get_cpu_capability(): AVX2, AVX512...

    @property
    def is_x86(self) -> bool:
        return self.arch.lower() in ("x86_64", "amd64", "i386", "i686", "x86")

    @property
    def has_amx_bf16(self) -> bool:
        return bool(self.flags.get("amx_bf16"))

    @property
    def native_bf16(self) -> bool:
        """Native bf16 dot products: AVX512-BF16 or AMX-BF16 (x86), BF16 extension (Arm)."""
        return any(self.flags.get(k) for k in ("avx512_bf16", "amx_bf16", "arm_bf16"))

    @property
    def native_fp16(self) -> bool:
        """Native fp16 arithmetic (AVX512-FP16 / AMX-FP16); even then the course uses bf16."""
        return any(self.flags.get(k) for k in ("avx512_fp16", "amx_fp16"))


@dataclass(frozen=True)
class GpuInfo:
    """One CUDA or ROCm device as torch sees it."""

    index: int
    name: str
    vendor: str  # "NVIDIA" or "AMD"
    capability: tuple[int, int] | None  # CUDA compute capability (for AMD: torch's gcnArch pair)
    gfx: str | None  # AMD gfx target, e.g. "gfx90a"
    total_memory_gib: float | None
    native_bf16: bool | None

    def short(self) -> str:
        ident = self.gfx if self.vendor == "AMD" and self.gfx else _fmt_cap(self.capability)
        mem = f"{self.total_memory_gib:.1f} GiB" if self.total_memory_gib else "? GiB"
        bf16 = {True: "yes", False: "no", None: "unknown"}[self.native_bf16]
        return f"{self.name} ({ident}, {mem}, native bf16 {bf16})"


def _cc(cap: tuple[int, int] | None) -> str:
    return f"{cap[0]}.{cap[1]}" if cap else "?"


def _fmt_cap(cap: tuple[int, int] | None) -> str:
    return f"cc {_cc(cap)}"


@dataclass(frozen=True)
class HardwareReport:
    """What ``detect()`` found. ``one_line()`` for logs, ``table()`` / ``str()`` for notebooks."""

    cpu: CpuInfo
    gpus: tuple[GpuInfo, ...] = ()
    cuda_version: str | None = None  # torch.version.cuda (the CUDA runtime torch was built with)
    hip_version: str | None = None  # torch.version.hip
    driver_version: str | None = None  # NVIDIA driver, when it can be read
    mps_available: bool = False
    torch_version: str = torch.__version__
    os: str = ""
    python: str = ""

    @property
    def has_gpu(self) -> bool:
        return bool(self.gpus)

    def _cpu_short(self) -> str:
        c = self.cpu
        cores = c.usable_cores or c.logical_cores
        core_txt = f"{cores} cores" if cores else "? cores"

        def yn(flag: bool) -> str:
            return "yes" if flag else "no"

        if c.flags_source == "unknown":
            feats = "bf16 flags unknown"
        elif c.is_x86:
            amx = c.flags.get("amx_bf16") or c.flags.get("amx_tile")
            feats = f"avx512_bf16 {yn(c.flags.get('avx512_bf16', False))}, AMX {yn(bool(amx))}"
        else:
            feats = f"bf16 {yn(c.native_bf16)}"
        return f"CPU: {c.model} ({core_txt}; {feats})"

    def _gpu_short(self) -> str:
        parts = []
        if self.gpus:
            groups: dict[str, int] = {}
            for g in self.gpus:
                groups[g.short()] = groups.get(g.short(), 0) + 1
            parts.append(
                "GPU: " + "; ".join(s if n == 1 else f"{n}x {s}" for s, n in groups.items())
            )
        if self.mps_available:
            parts.append("Apple MPS")
        return " | ".join(parts) if parts else "no GPU"

    def one_line(self) -> str:
        """E.g. ``CPU: AMD EPYC (2 cores; avx512_bf16 no, AMX no) | no GPU``."""
        line = f"{self._cpu_short()} | {self._gpu_short()}"
        return " ".join(line.split())  # names never smuggle in a newline

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-serializable dict (e.g. for ``data/reference_runs/``)."""
        return asdict(self)

    def rows(self) -> list[tuple[str, str]]:
        c = self.cpu
        flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in c.flags.items()) or "unknown"
        rows = [
            ("CPU", c.model),
            ("CPU arch", c.arch),
            ("CPU cores", f"{c.logical_cores} logical, {c.usable_cores} usable here"),
            ("CPU flags", f"{flags} (from {c.flags_source})"),
            ("CPU native bf16", "yes" if c.native_bf16 else "no"),
            ("torch CPU kernels", c.torch_capability),
        ]
        for g in self.gpus:
            rows.append((f"GPU {g.index}", g.short()))
        if not self.gpus:
            rows.append(("GPU", "none"))
        rows += [
            ("CUDA runtime (torch)", self.cuda_version or "-"),
            ("ROCm/HIP (torch)", self.hip_version or "-"),
            ("GPU driver", self.driver_version or "-"),
            ("Apple MPS", "available" if self.mps_available else "no"),
            ("torch", self.torch_version),
            ("OS", self.os),
            ("Python", self.python),
        ]
        return rows

    def table(self) -> str:
        rows = self.rows()
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)

    def __str__(self) -> str:
        return self.table()


def _read_proc_cpuinfo() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _torch_cpu_capabilities() -> dict[str, Any]:
    try:
        get = getattr(torch.cpu, "get_capabilities", None)
        return dict(get()) if get else {}
    except Exception:  # noqa: BLE001 - detection must never crash
        return {}


def _cpuinfo_field(text: str, key: str) -> str | None:
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() == key:
            return value.strip()
    return None


def _cpu_flags(cpuinfo: str | None, caps: dict[str, Any]) -> tuple[dict[str, bool], str]:
    if cpuinfo:
        x86 = _cpuinfo_field(cpuinfo, "flags")
        arm = _cpuinfo_field(cpuinfo, "features")
        if x86 is not None:
            have = set(x86.split())
            return {k: k in have for k in _X86_FLAGS}, "/proc/cpuinfo"
        if arm is not None:
            have = set(arm.split())
            return {"arm_bf16": "bf16" in have, "arm_fp16": "fphp" in have}, "/proc/cpuinfo"
    if caps:
        arch = str(caps.get("architecture", "")).lower()
        if "arm" in arch or "aarch64" in arch:
            return {
                "arm_bf16": bool(caps.get("bf16")),
                "arm_fp16": bool(caps.get("fp16_arith")),
            }, "torch.cpu.get_capabilities"
        return {
            k: bool(caps.get(_TORCH_FLAG_NAMES.get(k, k))) for k in _X86_FLAGS
        }, "torch.cpu.get_capabilities"
    return {}, "unknown"


def _cpu_model(cpuinfo: str | None, caps: dict[str, Any]) -> str:
    if cpuinfo:
        for key in ("model name", "hardware", "cpu model", "processor"):
            value = _cpuinfo_field(cpuinfo, key)
            if value and not value.isdigit():
                return value
    if sys.platform == "darwin":
        try:
            out = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            )
            if out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return str(caps.get("cpu_name") or platform.processor() or platform.machine() or "unknown")


def _detect_cpu() -> CpuInfo:
    cpuinfo = _read_proc_cpuinfo()
    caps = _torch_cpu_capabilities()
    flags, source = _cpu_flags(cpuinfo, caps)
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    try:
        torch_cap = torch.backends.cpu.get_cpu_capability()
    except Exception:  # noqa: BLE001
        torch_cap = "unknown"
    return CpuInfo(
        model=" ".join(_cpu_model(cpuinfo, caps).split()),
        arch=platform.machine() or str(caps.get("architecture", "unknown")),
        logical_cores=os.cpu_count(),
        usable_cores=usable,
        flags=flags,
        flags_source=source,
        torch_capability=torch_cap,
    )


def _nvidia_driver_version() -> str | None:
    try:
        with open("/proc/driver/nvidia/version", encoding="utf-8") as f:
            m = re.search(r"Kernel Module\s+(?:for\s+\S+\s+)?(\d+\.\d+(?:\.\d+)?)", f.read())
            if m:
                return m.group(1)
    except OSError:
        pass
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return out.stdout.strip().splitlines()[0] if out.stdout.strip() else None
    except (OSError, subprocess.SubprocessError):
        return None


def _detect_gpus() -> tuple[GpuInfo, ...]:
    try:
        if not torch.cuda.is_available():
            return ()
        count = torch.cuda.device_count()
    except Exception:  # noqa: BLE001
        return ()
    is_hip = bool(getattr(torch.version, "hip", None))
    gpus = []
    for i in range(count):
        try:
            props = torch.cuda.get_device_properties(i)
            name = str(getattr(props, "name", "") or torch.cuda.get_device_name(i))
            cap = (int(props.major), int(props.minor))
            mem = (
                round(props.total_memory / 2**30, 1) if getattr(props, "total_memory", 0) else None
            )
        except Exception:  # noqa: BLE001
            continue
        gfx = None
        if is_hip:
            arch_name = str(getattr(props, "gcnArchName", "") or "")
            m = _GFX_RE.match(arch_name.lower())
            gfx = m.group(1) if m else None
            try:
                native = _arch_for_gfx(gfx).native_bf16 if gfx else None
            except ValueError:
                native = None
        else:
            try:
                native = (
                    bool(torch.cuda.is_bf16_supported(including_emulation=False))
                    if i == torch.cuda.current_device()
                    else cap[0] >= 8  # the same rule torch applies to the current device
                )
            except Exception:  # noqa: BLE001
                native = cap[0] >= 8
        gpus.append(GpuInfo(i, name, "AMD" if is_hip else "NVIDIA", cap, gfx, mem, native))
    return tuple(gpus)


def _mps_available() -> bool:
    try:
        return bool(torch.backends.mps.is_available())
    except Exception:  # noqa: BLE001
        return False


def detect() -> HardwareReport:
    """Inspect this machine. Never raises; unknown fields are None / "unknown"."""
    gpus = _detect_gpus()
    nvidia = any(g.vendor == "NVIDIA" for g in gpus)
    return HardwareReport(
        cpu=_detect_cpu(),
        gpus=gpus,
        cuda_version=getattr(torch.version, "cuda", None),
        hip_version=getattr(torch.version, "hip", None),
        driver_version=_nvidia_driver_version() if nvidia else None,
        mps_available=_mps_available(),
        torch_version=torch.__version__,
        os=f"{platform.system()} {platform.release()}".strip(),
        python=platform.python_version(),
    )


def cpu_has_native_bf16(cpu: CpuInfo | None = None) -> bool:
    """True if the CPU has native bf16 dot products (AVX512-BF16, AMX-BF16 or Arm BF16)."""
    return (cpu or _detect_cpu()).native_bf16


def supports_native_bf16(device: str | torch.device | None = None) -> bool:
    """Native bf16 matrix math on ``device`` ("cpu", "cuda", "cuda:N", "mps"; default: the device
    ``setup()`` picks, CUDA if available else CPU). MPS answers False: Apple does not document
    bf16 hardware throughput (bf16 still runs there on macOS 14+)."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"unknown device {device!r}: use 'cpu', 'cuda', 'cuda:N' or 'mps'"
        ) from exc
    if dev.type == "cpu":
        return cpu_has_native_bf16()
    if dev.type == "cuda":
        gpus = _detect_gpus()
        index = dev.index if dev.index is not None else 0
        match = [g for g in gpus if g.index == index]
        return bool(match and match[0].native_bf16)
    return False


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
        return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[
            self.precision
        ]

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
def architecture_table() -> list[dict[str, str]]:
    """``ARCHITECTURES`` as rows (``pandas.DataFrame(architecture_table())``)."""
    return [
        {
            "vendor": a.vendor,
            "architecture": a.name,
            "capability": ", ".join(f"{x}.{y}" for x, y in a.capabilities) or ", ".join(a.gfx),
            "examples": a.examples,
            "matrix units": a.matrix_units,
            "native bf16": "yes" if a.native_bf16 else "no",
            "recommended": a.precision,
            "source": a.sources[0],
        }
        for a in ARCHITECTURES
    ]


def known_gpu_table() -> list[dict[str, str]]:
    """``KNOWN_GPUS`` as rows: model, vendor, capability or gfx target, architecture, precision."""
    return [
        {
            "model": g.model,
            "vendor": g.vendor,
            "capability": g.gfx
            or (f"{g.capability[0]}.{g.capability[1]}" if g.capability else "-"),
            "architecture": g.architecture.name,
            "recommended": g.architecture.precision,
        }
        for g in KNOWN_GPUS
    ]
