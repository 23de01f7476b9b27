"""Vendor peak throughput (dense TFLOP/s per dtype) of common GPUs, each row with its source.

Taught in notebook 07, section "5. Published GPU measurements (not the course's runs)".

Data sheets list tensor-core rates *with 2:4 structured sparsity*, marked with an asterisk; dense
matmuls (what training runs) get half of that. ``GpuPeak`` keeps the figure as printed
(``listed``) and whether it is a sparsity figure, and ``dense(dtype)`` does the halving, so every
number here can be checked against its source by eye.

GeForce cards run fp16/bf16 tensor-core math with fp32 accumulation (what PyTorch uses) at half
the rate they quote for fp16 accumulation; the rows below give the fp32-accumulate figures.

>>> lookup_peak("NVIDIA H100 80GB HBM3").dense("bf16")
989.5
>>> lookup_peak("Some Laptop GPU") is None
True

``PUBLISHED_TRAINING`` quotes vendor-published training throughput (fp16 mixed precision against
FP32 or TF32), each row with its link: what learners without a GPU see in notebook 07, section 5,
labelled as published, never as the course's own runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from course_utils.precision import MATMUL_FORMATS

H100 = "https://www.nvidia.com/en-us/data-center/h100/"
H200 = "https://www.nvidia.com/en-us/data-center/h200/"
A100 = "https://www.nvidia.com/en-us/data-center/a100/"
A10 = "https://www.nvidia.com/en-us/data-center/products/a10-gpu/"
L4 = "https://www.nvidia.com/en-us/data-center/l4/"
L40S = "https://www.nvidia.com/en-us/data-center/l40s/"
T4 = "https://www.nvidia.com/en-us/data-center/tesla-t4/"
V100 = "https://www.nvidia.com/en-us/data-center/v100/"
ADA_WHITEPAPER = (
    "https://images.nvidia.com/aem-dam/Solutions/geforce/ada/nvidia-ada-gpu-architecture.pdf"
)
GA102_WHITEPAPER = (
    "https://www.nvidia.com/content/PDF/nvidia-ampere-ga-102-gpu-architecture-whitepaper-v2.pdf"
)
# AMD's "Peak-performance capabilities of the MI300X for different data types" table (ROCm docs,
# MI300 series microarchitecture): Matrix FP32 and Vector FP32 are both 256 FLOPS/clock/CU,
# 163.4 TFLOPS; Vector FP64 81.7; TF32 653.7; Matrix FP16/BF16 1307.4; Matrix FP8 2614.9 (dense).
MI300X = "https://rocm.docs.amd.com/en/docs-6.2.2/conceptual/gpu-arch/mi300.html"


@dataclass(frozen=True)
class GpuPeak:
    """One GPU model's listed peaks. ``listed`` maps dtype -> TFLOP/s as the source prints it;
    ``sparse`` names the dtypes whose listed figure assumes 2:4 sparsity (dense is half)."""

    model: str
    pattern: str  # regex over the lower-cased name torch reports
    listed: dict[str, float]
    sparse: frozenset[str]
    source: str
    note: str = ""

    def dense(self, dtype: str) -> float | None:
        """Dense TFLOP/s for ``dtype`` ("fp32", "tf32", "bf16", "fp16", "fp8"), None if the
        GPU has no such matmul (or the source lists none)."""
        if dtype not in MATMUL_FORMATS:
            raise ValueError(f"unknown dtype {dtype!r}: choose one of {', '.join(MATMUL_FORMATS)}")
        value = self.listed.get(dtype)
        if value is None:
            return None
        return value / 2 if dtype in self.sparse else value

    def row(self) -> dict[str, object]:
        """Dense peaks as a table row (for a DataFrame)."""
        return {
            "model": self.model,
            **{d: self.dense(d) for d in MATMUL_FORMATS},
            "source": self.source,
        }


_TC = frozenset({"tf32", "bf16", "fp16", "fp8"})  # the data sheets' asterisked (sparse) figures

# fmt: off
GPU_PEAKS: tuple[GpuPeak, ...] = (
    GpuPeak("H200 NVL", r"\bh200\b.*\bnvl\b", {"fp32": 60, "tf32": 835, "bf16": 1671, "fp16": 1671,
            "fp8": 3341}, _TC, H200),
    GpuPeak("H200 SXM", r"\bh200\b", {"fp32": 67, "tf32": 989, "bf16": 1979, "fp16": 1979,
            "fp8": 3958}, _TC, H200),
    GpuPeak("H100 NVL", r"\bh100\b.*\bnvl\b", {"fp32": 60, "tf32": 835, "bf16": 1671, "fp16": 1671,
            "fp8": 3341}, _TC, H100),
    GpuPeak("H100 PCIe", r"\bh100\b.*\bpcie\b", {"fp32": 51, "tf32": 756, "bf16": 1513, "fp16": 1513,
            "fp8": 3026}, _TC, H100),
    GpuPeak("H100 SXM", r"\bh100\b", {"fp32": 67, "tf32": 989, "bf16": 1979, "fp16": 1979,
            "fp8": 3958}, _TC, H100),
    GpuPeak("A100 (40/80 GB, SXM or PCIe)", r"\ba100\b", {"fp32": 19.5, "tf32": 156, "bf16": 312,
            "fp16": 312}, frozenset(), A100, "the data sheet lists dense and sparse figures"),
    GpuPeak("L40S", r"\bl40s\b", {"fp32": 91.6, "tf32": 183, "bf16": 362.05, "fp16": 362.05,
            "fp8": 733}, frozenset(), L40S, "the data sheet prints dense and sparse figures; its "
            "dense bf16/fp16 (362.05) is a little under half its sparse 733"),
    GpuPeak("L4", r"\bl4\b", {"fp32": 30.3, "tf32": 120, "bf16": 242, "fp16": 242, "fp8": 485},
            _TC, L4),
    GpuPeak("A10", r"\ba10\b", {"fp32": 31.2, "tf32": 62.5, "bf16": 125, "fp16": 125},
            frozenset(), A10, "the data sheet lists dense and sparse figures"),
    GpuPeak("GeForce RTX 4090", r"\brtx 4090\b", {"fp32": 82.6, "tf32": 82.6, "bf16": 165.2,
            "fp16": 165.2, "fp8": 330.3}, frozenset(), ADA_WHITEPAPER,
            "dense, fp32 accumulate (appendix table of the whitepaper)"),
    GpuPeak("GeForce RTX 3090", r"\brtx 3090\b(?! ti)", {"fp32": 35.6, "tf32": 35.6, "bf16": 71,
            "fp16": 71}, frozenset(), GA102_WHITEPAPER, "dense, fp32 accumulate"),
    GpuPeak("Tesla T4", r"\bt4\b", {"fp32": 8.1, "fp16": 65}, frozenset(), T4,
            "fp16 is 'mixed precision (FP16/FP32)'; no bf16 or tf32 tensor cores"),
    GpuPeak("Tesla V100 SXM2", r"\bv100\b.*\bsxm", {"fp32": 15.7, "fp16": 125}, frozenset(), V100,
            "fp16 is the 'tensor performance' figure; no bf16 or tf32 tensor cores"),
    GpuPeak("Tesla V100 PCIe", r"\bv100\b", {"fp32": 14, "fp16": 112}, frozenset(), V100,
            "fp16 is the 'tensor performance' figure; no bf16 or tf32 tensor cores"),
    GpuPeak("Instinct MI300X", r"\bmi300x\b", {"fp32": 163.4, "tf32": 653.7, "bf16": 1307.4,
            "fp16": 1307.4, "fp8": 2614.9}, frozenset(), MI300X,
            "dense; AMD lists fp32 163.4 for both 'Vector FP32' and 'Matrix FP32' (256 FLOPS/clock/CU "
            "each), unlike NVIDIA, whose fp32 column is the non-tensor rate"),
)
# fmt: on


def lookup_peak(name: str) -> GpuPeak | None:
    """The table row for a GPU name as torch reports it, or None if the GPU is not listed."""
    if not isinstance(name, str):
        raise TypeError(f"GPU name must be a str, got {type(name).__name__}")
    norm = " ".join(re.sub(r"[^a-z0-9]+", " ", name.lower()).split())
    for row in GPU_PEAKS:
        if re.search(row.pattern, norm):
            return row
    return None


def peak_table() -> list[dict[str, object]]:
    """Every row's dense peaks, for ``pandas.DataFrame(peak_table())``."""
    return [row.row() for row in GPU_PEAKS]


# ------------------------------------------------------------- published training throughput
DLE_TRANSFORMER_XL = (
    "https://github.com/NVIDIA/DeepLearningExamples/tree/master/PyTorch/LanguageModeling/"
    "Transformer-XL#training-performance-results"
)
DLE_TRANSFORMER_XL_SETUP = (
    "NVIDIA Deep Learning Examples, Transformer-XL for PyTorch on WikiText-103, 1 GPU, "
    "pytorch-20.06-py3 NGC container, tokens/s averaged over 500 training iterations; "
    "'mixed precision' is fp16 with Apex AMP O2 and dynamic loss scaling"
)


@dataclass(frozen=True)
class PublishedRun:
    """One row of a vendor's published training-throughput table, quoted as printed (never a
    run of this course). ``listed_speedup`` is the source's own ratio column."""

    gpu: str
    model: str
    batch_per_gpu: int
    baseline: str  # "FP32" or "TF32", as the source names it
    baseline_tokens_per_s: float
    amp: str
    amp_tokens_per_s: float
    listed_speedup: float
    source: str
    setup: str

    @property
    def speedup(self) -> float:
        """The ratio of the two quoted throughputs."""
        return self.amp_tokens_per_s / self.baseline_tokens_per_s

    def row(self) -> dict[str, object]:
        return {
            "GPU": self.gpu,
            "model": self.model,
            "batch/GPU": self.batch_per_gpu,
            "baseline": self.baseline,
            "baseline tok/s": self.baseline_tokens_per_s,
            "16-bit": self.amp,
            "16-bit tok/s": self.amp_tokens_per_s,
            "speedup (source)": self.listed_speedup,
            "source": self.source,
        }


_FP16_AMP = "fp16 mixed precision"
# Single-GPU rows of the "Training performance results" tables (base and large models).
# No vendor table with a bf16 training-throughput column was found for this course yet.
# fmt: off
PUBLISHED_TRAINING: tuple[PublishedRun, ...] = (
    PublishedRun("A100 40GB (DGX A100)", "Transformer-XL base", 32, "TF32", 41_527, _FP16_AMP,
                 59_961, 1.444, DLE_TRANSFORMER_XL, DLE_TRANSFORMER_XL_SETUP),
    PublishedRun("A100 40GB (DGX A100)", "Transformer-XL large", 8, "TF32", 14_497, _FP16_AMP,
                 21_554, 1.487, DLE_TRANSFORMER_XL, DLE_TRANSFORMER_XL_SETUP),
    PublishedRun("V100 16GB (DGX-1)", "Transformer-XL base", 16, "FP32", 13_981, _FP16_AMP,
                 26_639, 1.905, DLE_TRANSFORMER_XL, DLE_TRANSFORMER_XL_SETUP),
    PublishedRun("V100 16GB (DGX-1)", "Transformer-XL large", 2, "FP32", 3_558, _FP16_AMP,
                 6_907, 1.941, DLE_TRANSFORMER_XL, DLE_TRANSFORMER_XL_SETUP),
)
# fmt: on


def published_training_table() -> list[dict[str, object]]:
    """The published rows, for ``pandas.DataFrame(published_training_table())``."""
    return [run.row() for run in PUBLISHED_TRAINING]
