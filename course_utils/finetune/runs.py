"""Run the same LoRA fine-tuning in several precisions and compare them (notebook 05).

Taught in notebook 05, sections "3. The same fine-tuning in fp32, bf16 and fp16, side by side"
and "5. Loading in 16 bits is not mixed precision".

``run_finetune(precision)`` loads a fresh model, trains it with ``SFTTrainer`` + LoRA under a
``PrecisionAudit``, and returns a ``RunResult``: losses per step, held-out loss every few steps
(always computed in fp32, so runs are measured alike), time per step, memory, weight dtypes and
the audit. Every run is named by what the audit saw ran (``label``), never by the flag.

``run_finetune_loop(precision)`` is the same fine-tuning (same model, LoRA, batches in the same
order, the Trainer's own AdamW settings and clipping) driven by the course's loop
(``course_utils.train.train``) instead of ``Trainer.train``. It exists for fp16 on a CPU: there
the Trainer's ``fp16=True`` runs fp32 (accelerate turns fp16 off on a CPU), while the loop runs
real fp16 autocast with a ``torch.amp.GradScaler``, and records the loss scale of every step and
the steps the scaler skipped.

``compare(runs)`` tabulates several results at a step they all reached; ``plot_runs(runs)``
overlays them (with the loss scale when a run had one).

Memory: on a GPU, ``cuda_peak_bytes`` is ``torch.cuda.max_memory_allocated()`` over training.
Everywhere (CPU included) ``saved_bytes`` is what autograd kept for backward during one
training forward pass (activations, plus the 16-bit weight copies autocast makes), measured
with ``torch.autograd.graph.saved_tensors_hooks``; ``weight_bytes`` is the model's parameters.

>>> runs = [run_finetune(p, steps=30) for p in ("fp32", "bf16", "fp16")]     # doctest: +SKIP
>>> print(compare(runs)); plot_runs(runs)                                    # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Sequence

import torch
from transformers import TrainerCallback

from course_utils.env import pick_device, seed_everything
from course_utils.finetune import sft as finetune
from course_utils.finetune.audit import PrecisionAudit
from course_utils.precision import FORMATS, dtype_name

EXPERIMENT = "05_bf16_vs_fp16_finetuning"


@dataclasses.dataclass
class RunResult:
    """One fine-tuning run, JSON-friendly (``dataclasses.asdict``)."""

    label: str
    precision: str  # what was requested: "fp32", "bf16", "fp16"
    base_dtype: str  # dtype the base model was loaded in: "float32", "bfloat16"
    model: str
    device: str
    steps: int
    batch_size: int
    max_length: int
    learning_rate: float
    train_loss: list[tuple[int, float]]  # (step, loss) logged by the Trainer
    eval_loss: list[tuple[int, float]]  # (step, held-out loss in fp32), step 0 = before training
    step_times_s: list[float]
    saved_bytes: int  # most bytes saved for backward in one training forward pass
    weight_bytes: int
    trainable_params: int
    cuda_peak_bytes: int | None
    weight_dtypes: dict[str, dict[str, int]]  # "trainable"/"frozen" -> dtype -> count
    audit: dict  # AuditReport fields + "ran", "verdict", "problems"
    samples: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (prompt, answer)
    engine: str = "Trainer"  # what drove the steps: "Trainer" or "course loop"
    loss_scales: list[tuple[int, float]] = dataclasses.field(default_factory=list)  # (step, scale)
    skipped_steps: list[int] = dataclasses.field(default_factory=list)  # steps the scaler skipped

    @property
    def final_eval_loss(self) -> float:
        return self.eval_loss[-1][1] if self.eval_loss else math.nan

    @property
    def first_eval_loss(self) -> float:
        return self.eval_loss[0][1] if self.eval_loss else math.nan

    @property
    def time_per_step_s(self) -> float:
        """Median wall time of a training step (the first step, with its warm-up, is dropped)."""
        times = sorted(self.step_times_s[1:] or self.step_times_s)
        if not times:
            return math.nan
        mid = len(times) // 2
        return times[mid] if len(times) % 2 else (times[mid - 1] + times[mid]) / 2

    @classmethod
    def from_dict(cls, data: dict) -> RunResult:
        """The inverse of ``dataclasses.asdict`` (unknown keys are an error)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown RunResult fields: {', '.join(sorted(unknown))}")
        data = dict(data)
        for key in ("train_loss", "eval_loss", "samples", "loss_scales"):
            data[key] = [tuple(pair) for pair in data.get(key, [])]
        return cls(**data)


class RunRecorder(TrainerCallback):
    """Trainer callback: time per step, held-out loss every ``eval_every`` steps (fp32), bytes
    saved for backward per training forward pass, CUDA peak memory."""

    def __init__(self, tokenizer, eval_dataset, *, eval_every: int, max_length: int):
        self.tokenizer, self.eval_dataset = tokenizer, eval_dataset
        self.eval_every, self.max_length = eval_every, max_length
        self.step_times: list[float] = []
        self.eval_loss: list[tuple[int, float]] = []
        self.saved_bytes = 0
        self.cuda_peak: int | None = None
        self._t0 = 0.0
        self._meter: SavedTensorMeter | None = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if torch.cuda.is_available() and args.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        self._meter = SavedTensorMeter(model)

    def on_step_begin(self, args, state, control, **kwargs):
        self._t0 = time.perf_counter()

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if args.device.type == "cuda":
            torch.cuda.synchronize()
        self.step_times.append(time.perf_counter() - self._t0)
        step = state.global_step
        if self.eval_every and (step % self.eval_every == 0 or step == state.max_steps):
            self.eval_loss.append((step, self._eval(model)))

    def on_train_end(self, args, state, control, **kwargs):
        if self._meter is not None:
            self.saved_bytes = self._meter.close()
        if args.device.type == "cuda":
            self.cuda_peak = int(torch.cuda.max_memory_allocated())

    def _eval(self, model) -> float:
        return finetune.text_loss(
            model, self.tokenizer, self.eval_dataset, max_length=self.max_length
        )


class SavedTensorMeter:
    """Bytes autograd saves for backward during each training forward pass of ``model``
    (distinct storages; the model's own parameters are not counted). ``close()`` removes the
    hooks and returns the largest per-pass total."""

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.max_bytes = 0
        self._params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self._seen: dict[int, int] = {}
        self._ctx = None
        self._handles = [
            model.register_forward_pre_hook(self._start),
            model.register_forward_hook(self._end),
        ]

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in self._params and ptr not in self._seen:
            self._seen[ptr] = storage.nbytes()
        return tensor

    def _start(self, module, inputs) -> None:
        if torch.is_grad_enabled() and module.training and self._ctx is None:
            self._seen = {}
            self._ctx = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
            self._ctx.__enter__()

    def _end(self, module, inputs, output) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(None, None, None)
            self._ctx = None
            self.max_bytes = max(self.max_bytes, sum(self._seen.values()))

    def close(self) -> int:
        if self._ctx is not None:  # a forward pass raised half-way
            self._ctx.__exit__(None, None, None)
            self._ctx = None
        for handle in self._handles:
            handle.remove()
        self._handles = []
        return self.max_bytes


def run_finetune(
    precision: str = "fp32",
    *,
    model_name: str = "tiny-gpt2",
    base_dtype: torch.dtype = torch.float32,
    steps: int = 30,
    batch_size: int = finetune.DEFAULT_BATCH_SIZE,
    learning_rate: float = finetune.DEFAULT_LEARNING_RATE,
    max_length: int = finetune.DEFAULT_MAX_LENGTH,
    eval_every: int = 10,
    seed: int = 0,
    device: str | torch.device | None = None,
    train_dataset=None,
    eval_dataset=None,
    prompts: Sequence[str] = (),
    label: str | None = None,
) -> RunResult:
    """Fine-tune a fresh ``model_name`` with LoRA for ``steps`` steps in ``precision`` and return
    what happened. Same seed, data and LoRA for every call, so runs differ only in precision.

    ``base_dtype=torch.bfloat16`` loads the base model in bf16 (LoRA adapters stay fp32: PEFT
    upcasts them). ``prompts``: questions to answer (greedily) after training, in ``samples``.
    ``label`` (default: what the audit saw ran, see ``audit_label``) names the run in tables.
    """
    from course_utils.models import load_model_and_tokenizer

    train_dataset = train_dataset if train_dataset is not None else finetune.load_finetune_dataset()
    eval_dataset = (
        eval_dataset if eval_dataset is not None else finetune.load_finetune_dataset("heldout")
    )
    seed_everything(seed)
    model, tokenizer = load_model_and_tokenizer(model_name, dtype=base_dtype, device=device)
    args = finetune.sft_config(
        precision,
        steps=steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        max_length=max_length,
        seed=seed,
        device=pick_device(device),
    )
    audit = PrecisionAudit()
    recorder = RunRecorder(tokenizer, eval_dataset, eval_every=eval_every, max_length=max_length)
    trainer = finetune.sft_trainer(
        model,
        tokenizer,
        args,
        train_dataset,
        peft_config=finetune.lora_config(),
        callbacks=[audit, recorder],
    )
    before = finetune.text_loss(trainer.model, tokenizer, eval_dataset, max_length=max_length)
    trainer.train()
    report = audit.report()
    peft_model = trainer.model
    samples = [(p, finetune.generate_answer(peft_model, tokenizer, p)) for p in prompts]
    return RunResult(
        label=label or audit_label(report, precision),
        precision=precision,
        base_dtype=dtype_name(base_dtype, long=True),
        model=model_name,
        device=str(args.device),
        steps=steps,
        batch_size=batch_size,
        max_length=max_length,
        learning_rate=learning_rate,
        train_loss=[(h["step"], h["loss"]) for h in trainer.state.log_history if "loss" in h],
        eval_loss=[(0, before), *recorder.eval_loss],
        step_times_s=recorder.step_times,
        saved_bytes=recorder.saved_bytes,
        weight_bytes=sum(p.numel() * p.element_size() for p in peft_model.parameters()),
        trainable_params=sum(p.numel() for p in peft_model.parameters() if p.requires_grad),
        cuda_peak_bytes=recorder.cuda_peak,
        weight_dtypes=report.weight_dtypes,
        audit=dict(
            dataclasses.asdict(report),
            ran=report.ran,
            verdict=report.verdict,
            problems=report.problems,
        ),
        samples=samples,
    )


def audit_label(report, requested: str) -> str:
    """A run's name in tables and plots: what the audit saw ran, plus what was asked for when the
    audit found a problem (``"fp32 (asked: fp16)"``), never the flag alone."""
    return report.ran if report.ok else f"{report.ran} (asked: {requested})"


class _EvalEvery:
    """A ``course_utils.train`` callback: held-out loss (fp32) every ``every`` steps and at the
    last one."""

    def __init__(self, tokenizer, dataset, *, every: int, steps: int, max_length: int):
        self.tokenizer, self.dataset = tokenizer, dataset
        self.every, self.steps, self.max_length = every, steps, max_length
        self.eval_loss: list[tuple[int, float]] = []

    def on_step_end(self, state) -> None:
        if self.every and (state.step % self.every == 0 or state.step == self.steps):
            loss = finetune.text_loss(
                state.model, self.tokenizer, self.dataset, max_length=self.max_length
            )
            self.eval_loss.append((state.step, loss))


def run_finetune_loop(
    precision: str = "fp16",
    *,
    model_name: str = "tiny-gpt2",
    steps: int = 30,
    batch_size: int = finetune.DEFAULT_BATCH_SIZE,
    learning_rate: float = finetune.DEFAULT_LEARNING_RATE,
    max_length: int = finetune.DEFAULT_MAX_LENGTH,
    eval_every: int = 10,
    seed: int = 0,
    device: str | torch.device | None = None,
    init_scale: float = 2.0**16,
    train_dataset=None,
    eval_dataset=None,
    progress: bool = False,
    label: str | None = None,
    note: str | None = None,
) -> RunResult:
    """The LoRA fine-tuning of ``run_finetune``, with the steps driven by the course's loop.

    Everything but the loop comes from the Trainer: ``SFTTrainer`` builds the PEFT model and the
    batches (its own dataloader, so the same examples in the same order), and the optimizer is
    the Trainer's (``Trainer.get_optimizer_cls_and_kwargs``: AdamW, same betas, eps and learning
    rate) with its gradient clipping (``max_grad_norm``). The loop then runs ``precision``:
    "fp32", "bf16" (autocast) or "fp16" (autocast + ``torch.amp.GradScaler(init_scale=...)``),
    which is what the Trainer does with ``fp16=True`` on a GPU and does not do on a CPU.

    The run is named by what its audit saw (``audit_label``); ``note`` is appended to that name
    (``note="from 2^24"`` -> ``"fp16 autocast + GradScaler, from 2^24"``), so a variant keeps the
    audit's word for what ran. ``label`` replaces the name altogether (avoid it in tables).

    Taught in notebook 05, section 3 ("fp16 for real on a CPU"). On a CPU, fp16 matmuls have no
    fast kernels: keep ``steps`` and the model small.
    """
    from transformers import Trainer

    from course_utils.models import load_model_and_tokenizer
    from course_utils.train import train

    if precision not in FORMATS:
        raise ValueError(f"unknown precision {precision!r}: choose one of {', '.join(FORMATS)}")
    if isinstance(init_scale, bool) or not isinstance(init_scale, int | float):
        raise TypeError(f"init_scale must be a number, got {init_scale!r}")
    if not math.isfinite(init_scale) or init_scale <= 0:
        raise ValueError(f"init_scale must be finite and > 0, got {init_scale}")
    if note is not None and (not isinstance(note, str) or not note.strip()):
        raise ValueError(f"note must be a non-empty string or None, got {note!r}")
    device = pick_device(device)
    train_dataset = train_dataset if train_dataset is not None else finetune.load_finetune_dataset()
    eval_dataset = (
        eval_dataset if eval_dataset is not None else finetune.load_finetune_dataset("heldout")
    )
    seed_everything(seed)  # the same sequence as run_finetune: same LoRA initialisation
    model, tokenizer = load_model_and_tokenizer(model_name, device=device)
    args = finetune.sft_config(
        "fp32",  # the Trainer only builds things here; the loop decides the precision
        steps=steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        max_length=max_length,
        seed=seed,
        device=device,
    )
    trainer = finetune.sft_trainer(
        model, tokenizer, args, train_dataset, peft_config=finetune.lora_config()
    )
    peft_model = trainer.model
    batches = list(itertools.islice(trainer.get_train_dataloader(), steps))
    if len(batches) < steps:
        raise ValueError(
            f"train_dataset gives {len(batches)} batches of {batch_size}, fewer than steps={steps}"
        )
    optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(args, peft_model)
    scaler = (
        torch.amp.GradScaler(device.type, init_scale=float(init_scale))
        if precision == "fp16"
        else None
    )
    evaluator = _EvalEvery(
        tokenizer, eval_dataset, every=eval_every, steps=steps, max_length=max_length
    )
    before = finetune.text_loss(peft_model, tokenizer, eval_dataset, max_length=max_length)
    meter = SavedTensorMeter(peft_model)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        with PrecisionAudit(peft_model, scaler=scaler, expected=precision) as audit:
            history = train(
                peft_model,
                batches,
                steps=steps,
                precision=precision,
                make_optimizer=lambda params: optimizer_cls(params, **optimizer_kwargs),
                max_grad_norm=args.max_grad_norm,
                scaler=scaler,
                device=device,
                seed=None,  # keep the Trainer's state: nothing random happens in these steps
                callbacks=[evaluator],
                progress=progress,
                allow_slow_fp16=True,
            )
    finally:
        saved_bytes = meter.close()
    report = audit.report()
    name = audit_label(report, precision) + (f", {note}" if note else "")
    return RunResult(
        label=label or name,
        precision=precision,
        base_dtype="float32",
        model=model_name,
        device=str(device),
        steps=steps,
        batch_size=batch_size,
        max_length=max_length,
        learning_rate=learning_rate,
        train_loss=[(r.step, r.loss) for r in history],
        eval_loss=[(0, before), *evaluator.eval_loss],
        step_times_s=history.column("step_time_s"),
        saved_bytes=saved_bytes,
        weight_bytes=sum(p.numel() * p.element_size() for p in peft_model.parameters()),
        trainable_params=sum(p.numel() for p in peft_model.parameters() if p.requires_grad),
        cuda_peak_bytes=int(torch.cuda.max_memory_allocated(device))
        if device.type == "cuda"
        else None,
        weight_dtypes=report.weight_dtypes,
        audit=dict(
            dataclasses.asdict(report),
            ran=report.ran,
            verdict=report.verdict,
            problems=report.problems,
        ),
        engine="course loop",
        loss_scales=[(r.step, r.loss_scale) for r in history] if scaler is not None else [],
        skipped_steps=skipped_by_scaler(history.column("loss_scale"), scaler.get_scale())
        if scaler is not None
        else [],
    )


def skipped_by_scaler(scales: Sequence[float], final_scale: float) -> list[int]:
    """The steps (1, 2, ...) a dynamic loss scaler skipped, from the scale each step used and the
    scale after the last one: ``GradScaler`` halves its scale exactly when it finds inf/NaN
    gradients and skips the update. (Watching for ``optimizer.step()`` calls is not enough: with
    a fused optimizer, such as the Trainer's default ``adamw_torch_fused``, the scaler calls
    ``step(found_inf=...)`` and the optimizer itself leaves the weights alone.)"""
    if not scales:
        return []
    after = [*scales[1:], final_scale]
    return [
        step
        for step, (used, next_) in enumerate(zip(scales, after, strict=True), 1)
        if next_ < used
    ]


# ---------------------------------------------------------------------------------- comparing


def common_eval_step(runs: Sequence[RunResult]) -> int:
    """The last step at which every run measured its held-out loss (so a table compares like with
    like, even when runs trained for different numbers of steps)."""
    if not runs:
        raise ValueError("no runs to compare")
    shared = set.intersection(*({step for step, _ in run.eval_loss} for run in runs))
    if not shared:
        raise ValueError("these runs share no step at which they all measured the held-out loss")
    return max(shared)


def compare(runs: Sequence[RunResult], at_step: int | None = None) -> str:
    """A fixed-width table: what ran (the audit), what was asked, which loop, steps trained, time
    per step, memory, and the held-out loss before training -> at ``at_step`` (default: the last
    step every run measured, ``common_eval_step``), the same step for every row."""
    step = common_eval_step(runs) if at_step is None else at_step
    loss_header = f"held-out 0 -> {step}"
    header = (
        f"{'run (what the audit saw)':<34} {'asked':<5} {'loop':<11} {'steps':>5} {'ms/step':>8} "
        f"{'saved MiB':>9} {'weights MiB':>11} {'CUDA peak MiB':>13} {loss_header:>17}"
    )
    lines = [header, "-" * len(header)]
    for run in runs:
        losses = dict(run.eval_loss)
        if step not in losses:
            raise ValueError(f"run {run.label!r} has no held-out loss at step {step}")
        peak = f"{run.cuda_peak_bytes / 2**20:.1f}" if run.cuda_peak_bytes else "n/a (CPU)"
        lines.append(
            f"{run.label:<34} {run.precision:<5} {run.engine:<11} {run.steps:>5} "
            f"{1e3 * run.time_per_step_s:>8.1f} {run.saved_bytes / 2**20:>9.2f} "
            f"{run.weight_bytes / 2**20:>11.2f} {peak:>13} "
            f"{losses[0]:>7.3f} -> {losses[step]:<6.3f}"
        )
    return "\n".join(lines)


def plot_runs(runs: Sequence[RunResult], title: str | None = None, show_scale: bool | None = None):
    """Training loss per step (thin) and held-out loss (markers) of every run, overlaid, each
    named by what its audit saw. With ``show_scale`` (default: when a run had a loss scaler) a
    second panel shows each scaled run's loss scale per step, its skipped steps marked."""
    import matplotlib.pyplot as plt

    scaled = [run for run in runs if run.loss_scales]
    show_scale = bool(scaled) if show_scale is None else show_scale
    if show_scale:
        fig, (ax, scale_ax) = plt.subplots(
            2, 1, figsize=(11, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]}
        )
    else:
        fig, ax = plt.subplots(figsize=(11, 4.5))
    # Runs can coincide (fp16=True on a CPU is the fp32 run): widths, dashes and markers keep
    # each one visible.
    styles = [("-", "o", 3.0, 10), ("--", "s", 1.8, 7), (":", "^", 1.5, 5), ("-.", "D", 1.2, 4)]
    for i, run in enumerate(runs):
        color = f"C{i}"
        dash, marker, width, size = styles[i % len(styles)]
        steps, losses = zip(*run.train_loss, strict=True) if run.train_loss else ((), ())
        ax.plot(
            steps,
            losses,
            dash,
            color=color,
            alpha=0.5,
            linewidth=width / 2,
            label=f"{run.label}: train",
        )
        e_steps, e_losses = zip(*run.eval_loss, strict=True)
        ax.plot(
            e_steps,
            e_losses,
            dash,
            marker=marker,
            markersize=size,
            linewidth=width,
            color=color,
            label=f"{run.label}: held-out (fp32 eval)",
        )
        if show_scale and run.loss_scales:
            s_steps, scales = zip(*run.loss_scales, strict=True)
            scale_ax.step(s_steps, scales, where="post", color=color, label=run.label)
            skipped = [(st, sc) for st, sc in run.loss_scales if st in set(run.skipped_steps)]
            if skipped:
                scale_ax.plot(*zip(*skipped, strict=True), "x", color="black", label="skipped step")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(title or "Same LoRA fine-tuning, different precisions")
    ax.legend(
        fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0)
    )  # beside, not over, the lines
    if show_scale:
        scale_ax.set_yscale("log", base=2)
        scale_ax.set_ylabel("loss scale")
        scale_ax.set_xlabel("optimizer step")
        if scaled:
            scale_ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.set_xlabel("optimizer step")
    fig.tight_layout()
    return fig


def memory_labels(runs: Sequence[RunResult], width: int = 18) -> list[str]:
    """Axis labels for ``plot_memory``: each run's audit label, wrapped to ``width`` characters,
    with the loop that drove it (``[course loop]``) when the runs do not all share one loop: the
    bytes saved for backward compare only within one loop."""
    import textwrap

    mixed = len({run.engine for run in runs}) > 1
    return [textwrap.fill(run.label + (f" [{run.engine}]" if mixed else ""), width) for run in runs]


def plot_memory(runs: list[RunResult], title: str | None = None):
    """Bars per run (named by ``memory_labels``): the weights' bytes, the bytes saved for backward
    in one training step, and the CUDA peak when measured (MiB)."""
    import matplotlib.pyplot as plt

    parts = [("weights", [r.weight_bytes for r in runs])]
    parts.append(("saved for backward (one step)", [r.saved_bytes for r in runs]))
    if all(r.cuda_peak_bytes for r in runs):
        parts.append(("CUDA peak", [r.cuda_peak_bytes for r in runs]))
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(parts)
    for i, (name, values) in enumerate(parts):
        xs = [j + i * width for j in range(len(runs))]
        bars = ax.bar(xs, [v / 2**20 for v in values], width=width, label=name, color=f"C{i}")
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_xticks([j + width * (len(parts) - 1) / 2 for j in range(len(runs))], memory_labels(runs))
    ax.set_ylabel("MiB")
    ax.set_title(title or "Memory of the same LoRA fine-tuning")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
