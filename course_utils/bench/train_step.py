"""Training-step benchmarks: step time, peak memory and MFU per precision, model size and batch.

- ``MODEL_PRESETS`` / ``build_model(preset)``: GPT-2 shapes from "mini" (a CPU toy) to
  "gpt2-small" (124M parameters), randomly initialised (nothing is downloaded: speed does not
  depend on the weights' values), SDPA attention, no dropout.
- ``train_step_sweep(models, batch_sizes, precisions)`` -> ``StepResult`` rows, each timed over
  real steps of the course's loop (``course_utils.train.train``): median step time, tokens/s,
  achieved TFLOP/s, MFU, and ``torch.cuda.max_memory_allocated`` on a GPU.
- ``memory_vs_batch(model, batch_sizes, seq_len)``: where a step's bytes go (``course_utils.memory``)
  as the batch grows, and ``crossover_batch``: from which batch size mixed precision saves memory.
- ``train_flops_per_token`` and ``mfu``: the model-FLOPs formula of nanoGPT's ``estimate_mfu``
  (from the PaLM paper, appendix B).
- ``claim_verdicts``: the tutorial's "1.5-2x faster" and "cuts memory by 50%" tested against
  measurements, with the verdicts ``speed_verdict`` / ``memory_verdict`` define (holds, exceeds,
  falls short, does not hold; tolerances in ``SPEED_TOLERANCE`` and ``MEMORY_TOLERANCE``); no
  speed verdict from steps timed on a busy machine.

Taught in notebook 07, sections "3. A training step: time, memory, utilisation", "4. Memory:
where the bytes go, and when autocast saves any" and "6. Verdict".
"""

from __future__ import annotations

import gc
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from course_utils.bench.timing import (
    CpuWatch,
    check_fits,
    is_out_of_memory,
    release_memory,
)

NANOGPT_MFU = "https://github.com/karpathy/nanoGPT/blob/master/model.py"
PALM_PAPER = "https://arxiv.org/abs/2204.02311"

# GPT-2 shapes. "gpt2-small" and "gpt2-medium" are the published GPT-2 sizes
# (https://huggingface.co/openai-community/gpt2); "mini" and "tiny" are CPU-sized.
MODEL_PRESETS: dict[str, dict[str, int]] = {
    "mini": {"n_layer": 2, "n_embd": 128, "n_head": 4, "vocab_size": 2048, "n_positions": 256},
    "tiny": {"n_layer": 4, "n_embd": 256, "n_head": 4, "vocab_size": 8192, "n_positions": 512},
    "gpt2-small": {
        "n_layer": 12,
        "n_embd": 768,
        "n_head": 12,
        "vocab_size": 50257,
        "n_positions": 1024,
    },
    "gpt2-medium": {
        "n_layer": 24,
        "n_embd": 1024,
        "n_head": 16,
        "vocab_size": 50257,
        "n_positions": 1024,
    },
}


def build_model(preset: str = "mini", *, seed: int = 0) -> torch.nn.Module:
    """A randomly initialised ``GPT2LMHeadModel`` of a preset shape (SDPA attention, dropout
    off), on the CPU in fp32."""
    if preset not in MODEL_PRESETS:
        raise ValueError(
            f"unknown model preset {preset!r}: choose one of {', '.join(MODEL_PRESETS)}"
        )
    from transformers import GPT2Config, GPT2LMHeadModel

    shape = MODEL_PRESETS[preset]
    last = shape["vocab_size"] - 1
    config = GPT2Config(
        **shape,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=last,
        eos_token_id=last,
        attn_implementation="sdpa",
    )
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config)
    model.loss_type = "ForCausalLM"  # GPT2LMHeadModel names no loss family: silence the warning
    return model


def random_batch(
    vocab_size: int, batch_size: int, seq_len: int, device: torch.device | str, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Random token ids (timing does not depend on the text), labels = inputs."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab_size, (batch_size, seq_len), generator=generator).to(device)
    return {"input_ids": ids, "labels": ids}


# ---------------------------------------------------------------------------------------- FLOPs
def _shape_of(model: torch.nn.Module) -> tuple[int, int, int, int]:
    config = getattr(model, "config", None)
    try:
        return config.n_layer, config.n_head, config.n_embd // config.n_head, config.n_positions
    except AttributeError:
        raise TypeError(
            "train_flops_per_token needs a GPT-2 style model (config.n_layer, n_head, n_embd)"
        ) from None


def non_embedding_params(model: torch.nn.Module) -> int:
    """Parameters counted by nanoGPT's ``get_num_params``: all (tied ones once) minus the
    position embeddings. The token embedding stays in: it is the output layer's matmul."""
    total = sum(p.numel() for p in model.parameters())
    wpe = getattr(getattr(model, "transformer", None), "wpe", None)
    return total - (wpe.weight.numel() if wpe is not None else 0)


def train_flops_per_token(model: torch.nn.Module, seq_len: int) -> float:
    """Model FLOPs of one training token (forward + backward): 6 N + 12 L H Q T, with N the
    non-embedding parameters, L layers, H heads, Q head size, T the sequence length (nanoGPT's
    ``estimate_mfu``, after PaLM appendix B). Recomputation is not counted: that is what makes
    it *model* FLOPs utilisation."""
    n_layer, n_head, head_dim, _ = _shape_of(model)
    return 6 * non_embedding_params(model) + 12 * n_layer * n_head * head_dim * seq_len


def mfu(tokens_per_s: float, flops_per_token: float, peak_tflops: float | None) -> float | None:
    """Model FLOPs utilisation: achieved model FLOP/s over the peak (None without a peak)."""
    if not peak_tflops:
        return None
    return tokens_per_s * flops_per_token / (peak_tflops * 1e12)


# --------------------------------------------------------------------------------- step sweep
@dataclass
class StepResult:
    """One (model, precision, batch size) point of ``train_step_sweep``."""

    model: str
    precision: str
    batch_size: int
    seq_len: int
    n_params: int
    device: str
    step_s: float | None = None
    tokens_per_s: float | None = None
    tflops: float | None = None
    mfu: float | None = None
    peak_mem_bytes: int | None = None
    steps_timed: int = 0
    step_times_s: list[float] = field(default_factory=list)
    compiled: bool = False
    skipped: str | None = None
    note: str = ""  # set when other processes competed for the CPU while this was timed


_FP16_ON_CPU = (
    "fp16 on a CPU is not timed by default: without native fp16 units (AVX512-FP16, AMX-FP16) it "
    "is far slower than fp32 (see the matmul sweep); pass allow_slow_fp16=True to time it anyway"
)


def _estimated_bytes(model: torch.nn.Module, batch_size: int, seq_len: int, precision: str) -> int:
    """A generous estimate of a step's memory: 18 bytes/parameter (fp32 weights, gradients,
    AdamW moments and 16-bit copies) plus activations after Korthikanti et al. 2022
    (https://arxiv.org/abs/2205.05198: about s b h (34 + 5 a s / h) bytes per layer in 16 bits),
    doubled for fp32, plus the logits and their gradient."""
    n_layer, n_head, head_dim, _ = _shape_of(model)
    hidden = n_head * head_dim
    per_layer = seq_len * batch_size * hidden * (34 + 5 * n_head * seq_len / hidden)
    act = n_layer * per_layer * (2 if precision == "fp32" else 1)
    vocab = model.config.vocab_size
    logits = batch_size * seq_len * vocab * 12
    n_params = sum(p.numel() for p in model.parameters())
    return int(18 * n_params + act + logits)


def train_step_sweep(
    models: Sequence[str] = ("mini",),
    batch_sizes: Sequence[int] = (1, 4),
    precisions: Sequence[str] = ("fp32", "bf16"),
    *,
    seq_len: int = 64,
    steps: int = 3,
    warmup_steps: int = 2,
    device: torch.device | str | None = None,
    peak_tflops: float | Mapping[str, float | None] | None = None,
    compile_model: bool = False,
    allow_slow_fp16: bool = False,
    progress: bool = False,
) -> list[StepResult]:
    """Time ``steps`` training steps (after ``warmup_steps``) of each model preset, precision and
    batch size with the course's loop (AdamW, fused on a GPU). ``peak_tflops`` (one number, or
    one per precision) turns the achieved rate into MFU. Points that do not fit in memory, or
    fp16 on a CPU, come back with ``skipped`` set. ``progress``: a tqdm bar over the points, and
    one line per point timed."""
    from course_utils.env import pick_device
    from course_utils.precision import check_precision
    from course_utils.train import train

    device = pick_device(device)
    for p in precisions:
        check_precision(p)
    for b in batch_sizes:
        if isinstance(b, bool) or not isinstance(b, int) or b < 1:
            raise ValueError(f"batch sizes must be positive ints, got {b!r}")
    results = []
    bar = tqdm(
        total=len(models) * len(precisions) * len(batch_sizes), desc="train steps",
        disable=not progress,
    )  # fmt: skip
    for preset in models:
        model = build_model(preset)
        if seq_len > model.config.n_positions:
            raise ValueError(
                f"seq_len={seq_len} is longer than {preset!r}'s context "
                f"({model.config.n_positions} positions)"
            )
        n_params = sum(p.numel() for p in model.parameters())
        flops_per_token = train_flops_per_token(model, seq_len)
        runner = torch.compile(model) if compile_model else model
        for precision, batch_size in _counted(bar, preset, precisions, batch_sizes):
            row = StepResult(
                preset, precision, batch_size, seq_len, n_params, str(device),
                compiled=compile_model,
            )  # fmt: skip
            results.append(row)
            if precision == "fp16" and device.type == "cpu" and not allow_slow_fp16:
                row.skipped = _FP16_ON_CPU
                continue
            reason = check_fits(_estimated_bytes(model, batch_size, seq_len, precision), device)
            if reason:
                row.skipped = reason
                continue
            batch = random_batch(model.config.vocab_size, batch_size, seq_len, device)
            watch = CpuWatch()
            try:
                history = train(
                    runner,
                    batch,
                    steps=warmup_steps + steps,
                    precision=precision,
                    device=device,
                    make_optimizer=_adamw(device),
                    progress=False,
                    allow_slow_fp16=allow_slow_fp16,
                )
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                row.skipped = f"out of memory: {str(exc).splitlines()[0]}"
                continue
            finally:
                model.zero_grad(set_to_none=True)
                gc.collect()
                release_memory(device)
            row.note = watch.stop().note
            timed = history.records[warmup_steps:]
            row.step_times_s = [r.step_time_s for r in timed]
            row.steps_timed = len(timed)
            row.step_s = statistics.median(row.step_times_s)
            row.tokens_per_s = batch_size * seq_len / row.step_s
            row.tflops = row.tokens_per_s * flops_per_token / 1e12
            peak = peak_tflops.get(precision) if isinstance(peak_tflops, Mapping) else peak_tflops
            # No MFU from a step timed while other processes competed for the CPU.
            row.mfu = None if row.note else mfu(row.tokens_per_s, flops_per_token, peak)
            mems = [r.peak_mem_bytes for r in timed if r.peak_mem_bytes is not None]
            row.peak_mem_bytes = max(mems) if mems else None
            if progress:
                tqdm.write(
                    f"{preset} {precision} batch {batch_size}: step time: {row.step_s * 1e3:.1f} ms"
                )
        del model, runner
        gc.collect()
    bar.close()
    return results


def _counted(bar, preset: str, precisions: Sequence[str], batch_sizes: Sequence[int]):
    """Every (precision, batch size) point of one model; ``bar`` names the point being timed and
    counts it once its loop body is done (a skipped point included)."""
    for precision in precisions:
        for batch_size in batch_sizes:
            bar.set_postfix_str(f"{preset} {precision} batch {batch_size}")
            yield precision, batch_size
            bar.update(1)


def _adamw(device: torch.device):
    fused = device.type == "cuda"

    def make(params):
        return (
            torch.optim.AdamW(params, lr=1e-4, fused=fused)
            if fused
            else torch.optim.AdamW(params, lr=1e-4)
        )

    return make


# ------------------------------------------------------------------------- memory vs batch size
@dataclass(frozen=True)
class MemoryPoint:
    """Bytes of one training step at one batch size (from ``course_utils.memory``)."""

    precision: str
    batch_size: int
    seq_len: int
    num_parameters: int
    model_state: int  # weights + gradients + AdamW state
    weight_copies: int  # autocast's 16-bit weight copies
    activations: int  # tensors saved for backward

    @property
    def total(self) -> int:
        return self.model_state + self.weight_copies + self.activations


def memory_vs_batch(
    model: torch.nn.Module,
    batch_sizes: Sequence[int],
    seq_len: int,
    precisions: Sequence[str] = ("fp32", "bf16"),
    *,
    device: torch.device | str | None = None,
) -> list[MemoryPoint]:
    """Memory anatomy of a training step for each precision and batch size (random tokens):
    one real AdamW step per precision at the smallest size (``course_utils.memory.measure_memory``)
    gives the model state and the weight copies, which do not depend on the batch; a forward
    pass per batch size gives the activations (``course_utils.memory.sweep_batch_sizes``, the
    sweep notebook 04 extrapolates). Measured from real tensors, so the same on any machine for
    the same torch version and device type. At least two batch sizes."""
    from course_utils.memory import measure_memory, sweep_batch_sizes

    sizes = sorted(set(batch_sizes))
    if len(sizes) < 2 or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in sizes):
        raise ValueError(f"batch_sizes must be at least two positive ints, got {batch_sizes!r}")
    vocab = model.config.vocab_size
    batches = {b: random_batch(vocab, b, seq_len, "cpu") for b in sizes}
    anatomy = {p: measure_memory(model, batches[sizes[0]], p, device=device) for p in precisions}
    sweep = sweep_batch_sizes(model, batches, anatomy, device=device)
    return [
        MemoryPoint(p, b, seq_len, part.num_parameters, part.model_state, part.weight_copies,
                    sweep.activations[p][i])
        for p, part in anatomy.items()
        for i, b in enumerate(sizes)
    ]  # fmt: skip


def crossover_batch(points: Sequence[MemoryPoint], amp: str = "bf16") -> int | None:
    """The smallest *measured* batch size at which ``amp`` needs fewer bytes than fp32 (None if
    never). Unlike ``course_utils.memory.BatchSweep.crossover``, which searches every integer
    batch size on the straight line through the measurements (notebook 04), this reads only the
    points measured (notebook 07 states what it measured, not an extrapolation)."""
    by_key = {(p.precision, p.batch_size): p for p in points}
    for batch_size in sorted({p.batch_size for p in points}):
        base, mixed = by_key.get(("fp32", batch_size)), by_key.get((amp, batch_size))
        if base and mixed and mixed.total < base.total:
            return batch_size
    return None


def summarize(results: Sequence[StepResult]) -> list[dict[str, Any]]:
    """``StepResult`` rows as plain dicts with readable units (ms, MiB, %)."""
    rows = []
    for r in results:
        rows.append(
            {
                "model": r.model,
                "precision": r.precision,
                "batch": r.batch_size,
                "step ms": None if r.step_s is None else round(r.step_s * 1e3, 2),
                "tokens/s": None if r.tokens_per_s is None else round(r.tokens_per_s),
                "TFLOP/s": None if r.tflops is None else round(r.tflops, 4),
                "MFU": None if r.mfu is None else round(r.mfu, 4),
                "peak MiB": None
                if r.peak_mem_bytes is None
                else round(r.peak_mem_bytes / 2**20, 1),
                "skipped": r.skipped or "",
            }
        )
    return rows


def speedups(
    results: Sequence[StepResult], over: str = "fp32"
) -> dict[tuple[str, int, str], float]:
    """(model, batch, precision) -> step-time speedup over ``over`` for every measured pair."""
    base = {(r.model, r.batch_size): r.step_s for r in results if r.precision == over and r.step_s}
    out = {}
    for r in results:
        ref = base.get((r.model, r.batch_size))
        if r.precision != over and r.step_s and ref:
            out[(r.model, r.batch_size, r.precision)] = ref / r.step_s
    return out


def geometric_mean(values: Sequence[float]) -> float:
    """Geometric mean (for averaging speedups)."""
    if not values:
        raise ValueError("geometric_mean of an empty sequence")
    return math.exp(sum(math.log(v) for v in values) / len(values))


# ------------------------------------------------------------------------ the tutorial's claims
CLAIMED_SPEEDUP = (1.5, 2.0)  # "speeds up training 1.5-2x"
CLAIMED_MEMORY_SAVING = 0.5  # "cuts GPU memory by 50%"
# A relative margin around the claimed speedups (1.35x still "holds", 2.2x is still "holds"),
# and around "no speedup" (0.91-1.1x is no gain): a few steps' medians move by a few percent
# between runs, so a verdict must not flip on a figure at the edge.
SPEED_TOLERANCE = 0.10
# Percentage points around the claimed 50% saving (45-55% "holds") and around 0 (within 5 points
# of fp32 is no saving).
MEMORY_TOLERANCE = 0.05

VERDICTS = ("exceeds", "holds", "falls short", "does not hold")


def speed_verdict(speedup: float) -> str:
    """The "1.5-2x faster" claim against one measured speedup (fp32 time / 16-bit time):

    - "exceeds": above 2x by more than ``SPEED_TOLERANCE`` (over 2.2x);
    - "holds": 1.5x to 2x, with the tolerance (1.35x to 2.2x);
    - "falls short": faster than fp32, but below 1.35x (over 1.1x);
    - "does not hold": no gain (1.1x or less) or slower.
    """
    if isinstance(speedup, bool) or not isinstance(speedup, (int, float)):
        raise TypeError(f"speedup must be a number, got {type(speedup).__name__}")
    if not math.isfinite(speedup) or speedup <= 0:
        raise ValueError(f"speedup must be a positive finite ratio, got {speedup!r}")
    low, high = CLAIMED_SPEEDUP
    if speedup > high * (1 + SPEED_TOLERANCE):
        return "exceeds"
    if speedup >= low * (1 - SPEED_TOLERANCE):
        return "holds"
    if speedup > 1 + SPEED_TOLERANCE:
        return "falls short"
    return "does not hold"


def memory_verdict(change: float) -> str:
    """The "cuts memory by 50%" claim against one measured change (16-bit bytes / fp32 bytes
    - 1, so -0.5 is the claim):

    - "exceeds": saves more than 55% (50% + ``MEMORY_TOLERANCE``);
    - "holds": saves 45% to 55%;
    - "falls short": saves something, 5% to 45%;
    - "does not hold": saves less than 5%, or costs memory.
    """
    if isinstance(change, bool) or not isinstance(change, (int, float)):
        raise TypeError(f"memory change must be a number, got {type(change).__name__}")
    if not math.isfinite(change) or change <= -1:
        raise ValueError(f"memory change must be a finite fraction above -1, got {change!r}")
    saving = -change
    if saving > CLAIMED_MEMORY_SAVING + MEMORY_TOLERANCE:
        return "exceeds"
    if saving >= CLAIMED_MEMORY_SAVING - MEMORY_TOLERANCE:
        return "holds"
    if saving >= MEMORY_TOLERANCE:
        return "falls short"
    return "does not hold"


def _summary(verdicts: Sequence[str]) -> str:
    """The common verdict when every point agrees, else how many points got each one."""
    if len(set(verdicts)) == 1:
        return verdicts[0]
    counts = {v: verdicts.count(v) for v in VERDICTS if v in verdicts}
    return "mixed: " + ", ".join(f"{v} at {n} of {len(verdicts)}" for v, n in counts.items())


def claim_verdicts(
    step_results: Sequence[StepResult] = (),
    memory_points: Sequence[MemoryPoint] = (),
    amp: str = "bf16",
) -> list[str]:
    """One line per claim of the original tutorial, tested against measurements: the step-time
    speedup of ``amp`` over fp32 (``speed_verdict`` per point), and its memory change (CUDA
    peaks when the step results have them, else the measured anatomy of ``memory_points``;
    ``memory_verdict`` per point). Steps timed on a busy machine give no speed verdict: the line
    says so instead."""
    lines = []
    busy = next((r.note for r in step_results if r.note), "")
    ups = {k: v for k, v in speedups(step_results).items() if k[2] == amp}
    if ups and busy:
        lines.append(f"speed ({amp} vs fp32 step time): no verdict drawn, {busy}")
    elif ups:
        verdicts = [speed_verdict(s) for s in ups.values()]
        shown = ", ".join(
            f"{m} batch {b}: {s:.2f}x ({v})"
            for ((m, b, _), s), v in zip(sorted(ups.items()), verdicts, strict=True)
        )
        lines.append(
            f"speed ({amp} vs fp32 step time): {shown} -> the 1.5-2x claim: {_summary(verdicts)}"
        )
    savings = _memory_savings(step_results, memory_points, amp)
    if savings:
        verdicts = [memory_verdict(s) for _, s in savings]
        shown = ", ".join(
            f"{label}: {s:+.0%} ({v})" for (label, s), v in zip(savings, verdicts, strict=True)
        )
        lines.append(f"memory ({amp} vs fp32): {shown} -> the -50% claim: {_summary(verdicts)}")
    return lines


def _memory_savings(step_results, memory_points, amp) -> list[tuple[str, float]]:
    """[(label, amp bytes / fp32 bytes - 1)]: CUDA peaks if measured, else the anatomy."""
    peaks = {(r.model, r.batch_size, r.precision): r.peak_mem_bytes for r in step_results}
    rows = [
        (f"{m} batch {b}", peaks[m, b, amp] / peaks[m, b, "fp32"] - 1)
        for (m, b, p) in sorted(peaks)
        if p == amp and peaks[m, b, p] and peaks.get((m, b, "fp32"))
    ]
    if rows:
        return rows
    totals = {(p.batch_size, p.precision): p.total for p in memory_points}
    return [
        (f"batch {b}", totals[b, amp] / totals[b, "fp32"] - 1)
        for (b, p) in sorted(totals)
        if p == amp and (b, "fp32") in totals
    ]
