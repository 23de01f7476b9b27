"""What hardware is this, and which precision should you train in on it?

Taught in notebook 00, sections "Your hardware" and "Which precision should *you* use here?";
notebook 07 uses the peaks (section "5. Published GPU measurements (not the course's runs)").

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

from course_utils.hardware.detection import (
    CpuInfo,
    GpuInfo,
    HardwareReport,
    cpu_has_native_bf16,
    detect,
    supports_native_bf16,
)
from course_utils.hardware.gpus import (
    ARCHITECTURES,
    KNOWN_GPUS,
    Architecture,
    KnownGpu,
    architecture_table,
    explain_capability,
    known_gpu_table,
    lookup_gpu,
    parse_capability,
)
from course_utils.hardware.recommend import (
    Recommendation,
    recommend_for_device,
    recommend_for_report,
    recommend_precision,
)

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
    "recommend_for_device",
    "recommend_for_report",
    "recommend_precision",
    "supports_native_bf16",
]
