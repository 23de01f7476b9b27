"""The hardware the doctor judges a setup against: this machine (``detect()``), a
``HardwareReport``, or a GPU name ("Tesla T4") for the what-if "and if I ran this there?".

Taught in notebook 09.
"""

from __future__ import annotations

from dataclasses import dataclass

from course_utils.hardware import HardwareReport, detect, lookup_gpu
from course_utils.hardware.gpus import capability_label

NO_GPU_NAMES = ("cpu", "none", "no gpu")


@dataclass(frozen=True)
class Machine:
    """What the checks need to know about the hardware."""

    label: str  # e.g. "this machine (no CUDA GPU)", "the hardware you gave: Tesla T4 (cc 7.5)"
    has_cuda: bool  # a CUDA or ROCm GPU (torch calls both "cuda")
    mps: bool
    gpu: str | None  # the first GPU's name
    vendor: str | None  # "NVIDIA", "AMD", "Apple"
    capability: tuple[int, int] | None  # NVIDIA compute capability
    native_bf16: bool | None  # the first GPU's; None without a GPU or when unknown

    @property
    def ampere_plus(self) -> bool:
        """An NVIDIA GPU of compute capability 8.0 or newer (the ones with TF32 and native bf16)."""
        return self.vendor == "NVIDIA" and self.capability is not None and self.capability >= (8, 0)

    @property
    def bf16_emulated(self) -> bool:
        """A CUDA/ROCm GPU that runs bf16 without native support."""
        return self.has_cuda and self.native_bf16 is False


def from_report(report: HardwareReport, *, given: bool) -> Machine:
    who = "the hardware you gave" if given else "this machine"
    if report.gpus:
        gpu = report.gpus[0]
        ident = gpu.gfx if gpu.vendor == "AMD" and gpu.gfx else capability_label(gpu.capability)
        native = gpu.native_bf16
        if native is None and gpu.vendor == "NVIDIA" and gpu.capability:
            native = gpu.capability >= (8, 0)
        return Machine(
            label=f"{who}: {gpu.name} ({ident})",
            has_cuda=True,
            mps=report.mps_available,
            gpu=gpu.name,
            vendor=gpu.vendor,
            capability=gpu.capability if gpu.vendor == "NVIDIA" else None,
            native_bf16=native,
        )
    if report.mps_available:
        return Machine(f"{who}: Apple MPS, no CUDA GPU", False, True, None, "Apple", None, None)
    return Machine(f"{who}: no CUDA GPU", False, False, None, None, None, None)


def from_name(name: str) -> Machine:
    """A GPU name as torch or nvidia-smi print it ("Tesla T4", "NVIDIA A100-SXM4-80GB", "H100"),
    or "cpu" / "none" for a machine without a GPU. Unknown names: ValueError."""
    if name.strip().lower() in NO_GPU_NAMES:
        return Machine("the hardware you gave: no GPU", False, False, None, None, None, None)
    known = lookup_gpu(name)
    if known is None:
        raise ValueError(
            f"unknown GPU name {name!r}: give it as torch.cuda.get_device_name() or nvidia-smi "
            "prints it, e.g. 'Tesla T4', 'NVIDIA A100-SXM4-80GB', 'H100', 'RTX 4090', 'MI300X' "
            "(course_utils.hardware.known_gpu_table() lists the known ones), or 'cpu' for no GPU"
        )
    if known.apple:
        return Machine(f"the hardware you gave: {known.model}", False, True, known.model, "Apple",
                       None, None)  # fmt: skip
    arch = known.architecture
    ident = known.gfx if known.gfx else capability_label(known.capability)
    return Machine(
        label=f"the hardware you gave: {known.model} ({ident})",
        has_cuda=True,
        mps=False,
        gpu=known.model,
        vendor=known.vendor,
        capability=known.capability,
        native_bf16=bool(getattr(arch, "native_bf16", False)),
    )


def resolve(hardware) -> Machine:
    """None -> this machine; a ``HardwareReport``; a GPU name string (see ``from_name``)."""
    if hardware is None:
        return from_report(detect(), given=False)
    if isinstance(hardware, Machine):
        return hardware
    if isinstance(hardware, HardwareReport):
        return from_report(hardware, given=True)
    if isinstance(hardware, str):
        return from_name(hardware)
    raise TypeError(
        "hardware must be None (this machine), a course_utils.hardware.HardwareReport or a GPU "
        f"name such as 'Tesla T4', got {type(hardware).__name__}"
    )
