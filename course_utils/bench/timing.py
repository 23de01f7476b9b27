"""Timing and bookkeeping shared by the benchmarks (``bench.matmul``, ``bench.train_step``).

Taught in notebook 07, section "1. Timing done right".

- ``time_call(fn, device)`` -> ``Timing``: warm-up, then repeated calls timed with CUDA events on a
  GPU (``time.perf_counter`` around ``synchronize`` elsewhere), and their median.
- ``free_memory_bytes(device)`` and ``check_fits(bytes_needed, device)``: so that a size that does
  not fit is reported and skipped instead of crashing the process (or, on Linux, getting it
  killed by the kernel after an over-committed allocation).
- ``is_out_of_memory(exc)``: recognise the allocation errors of CUDA and CPU allocators.
- ``CpuWatch`` -> ``CpuLoad``: how many cores *other* processes used while a benchmark ran
  (``/proc/stat`` minus this process's own CPU time), so that a sweep measured on a busy machine
  says so and draws no verdict, fraction of peak or MFU from its times (notebook 07, section 1).
- ``provenance(command)`` and ``write_json(data, path)``: every result file says where, when and
  how it was measured.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from course_utils.atomic import write_json_atomic
from course_utils.units import format_bytes

SCHEMA = "course-bench/1"

# Of the memory reported free, how much a benchmark may plan to use (the rest is headroom for
# the allocator, the framework and everything else running).
MEMORY_HEADROOM = 0.8


# ---------------------------------------------------------------------------------------- timing
@dataclass(frozen=True)
class Timing:
    """Seconds per call: the median of ``times_s`` (each one call), after ``warmup`` calls."""

    median_s: float
    times_s: tuple[float, ...] = field(repr=False)
    warmup: int
    method: str  # "cuda events" or "perf_counter + synchronize" or "perf_counter"

    @property
    def reps(self) -> int:
        return len(self.times_s)

    @property
    def spread(self) -> float:
        """(max - min) / median of the timed calls: a quick measure of noise."""
        return (max(self.times_s) - min(self.times_s)) / self.median_s if self.median_s else 0.0


def synchronize(device: torch.device | str) -> None:
    """Wait for the device's queued work (CUDA and MPS run asynchronously; a CPU does not)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def time_call(
    fn: Callable[[], Any],
    device: torch.device | str = "cpu",
    *,
    warmup: int = 1,
    reps: int = 10,
    min_reps: int = 3,
    budget_s: float = 1.0,
) -> Timing:
    """Time ``fn()`` properly: ``warmup`` untimed calls (kernel selection, caches, lazy init),
    then up to ``reps`` timed calls, fewer if they would take more than ``budget_s`` in all (but
    at least ``min_reps``, and at least one). Returns the median, which a single slow call
    (another process, a page fault) does not move.

    On CUDA each call is timed with a pair of CUDA events (GPU time, no launch latency of the
    host); elsewhere with ``time.perf_counter`` around the call and a synchronize.
    """
    _check_int(warmup, "warmup", 0)
    _check_int(reps, "reps", 1)
    _check_int(min_reps, "min_reps", 1)
    if not (isinstance(budget_s, (int, float)) and budget_s > 0):
        raise ValueError(f"budget_s must be a positive number of seconds, got {budget_s!r}")
    device = torch.device(device)
    estimate = None
    for _ in range(warmup):
        started = time.perf_counter()
        fn()
        synchronize(device)
        estimate = time.perf_counter() - started
    if estimate is not None and estimate > 0:
        reps = max(1, min(reps, max(min_reps, math.floor(budget_s / estimate))))
    if device.type == "cuda":
        pairs = []
        for _ in range(reps):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            pairs.append((start, end))
        torch.cuda.synchronize(device)
        times = tuple(start.elapsed_time(end) / 1e3 for start, end in pairs)
        method = "cuda events"
    else:
        times_list = []
        for _ in range(reps):
            started = time.perf_counter()
            fn()
            synchronize(device)
            times_list.append(time.perf_counter() - started)
        times = tuple(times_list)
        method = "perf_counter" if device.type == "cpu" else "perf_counter + synchronize"
    return Timing(statistics.median(times), times, warmup, method)


# ----------------------------------------------------------------------------- a busy machine
# The words every "busy" note starts with; tests/test_no_busy_outputs.py fails if a committed
# notebook output contains them (a timing recorded on a busy machine must never be committed).
BUSY_MARKER = "this machine was busy"
# Other processes may use this many cores beyond the ones torch leaves free before a measurement
# counts as busy. Half a core: on an idle machine the rest of the system uses a few hundredths.
BUSY_OTHERS_CORES = 0.5
# Shorter measurements are not judged: /proc/stat counts in clock ticks (10 ms on Linux).
MIN_WATCH_S = 0.2


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _system_busy_seconds() -> float | None:
    """CPU-seconds that all cores spent not idle since boot (user, nice, system, irq, softirq,
    steal), from the first line of /proc/stat; None where there is no /proc/stat (macOS,
    Windows)."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
        ticks = [int(v) for v in fields[1:9]]
    except (OSError, ValueError):
        return None
    if not fields or fields[0] != "cpu" or len(ticks) < 5:
        return None
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    """CPU-seconds used by this process so far, all its threads (torch's included)."""
    return time.process_time()


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


@dataclass(frozen=True)
class CpuLoad:
    """What else ran on the CPU while a benchmark was measured.

    ``others_cores``: the average number of cores used by *other* processes during the
    ``wall_s`` seconds (None where it cannot be read); ``threads``: the threads torch used;
    ``load_before``: the 1-minute load average at the start (for the note only: it lags by a
    minute and counts this process too)."""

    wall_s: float
    others_cores: float | None
    cores: int
    threads: int
    load_before: float | None = None

    @property
    def spare_cores(self) -> int:
        """Cores torch does not use, where other work can run without slowing it."""
        return max(0, self.cores - self.threads)

    @property
    def busy(self) -> bool:
        """True when other processes competed with the benchmark for the cores: they used more
        than ``BUSY_OTHERS_CORES`` beyond the spare cores. Without /proc/stat, a load average
        above the core count at the start. Measurements shorter than ``MIN_WATCH_S`` are not
        judged."""
        if self.others_cores is not None:
            if self.wall_s < MIN_WATCH_S:
                return False
            return self.others_cores > self.spare_cores + BUSY_OTHERS_CORES
        return self.load_before is not None and self.load_before > self.cores

    @property
    def note(self) -> str:
        """Empty when the CPU was free; else a sentence that starts with ``BUSY_MARKER``."""
        if not self.busy:
            return ""
        used = (
            f"other processes used {self.others_cores:.1f} of its {self.cores} cores"
            if self.others_cores is not None
            else f"its load average was {self.load_before:.1f} on {self.cores} cores"
        )
        return (
            f"{BUSY_MARKER}: {used} while this was measured, so these times are inflated and "
            "noisy; no verdict, fraction of peak or MFU is drawn from them. Rerun on an idle "
            "machine."
        )


class CpuWatch:
    """Start on creation; ``stop()`` returns the ``CpuLoad`` of the interval in between.

    >>> watch = CpuWatch()
    >>> load = watch.stop()
    >>> load.cores >= 1
    True
    """

    def __init__(self) -> None:
        self.threads = torch.get_num_threads()
        self.load_before = _load_average()
        self._system = _system_busy_seconds()
        self._own = _own_cpu_seconds()
        self._started = time.perf_counter()

    def stop(self) -> CpuLoad:
        wall = time.perf_counter() - self._started
        system = _system_busy_seconds()
        others = None
        if system is not None and self._system is not None and wall > 0:
            own = _own_cpu_seconds() - self._own
            others = max(0.0, (system - self._system - own) / wall)
        return CpuLoad(wall, others, usable_cores(), self.threads, self.load_before)


# ---------------------------------------------------------------------------------------- memory
def free_memory_bytes(device: torch.device | str = "cpu") -> int | None:
    """Bytes a new allocation can use on ``device``: CUDA's free memory, or the operating
    system's available memory for the CPU (None where it cannot be read)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "mps":
        return None
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_fits(bytes_needed: int, device: torch.device | str = "cpu") -> str | None:
    """None if ``bytes_needed`` fits in ``MEMORY_HEADROOM`` of the free memory, else the reason
    (a sentence) why it was skipped."""
    free = free_memory_bytes(device)
    if free is None or bytes_needed <= MEMORY_HEADROOM * free:
        return None
    return (
        f"does not fit: needs about {format_bytes(bytes_needed)}, "
        f"{format_bytes(free)} free on {torch.device(device)}"
    )


_OOM_MARKERS = (
    "out of memory",
    "can't allocate memory",
    "defaultcpuallocator",
    "not enough memory",
)


def is_out_of_memory(exc: BaseException) -> bool:
    """True for the allocation failures of the CUDA and CPU allocators."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in _OOM_MARKERS)


def release_memory(device: torch.device | str) -> None:
    """Give cached blocks back after a failed allocation, so the next size starts clean."""
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()


# ------------------------------------------------------------------------------------ provenance
def device_name(device: torch.device | str) -> str:
    """'NVIDIA H100 80GB HBM3' for a GPU, the CPU's model name for the CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    from course_utils.hardware import detect

    return detect().cpu.model


def provenance(device: torch.device | str, command: str | None = None) -> dict[str, Any]:
    """Where, when and how a result was measured: device name, driver, versions, date, command,
    git commit of the course."""
    from course_utils.hardware import detect

    device = torch.device(device)
    hw = detect()
    info: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command if command is not None else " ".join([sys.executable, *sys.argv]),
        "device": str(device),
        "device_name": device_name(device),
        "cpu": hw.cpu.model,
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "hip": getattr(torch.version, "hip", None),
        "driver": hw.driver_version,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "git_commit": _git_commit(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["capability"] = f"{props.major}.{props.minor}"
        info["gpu_memory_bytes"] = int(props.total_memory)
    return info


def _git_commit() -> str | None:
    root = pathlib.Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def write_json(data: dict[str, Any], path: str | os.PathLike) -> pathlib.Path:
    """Write ``data`` as indented JSON (NaN/inf become null); create parent folders.

    The write is atomic (``course_utils.atomic``): a full disk or an interrupted run leaves the
    previous file, if any, as it was, never a truncated one.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_json_atomic(path, _finite(data))


def check_output_folder(folder: str | os.PathLike) -> pathlib.Path:
    """Check, before any work, that results can be written into ``folder``: it exists and is a
    writable folder, or it can be created (its nearest existing parent is a writable folder).
    Returns the folder as a ``Path``; raises ``ValueError`` saying what is wrong."""
    if not isinstance(folder, str | os.PathLike):
        raise TypeError(f"folder must be a str or os.PathLike, got {type(folder).__name__}")
    folder = pathlib.Path(folder)
    if not os.fspath(folder):
        raise ValueError("empty output folder")
    probe = folder
    while not probe.exists():
        if probe.is_symlink():
            raise ValueError(f"cannot write into {folder}: {probe} is a broken symlink")
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise ValueError(f"cannot write into {folder}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        what = "is" if probe == folder else f"would be created in {probe}, which is"
        raise ValueError(f"cannot write into {folder}: it {what} not writable")
    return folder


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _check_int(value: Any, name: str, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
