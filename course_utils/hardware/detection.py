"""What hardware is this: the CPU (bf16/fp16 instruction flags), CUDA/ROCm GPUs and Apple MPS.

``detect()`` never raises: on an odd machine fields are ``None`` or ``"unknown"``.
Taught in notebook 00, section "Your hardware".
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

from course_utils.hardware.gpus import _GFX_RE, _arch_for_gfx, capability_label

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
        ident = self.gfx if self.vendor == "AMD" and self.gfx else capability_label(self.capability)
        mem = f"{self.total_memory_gib:.1f} GiB" if self.total_memory_gib else "? GiB"
        bf16 = {True: "yes", False: "no", None: "unknown"}[self.native_bf16]
        return f"{self.name} ({ident}, {mem}, native bf16 {bf16})"


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


def as_device(device: str | torch.device) -> torch.device:
    """``torch.device(device)``, with a ValueError that names the valid spellings."""
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"unknown device {device!r}: use 'cpu', 'cuda', 'cuda:N' or 'mps'"
        ) from exc


def supports_native_bf16(device: str | torch.device | None = None) -> bool:
    """Native bf16 matrix math on ``device`` ("cpu", "cuda", "cuda:N", "mps"; default: the device
    ``setup()`` picks, CUDA if available else CPU). MPS answers False: Apple does not document
    bf16 hardware throughput (bf16 still runs there on macOS 14+)."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = as_device(device)
    if dev.type == "cpu":
        return cpu_has_native_bf16()
    if dev.type == "cuda":
        gpus = _detect_gpus()
        index = dev.index if dev.index is not None else 0
        match = [g for g in gpus if g.index == index]
        return bool(match and match[0].native_bf16)
    return False
