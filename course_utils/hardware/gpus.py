"""GPU architectures and known GPU names: the table behind the hardware answers, with sources.

Taught in notebook 00, section "Your hardware" (which precision fits your GPU), and notebook 07,
section "5. Published GPU measurements (not the course's runs)".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

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


def _cc(cap: tuple[int, int] | None) -> str:
    return f"{cap[0]}.{cap[1]}" if cap else "?"


def capability_label(cap: tuple[int, int] | None) -> str:
    """``(7, 5)`` -> ``"cc 7.5"``; None -> ``"cc ?"`` (how reports name a compute capability)."""
    return f"cc {_cc(cap)}"


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
