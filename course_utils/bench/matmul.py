"""Benchmarks for notebook 07: how fast is each precision on *this* machine, and why?

Taught in notebook 07, section "2. Matmul throughput per dtype" (and its part "tf32: the fp32
baseline moves").

Matmul throughput (this module):

    sweep = matmul_sweep()                 # fp32, tf32, bf16, fp16, fp8 over a size sweep
    print(sweep.table()); sweep.plot()
    sweep.fraction_of_peak("bf16")         # against the vendor's dense peak (a listed GPU), or,
                                           # on a CPU, the best fp32 rate measured here (not a peak)
    print("\n".join(compare_to_fp32(sweep)))  # 16-bit vs fp32, or why no comparison is drawn

Training steps (``course_utils.bench.train_step``, re-exported here): ``train_step_sweep``,
``memory_vs_batch``, ``crossover_batch``, ``train_flops_per_token``, ``mfu``.

Every measurement is a median of timed calls after a warm-up (``timing.time_call``); sizes
that do not fit in memory, or would take too long, are reported as skipped with the reason,
never a crash. A sweep measured while other processes competed for the CPU
(``timing.CpuWatch``) carries a ``note`` and draws no fraction of peak, speedup verdict or
MFU from its times. ``suite(...)`` runs both benchmarks and returns one JSON-ready dict with its
provenance (``scripts/bench.py`` writes it to a file).
"""

from __future__ import annotations

import contextlib
import json
import pathlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from course_utils.bench.timing import (
    BUSY_MARKER,
    SCHEMA,
    CpuWatch,
    Timing,
    check_fits,
    device_name,
    is_out_of_memory,
    provenance,
    release_memory,
    time_call,
    write_json,
)
from course_utils.bench.train_step import (
    MODEL_PRESETS,
    MemoryPoint,
    StepResult,
    claim_verdicts,
    crossover_batch,
    memory_vs_batch,
    mfu,
    train_flops_per_token,
    train_step_sweep,
)
from course_utils.hardware.peaks import GPU_PEAKS, GpuPeak, lookup_peak, peak_table
from course_utils.precision import DTYPES, MATMUL_FORMATS

CPU_SIZES = (64, 128, 256, 512)
GPU_SIZES = (256, 512, 1024, 2048, 4096, 8192)
# The size the GPU report calls "a large square product": where torch's rate levels off.
LARGE_PRODUCT = 8192

_BYTES = {"fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2, "fp8": 1}


# ------------------------------------------------------------------------------------ one point
@dataclass
class MatmulResult:
    """One (dtype, size) point: an n x n by n x n product. ``skipped`` holds the reason when it
    was not measured (then ``seconds`` and ``tflops`` are None)."""

    dtype: str
    size: int
    seconds: float | None = None
    tflops: float | None = None
    reps: int = 0
    timing: str = ""
    skipped: str | None = None

    @property
    def flops(self) -> int:
        return matmul_flops(self.size, self.size, self.size)


def matmul_flops(m: int, n: int, k: int) -> int:
    """Floating-point operations of an (m x k) @ (k x n) product: one multiply and one add per
    term, 2 m n k."""
    return 2 * m * n * k


def _resolve_device(device: torch.device | str | None) -> torch.device:
    from course_utils.env import pick_device

    return pick_device(device)


def unsupported_reason(dtype: str, device: torch.device | str) -> str | None:
    """Why ``dtype`` matmuls cannot run on ``device`` (None if they can)."""
    device = torch.device(device)
    if dtype not in MATMUL_FORMATS:
        raise ValueError(f"unknown dtype {dtype!r}: choose from {', '.join(MATMUL_FORMATS)}")
    if dtype == "tf32" and device.type != "cuda":
        return "tf32 is a mode of NVIDIA tensor cores (Ampere and newer); not on this device"
    if dtype == "tf32" and torch.cuda.get_device_capability(device) < (8, 0):
        return "tf32 needs an NVIDIA GPU with compute capability 8.0+ (Ampere and newer)"
    if dtype == "fp8":
        if device.type != "cuda" or getattr(torch.version, "hip", None):
            return "fp8 matmuls need an NVIDIA GPU with compute capability 8.9+ (Ada, Hopper)"
        if torch.cuda.get_device_capability(device) < (8, 9):
            return "fp8 matmuls need compute capability 8.9+ (Ada, Hopper, Blackwell)"
    if dtype == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported(False):
        return "this GPU has no native bf16 (compute capability below 8.0)"
    return None


@contextlib.contextmanager
def _fp32_matmul_mode(dtype: str, device: torch.device):
    """fp32 -> IEEE fp32 matmuls; tf32 -> tensor-core tf32. Restores the setting after.

    ``torch.set_float32_matmul_precision`` sets the global flag and the per-backend
    ``torch.backends.cuda.matmul.fp32_precision`` together; setting only the latter while the
    global flag says "highest" makes cuBLAS matmuls refuse to run (mixed legacy/new TF32 APIs,
    see aten/src/ATen/Context.cpp, ``allowTF32CuBLAS``)."""
    if device.type != "cuda" or dtype not in ("fp32", "tf32"):
        yield
        return
    old = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high" if dtype == "tf32" else "highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(old)


def _operands(dtype: str, size: int, device: torch.device):
    generator = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(size, size, device=device, generator=generator)
    b = torch.randn(size, size, device=device, generator=generator)
    if dtype == "fp8":
        # torch._scaled_mm wants A row-major and B column-major, with fp32 scales.
        a8 = a.to(torch.float8_e4m3fn)
        b8 = b.to(torch.float8_e4m3fn).t().contiguous().t()
        one = torch.ones((), device=device)
        return lambda: torch._scaled_mm(a8, b8, one, one, out_dtype=torch.bfloat16)
    a, b = a.to(DTYPES[dtype]), b.to(DTYPES[dtype])
    return lambda: torch.mm(a, b)


def matmul_throughput(
    dtype: str,
    size: int,
    device: torch.device | str | None = None,
    *,
    warmup: int = 1,
    reps: int = 10,
    budget_s: float = 0.5,
) -> MatmulResult:
    """Time an n x n @ n x n product in ``dtype`` ("fp32", "tf32", "bf16", "fp16", "fp8") and
    return its median time and TFLOP/s. A size that does not fit in memory, or a dtype this
    device cannot multiply in, comes back with ``skipped`` set."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(
            f"size must be a positive int (the side of the square matrices), got {size!r}"
        )
    device = _resolve_device(device)
    reason = unsupported_reason(dtype, device)
    if reason:
        return MatmulResult(dtype, size, skipped=reason)
    # A and B in fp32 first (then cast), and the output: plan for the worst case.
    needed = size * size * (4 * 2 + _BYTES[dtype] * 2 + 4)
    reason = check_fits(needed, device)
    if reason:
        return MatmulResult(dtype, size, skipped=reason)
    try:
        with _fp32_matmul_mode(dtype, device):
            call = _operands(dtype, size, device)
            timing: Timing = time_call(call, device, warmup=warmup, reps=reps, budget_s=budget_s)
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        release_memory(device)
        return MatmulResult(dtype, size, skipped=f"out of memory: {str(exc).splitlines()[0]}")
    finally:
        call = None  # noqa: F841 - drop the operands before the next size
    seconds = timing.median_s
    tflops = matmul_flops(size, size, size) / seconds / 1e12 if seconds > 0 else None
    return MatmulResult(dtype, size, seconds, tflops, timing.reps, timing.method)


# ------------------------------------------------------------------------------------ the sweep
@dataclass
class MatmulSweep:
    """Results of ``matmul_sweep``, with the peak they are compared to."""

    device: str
    device_name: str
    results: list[MatmulResult] = field(default_factory=list)
    peak: GpuPeak | None = None
    note: str = ""  # e.g. that the CPU was busy with other work while this was measured

    # -- lookups
    def points(self, dtype: str) -> list[MatmulResult]:
        """The measured (not skipped) points of one dtype, by size."""
        return sorted(
            (r for r in self.results if r.dtype == dtype and r.tflops is not None),
            key=lambda r: r.size,
        )

    def best(self, dtype: str) -> MatmulResult | None:
        """The fastest measured point of ``dtype`` (None if none was measured)."""
        pts = self.points(dtype)
        return max(pts, key=lambda r: r.tflops) if pts else None

    def skipped(self) -> list[MatmulResult]:
        return [r for r in self.results if r.skipped]

    @property
    def busy(self) -> bool:
        """True when other processes competed for the CPU while this sweep ran (see ``note``)."""
        return BUSY_MARKER in self.note

    def reference(self, dtype: str) -> tuple[float | None, str]:
        """(TFLOP/s, what it is) that ``dtype`` is compared to: the vendor's dense peak for a
        listed GPU; on a CPU (or an unlisted GPU) the best fp32 rate measured in this sweep,
        which is *not* a hardware peak. (None, why) when the sweep was busy."""
        if self.busy:
            return None, "none: the machine was busy (see the note)"
        if self.peak is not None:
            value = self.peak.dense(dtype)
            kind = f"{self.peak.model} dense {dtype} peak ({self.peak.source})"
            return value, kind if value is not None else f"no {dtype} peak listed"
        best = self.best("fp32")
        if best is None:
            return None, "no fp32 point measured"
        return best.tflops, f"best fp32 rate measured here (n={best.size}), not a hardware peak"

    def vendor_peak(self, dtype: str) -> float | None:
        """The vendor's dense ``dtype`` peak when this GPU is listed
        (``course_utils.hardware.peaks``), else None: the only peak MFU may be computed against.
        None too when the sweep was busy."""
        if self.busy or self.peak is None:
            return None
        return self.peak.dense(dtype)

    def fraction_of_peak(self, dtype: str, size: int | None = None) -> float | None:
        """Achieved / reference rate for ``dtype`` at ``size`` (default: its fastest point)."""
        point = self.best(dtype) if size is None else self._point(dtype, size)
        ref, _ = self.reference(dtype)
        if point is None or not ref:
            return None
        return point.tflops / ref

    def speedup(self, dtype: str, over: str = "fp32") -> float | None:
        """How many times faster ``dtype`` is than ``over`` at the largest size both measured."""
        mine = {r.size: r for r in self.points(dtype)}
        base = {r.size: r for r in self.points(over)}
        common = sorted(set(mine) & set(base))
        if not common:
            return None
        n = common[-1]
        return mine[n].tflops / base[n].tflops

    def _point(self, dtype: str, size: int) -> MatmulResult | None:
        return next((r for r in self.points(dtype) if r.size == size), None)

    # -- presentation
    def rows(self) -> list[dict[str, Any]]:
        """One row per point, for a DataFrame."""
        rows = []
        for r in self.results:
            ref, _ = self.reference(r.dtype)
            rows.append(
                {
                    "dtype": r.dtype,
                    "n": r.size,
                    "ms": None if r.seconds is None else round(r.seconds * 1e3, 4),
                    "TFLOP/s": None if r.tflops is None else round(r.tflops, 4),
                    "of peak": None if (r.tflops is None or not ref) else round(r.tflops / ref, 3),
                    "skipped": r.skipped or "",
                }
            )
        return rows

    def table(self) -> str:
        """A plain-text table (rates, fraction of the reference peak, and the skipped points)."""
        lines = [f"matmul throughput on {self.device_name} ({self.device})"]
        if self.note:
            lines.append(f"note: {self.note}")
        column = "of peak" if self.peak is not None else "of ref"
        lines.append(f"{'dtype':6} {'n':>6} {'time/call':>12} {'rate':>16} {column:>8}")
        for r in self.results:
            if r.skipped:
                continue
            ref, _ = self.reference(r.dtype)
            frac = f"{r.tflops / ref:8.1%}" if ref else f"{'-':>8}"
            lines.append(
                f"{r.dtype:6} {r.size:>6} {r.seconds * 1e3:>9.3f} ms {_rate(r.tflops):>16} {frac}"
            )
        for dtype in dict.fromkeys(r.dtype for r in self.results):
            _, kind = self.reference(dtype)
            if self.points(dtype):
                lines.append(f"  {dtype} {column}: {kind}")
        reasons = {}
        for r in self.skipped():
            reasons.setdefault((r.dtype, r.skipped), []).append(r.size)
        for (dtype, why), sizes in reasons.items():
            lines.append(f"  skipped {dtype} n={','.join(map(str, sizes))}: {why}")
        return "\n".join(lines)

    def plot(self, ax=None, title: str | None = None):
        """Achieved TFLOP/s against n, one line per dtype, dashed lines at the reference peaks."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots()
        for dtype in MATMUL_FORMATS:
            pts = self.points(dtype)
            if not pts:
                continue
            (line,) = ax.plot([p.size for p in pts], [p.tflops for p in pts], "o-", label=dtype)
            ref, _ = self.reference(dtype)
            if ref and self.peak is not None:
                ax.axhline(ref, color=line.get_color(), linestyle="--", alpha=0.5)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("n (n x n @ n x n)")
        ax.set_ylabel("TFLOP/s")
        ax.set_title(title or f"matmul throughput: {self.device_name}")
        ax.legend()
        return ax

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "device_name": self.device_name,
            "note": self.note,
            "peak": None if self.peak is None else self.peak.row(),
            "reference": {
                d: dict(zip(("tflops", "what"), self.reference(d), strict=True))
                for d in dict.fromkeys(r.dtype for r in self.results)
            },
            "results": [asdict(r) for r in self.results],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MatmulSweep:
        """Rebuild a sweep from ``to_dict()`` output (a recorded run)."""
        try:
            results = [MatmulResult(**r) for r in data["results"]]
            peak = lookup_peak(data["device_name"]) if data["device"].startswith("cuda") else None
            return cls(data["device"], data["device_name"], results, peak, data.get("note", ""))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a matmul sweep record: {exc}") from exc


def compare_to_fp32(sweep: MatmulSweep, dtypes: Sequence[str] = ("tf32", "bf16", "fp16", "fp8")
                    ) -> list[str]:  # fmt: skip
    """One line per dtype: its rate over fp32's at the largest size both measured, and whether
    that is faster or slower (within 10%: "about the same"). A busy sweep gives one line that
    says why no comparison is drawn."""
    if not isinstance(sweep, MatmulSweep):
        raise TypeError(f"compare_to_fp32 needs a MatmulSweep, got {type(sweep).__name__}")
    for dtype in dtypes:
        if dtype not in MATMUL_FORMATS:
            raise ValueError(f"unknown dtype {dtype!r}: choose from {', '.join(MATMUL_FORMATS)}")
    if sweep.busy:
        return [f"no comparison drawn: {sweep.note}"]
    lines = []
    for dtype in dtypes:
        ratio = sweep.speedup(dtype)
        if ratio is None:
            reason = next((r.skipped for r in sweep.results if r.dtype == dtype and r.skipped), "")
            lines.append(f"{dtype}: not measured" + (f" ({reason})" if reason else ""))
            continue
        n = max(
            set(r.size for r in sweep.points(dtype)) & set(r.size for r in sweep.points("fp32"))
        )
        word = "faster" if ratio > 1.1 else "slower" if ratio < 1 / 1.1 else "about the same"
        lines.append(f"{dtype}: {ratio:.2f}x the fp32 rate at n={n} ({word} than fp32)")
    return lines


def _rate(tflops: float) -> str:
    return f"{tflops:.3f} TFLOP/s" if tflops >= 0.1 else f"{tflops * 1e3:.2f} GFLOP/s"


def matmul_sweep(
    dtypes: Sequence[str] | None = None,
    sizes: Iterable[int] | None = None,
    device: torch.device | str | None = None,
    *,
    budget_s: float = 0.5,
    max_point_s: float = 2.0,
    progress: bool = False,
) -> MatmulSweep:
    """Matmul throughput for each dtype over square sizes (default: every dtype; sizes 64..512 on
    a CPU, 256..8192 on a GPU). ``dtypes`` is a sequence of names or one name ("fp32");
    ``sizes`` an iterable of ints or one int.

    Within a dtype, a size whose single call is predicted (from the previous size, time growing
    as n^3) to take more than ``max_point_s`` is skipped with that reason: fp16 on a CPU without
    fp16 units would otherwise take minutes. ``budget_s`` caps the timed calls per point.
    """
    device = _resolve_device(device)
    if isinstance(dtypes, str):  # one name: matmul_sweep("fp32")
        dtypes = (dtypes,)
    dtypes = tuple(MATMUL_FORMATS if dtypes is None else dtypes)
    for d in dtypes:
        if d not in MATMUL_FORMATS:
            raise ValueError(f"unknown dtype {d!r}: choose from {', '.join(MATMUL_FORMATS)}")
    if sizes is None:
        sizes = GPU_SIZES if device.type == "cuda" else CPU_SIZES
    elif isinstance(sizes, int) and not isinstance(sizes, bool):  # one size: sizes=512
        sizes = (sizes,)
    sizes = sorted(set(sizes))
    name = device_name(device)
    sweep = MatmulSweep(
        str(device), name, peak=lookup_peak(name) if device.type == "cuda" else None
    )
    watch = CpuWatch()
    for dtype in dtypes:
        last: MatmulResult | None = None
        for n in sizes:
            if last is not None and last.seconds is not None:
                predicted = last.seconds * (n / last.size) ** 3
                if predicted > max_point_s:
                    sweep.results.append(
                        MatmulResult(
                            dtype,
                            n,
                            skipped=f"would take about {predicted:.1f} s per call here "
                            f"(> max_point_s={max_point_s:g})",
                        )
                    )
                    continue
            result = matmul_throughput(dtype, n, device, budget_s=budget_s)
            sweep.results.append(result)
            if progress:
                print(f"{dtype:5} n={n:<6} " + (result.skipped or _rate(result.tflops)))
            if result.seconds is not None:
                last = result
    sweep.note = watch.stop().note
    return sweep


def large_product_reference(
    dtype: str = "bf16", size: int = LARGE_PRODUCT, device: torch.device | str | None = None
) -> float | None:
    """The rate torch reaches on a large square product, timed independently of ``time_call`` by
    ``torch.utils.benchmark.Timer`` (its own warm-up and repeat logic): the yardstick of the
    "bf16 matmul at 85% or more of torch's large-product rate" target. None if it cannot run."""
    from torch.utils import benchmark

    device = _resolve_device(device)
    if unsupported_reason(dtype, device) or check_fits(size * size * 20, device):
        return None
    with _fp32_matmul_mode(dtype, device):
        call = _operands(dtype, size, device)
        timer = benchmark.Timer(stmt="call()", globals={"call": call})
        seconds = timer.blocked_autorange(min_run_time=1.0).median
    return matmul_flops(size, size, size) / seconds / 1e12


# ------------------------------------------------------------------------------ the whole suite
def suite(
    device: torch.device | str | None = None,
    *,
    quick: bool = False,
    matmul_dtypes: Sequence[str] | None = None,
    matmul_sizes: Iterable[int] | None = None,
    models: Sequence[str] | None = None,
    batch_sizes: Sequence[int] | None = None,
    precisions: Sequence[str] | None = None,
    seq_len: int | None = None,
    steps: int | None = None,
    compile_model: bool = False,
    command: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Run the matmul sweep and the training-step sweep; return one JSON-ready dict (with
    ``provenance`` and, on a GPU, the course's ``targets`` evaluated). ``quick`` shrinks
    everything to a smoke test."""
    device = _resolve_device(device)
    gpu = device.type == "cuda"
    if matmul_sizes is None and quick:
        matmul_sizes = (64, 128) if not gpu else (256, 1024)
    sweep = matmul_sweep(matmul_dtypes, matmul_sizes, device, progress=progress)
    if models is None:
        models = ("tiny", "gpt2-small") if gpu and not quick else ("mini",)
    if batch_sizes is None:
        batch_sizes = (1, 8, 32) if gpu and not quick else ((1, 2) if quick else (1, 4, 16))
    if precisions is None:
        precisions = ("fp32", "bf16", "fp16")
    if seq_len is None:
        seq_len = 1024 if gpu and not quick else 64
    if steps is None:
        steps = 8 if gpu else 3
    peak_by_precision = _peaks_for_training(sweep)
    steps_results = train_step_sweep(
        models,
        batch_sizes,
        precisions,
        seq_len=seq_len,
        steps=steps,
        device=device,
        peak_tflops=peak_by_precision,
        compile_model=compile_model,
        progress=progress,
    )
    data: dict[str, Any] = {
        "schema": SCHEMA,
        "kind": "bench",
        "provenance": provenance(device, command),
        "matmul": sweep.to_dict(),
        "train_step": [asdict(r) for r in steps_results],
    }
    if gpu and not quick:
        data["targets"] = gpu_targets(sweep, steps_results, device)
    return data


def _peaks_for_training(sweep: MatmulSweep) -> dict[str, float | None]:
    """Vendor peak TFLOP/s per training precision, for MFU: fp32 training is compared with the
    fp32 peak, bf16/fp16 autocast with the 16-bit tensor-core peak. None on a CPU or an unlisted
    GPU: MFU needs a cited hardware peak."""
    return {p: sweep.vendor_peak(p) for p in ("fp32", "bf16", "fp16")}


def utilisation_lines(steps: Sequence[StepResult], sweep: MatmulSweep) -> list[str]:
    """One line per measured training step: its time, and MFU against the vendor's dense peak
    on a listed GPU; elsewhere the fraction of *this machine's measured fp32 matmul rate*, which
    is not MFU (that rate is not a hardware peak). Nothing is computed from a busy sweep or a
    busy step: the line says so."""
    if not isinstance(sweep, MatmulSweep):
        raise TypeError(f"utilisation_lines needs a MatmulSweep, got {type(sweep).__name__}")
    if any(not isinstance(r, StepResult) for r in steps):
        raise TypeError("utilisation_lines needs StepResult rows (from train_step_sweep)")
    best = sweep.best("fp32")
    lines = []
    for r in steps:
        if r.skipped is not None:
            continue
        head = f"{r.model:10} {r.precision:5} batch {r.batch_size:2}: step time: {r.step_s * 1e3:.1f} ms"
        if r.note or sweep.busy:
            lines.append(f"{head}, no utilisation computed ({BUSY_MARKER})")
        elif r.mfu is not None:
            lines.append(f"{head}, MFU {r.mfu:.1%} of the vendor's dense {r.precision} peak")
        elif best is not None and r.tflops is not None:
            lines.append(
                f"{head}, {r.tflops / best.tflops:.1%} of this machine's measured fp32 matmul "
                "rate (not MFU)"
            )
        else:
            lines.append(f"{head}, no peak known for this device")
    return lines


def gpu_targets(
    sweep: MatmulSweep, steps_results: Sequence[StepResult], device: torch.device | str
) -> dict[str, Any]:
    """The course's GPU performance targets, measured (never asserted): bf16 matmul at >= 85%
    of torch's large-product rate, and a GPT-2-small bf16 training step at >= 35% MFU."""
    reference = large_product_reference("bf16", LARGE_PRODUCT, device)
    best = sweep.best("bf16")
    ratio = best.tflops / reference if (best and reference) else None
    small = [
        r for r in steps_results if r.model == "gpt2-small" and r.precision == "bf16" and r.mfu
    ]
    best_mfu = max(small, key=lambda r: r.mfu) if small else None
    return {
        "bf16_matmul": {
            "sweep_best_tflops": best.tflops if best else None,
            "sweep_best_size": best.size if best else None,
            "torch_large_product_tflops": reference,
            "large_product_size": LARGE_PRODUCT,
            "ratio": ratio,
            "target": 0.85,
            "met": None if ratio is None else ratio >= 0.85,
            "fraction_of_vendor_peak": sweep.fraction_of_peak("bf16"),
        },
        "gpt2_small_bf16_mfu": {
            "mfu": best_mfu.mfu if best_mfu else None,
            "batch_size": best_mfu.batch_size if best_mfu else None,
            "seq_len": best_mfu.seq_len if best_mfu else None,
            "target": 0.35,
            "met": None if best_mfu is None else best_mfu.mfu >= 0.35,
        },
    }


# ------------------------------------------------------------------------------ recorded runs
def reference_runs_dir() -> pathlib.Path:
    from course_utils.data import data_dir

    return data_dir() / "reference_runs"


def recorded_benchmarks(folder: str | pathlib.Path | None = None) -> list[dict[str, Any]]:
    """The benchmark files (``"kind": "bench"``) recorded on real GPUs in ``data/reference_runs``,
    oldest first. An empty list when none are recorded."""
    folder = pathlib.Path(folder) if folder is not None else reference_runs_dir()
    runs = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and data.get("schema") == SCHEMA and data.get("kind") == "bench":
            data["file"] = path.name
            runs.append(data)
    return sorted(runs, key=lambda d: d.get("provenance", {}).get("date", ""))


__all__ = [
    "CPU_SIZES",
    "GPU_PEAKS",
    "GPU_SIZES",
    "MATMUL_FORMATS",
    "MODEL_PRESETS",
    "MatmulResult",
    "MatmulSweep",
    "MemoryPoint",
    "StepResult",
    "claim_verdicts",
    "compare_to_fp32",
    "crossover_batch",
    "gpu_targets",
    "large_product_reference",
    "lookup_peak",
    "matmul_flops",
    "matmul_sweep",
    "matmul_throughput",
    "memory_vs_batch",
    "mfu",
    "peak_table",
    "recorded_benchmarks",
    "suite",
    "train_flops_per_token",
    "train_step_sweep",
    "unsupported_reason",
    "utilisation_lines",
    "write_json",
]
