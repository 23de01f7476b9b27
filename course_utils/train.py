"""``train()``: the course's one training loop, to read top to bottom.

Taught in notebook 02, section "3. Stalled updates: when `w + lr * g == w`", and notebook 03,
sections "1. The problem: fp16 flushes small gradients to zero", "4. `unscale_` before clipping"
and "5. Gradient accumulation with a scaler"; notebook 06 trains with it throughout.

Modelled on nanoGPT's ``train.py``: the precision is one argument; a loss scaler is on only for
fp16; gradients are unscaled before anything reads them (clipping, logging); gradient
accumulation divides the loss by the number of micro-batches.

    history = train(model, batches, steps=50, precision="bf16", lr=1e-3)
    history.plot()

``model`` is a Hugging Face causal LM (``model(**batch).loss``) or any module whose
``model(**batch)`` returns a scalar loss tensor; ``batches`` yields dicts such as
``{"input_ids": ..., "attention_mask": ..., "labels": ...}``.
"""

from __future__ import annotations

import itertools
import math
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
from tqdm.auto import tqdm

from course_utils.env import pick_device, seed_everything
from course_utils.precision import (
    PRECISIONS,
    active_emulation,
    check_precision,
    precision_context,
    uses_loss_scaling,
    weight_dtype,
)
from course_utils.scaling import StaticLossScaler

SLOW_FP16_MESSAGE = (
    "precision='fp16' on a CPU: CPUs without fp16 arithmetic units run fp16 matmuls far slower "
    "than fp32 (notebook 07 measures how much on yours). Use precision='fp16-emulated' for fp16 "
    "numerics (rounding, underflow, overflow) at fp32 speed, or pass allow_slow_fp16=True to run "
    "real fp16 on this CPU anyway."
)


class NoLabelsWarning(UserWarning):
    """A step's loss is NaN and its batch has no label to learn from (all -100)."""


# ----------------------------------------------------------------------------------------------
# What train() returns: one record per optimizer step.


@dataclass
class StepRecord:
    """What happened at one optimizer step."""

    step: int  # 1, 2, ... steps
    loss: float  # mean loss over the step's micro-batches, in true (unscaled) units
    grad_norm: float  # total gradient norm after unscale_, before clipping
    loss_scale: float  # what the loss was multiplied by before backward (1.0: no scaling)
    skipped: bool  # True if the optimizer did not update the weights at this step
    lr: float  # the learning rate of the first parameter group
    step_time_s: float  # wall time of the whole step
    peak_mem_bytes: int | None  # torch.cuda.max_memory_allocated during the step; None on a CPU

    def __str__(self) -> str:
        return (
            f"step {self.step:>4} | loss {self.loss:.4f} | grad norm {self.grad_norm:.3g} | "
            f"scale {self.loss_scale:g} | {'skipped' if self.skipped else 'stepped'} | "
            f"time: {self.step_time_s * 1e3:.1f} ms"
        )


@dataclass
class History:
    """The records of a ``train()`` run, with helpers to tabulate and plot them."""

    precision: str
    device: str
    records: list[StepRecord] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self):
        return iter(self.records)

    def __getitem__(self, index: int) -> StepRecord:
        return self.records[index]

    def column(self, name: str) -> list:
        """One field of every record, e.g. ``history.column("loss_scale")``."""
        names = [f.name for f in fields(StepRecord)]
        if name not in names:
            raise KeyError(f"no field {name!r} in the history: choose one of {names}")
        return [getattr(record, name) for record in self.records]

    @property
    def losses(self) -> list[float]:
        return self.column("loss")

    @property
    def skipped_steps(self) -> list[int]:
        return [record.step for record in self.records if record.skipped]

    def to_frame(self):
        """The records as a pandas DataFrame indexed by step."""
        import pandas as pd

        columns = [f.name for f in fields(StepRecord)]
        frame = pd.DataFrame([asdict(record) for record in self.records], columns=columns)
        return frame.set_index("step")

    def summary(self) -> str:
        """One line: precision, steps, first and last loss, skipped steps, mean step time."""
        if not self.records:
            return f"{self.precision} | 0 steps"
        mean_ms = 1e3 * sum(self.column("step_time_s")) / len(self)
        return (
            f"{self.precision} | {len(self)} steps | loss {self.losses[0]:.4f} -> "
            f"{self.losses[-1]:.4f} | skipped: {len(self.skipped_steps)} | "
            f"time: {mean_ms:.1f} ms/step"
        )

    def plot(self, ax=None, label: str | None = None, show_scale: bool | None = None):
        """Loss per step (skipped steps marked by red lines); with ``show_scale`` (default:
        when this run scaled its loss and ``ax`` is None) the loss scale on a second axis."""
        import matplotlib.pyplot as plt

        if show_scale is None:
            show_scale = ax is None and any(scale != 1.0 for scale in self.column("loss_scale"))
        if ax is None:
            _, ax = plt.subplots()
        steps = self.column("step")
        ax.plot(steps, self.losses, label=label or self.precision)
        for step in self.skipped_steps:
            ax.axvline(step, color="tab:red", alpha=0.3, linewidth=1)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        if show_scale:
            scale_ax = ax.twinx()
            scale_ax.step(steps, self.column("loss_scale"), where="post", color="tab:gray")
            scale_ax.set_yscale("log", base=2)
            scale_ax.set_ylabel("loss scale", color="tab:gray")
        ax.legend(loc="upper right")
        return ax


# ----------------------------------------------------------------------------------------------
# Callbacks: how other modules (a NaN guard, a checkpointer) hook into the loop.


@dataclass
class TrainState:
    """What a callback sees, and the two switches it may flip."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: Any  # the loss scaler in use (ours or a torch.amp.GradScaler); None if none
    history: History
    step: int = 0
    loss: float = math.nan  # this step's loss (true units)
    grad_norm: float = math.nan  # this step's gradient norm (unscaled, before clipping)
    record: StepRecord | None = None  # this step's record, set before on_step_end
    skip_step: bool = False  # set in on_before_optimizer_step: do not update the weights now
    stop: bool = False  # set in any hook: end training after this step


class Callback:
    """Base class for callbacks: override any of these methods (all do nothing here).

    A plain function in ``callbacks=[...]`` is called as ``on_step_end(state)``.
    """

    def on_train_start(self, state: TrainState) -> None:
        """Before the first step (the model is on its device, in its training dtype)."""

    def on_before_optimizer_step(self, state: TrainState) -> None:
        """Gradients are unscaled and clipped. Set ``state.skip_step = True`` to skip the update."""

    def on_step_end(self, state: TrainState) -> None:
        """``state.record`` holds this step. Set ``state.stop = True`` to stop training."""

    def on_train_end(self, state: TrainState) -> None:
        """After the last step."""


# ----------------------------------------------------------------------------------------------
# The loop.


def train(
    model: torch.nn.Module,
    batches: Mapping | Iterable[Mapping],
    *,
    steps: int,
    precision: str = "bf16",
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    max_grad_norm: float | None = None,
    grad_accum_steps: int = 1,
    scaler: Any = "auto",
    device: str | torch.device | None = None,
    seed: int | None = 0,
    make_optimizer: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer] | None = None,
    callbacks: Iterable[Callback | Callable[[TrainState], None]] | None = (),
    log_every: int | None = None,
    progress: bool = True,
    allow_slow_fp16: bool = False,
) -> History:
    """Train ``model`` in place for ``steps`` optimizer steps; return its History.

    precision: one of ``PRECISIONS`` ("fp32", "bf16", "fp16", "bf16-pure", "fp16-emulated").
    batches: one dict (reused every step: a batch to memorise), a list of dicts (cycled), or an
        iterable of dicts (consumed; restarted when exhausted if it can be iterated again).
    steps: optimizer steps; each one uses ``grad_accum_steps`` micro-batches.
    lr, weight_decay: for the default optimizer, ``torch.optim.AdamW``; ``make_optimizer(params)``
        builds another one instead.
    max_grad_norm: clip the total gradient norm to this (after unscaling); None: no clipping.
    scaler: "auto" (``torch.amp.GradScaler`` for the fp16 modes, nothing otherwise), None (no
        loss scaling), a number (a static scale), a ``StaticLossScaler``/``DynamicLossScaler``,
        or a ``torch.amp.GradScaler``. The loop updates the object it is given.
    device: where to train (default: ``course_utils.env.pick_device()``); the model moves there.
    seed: seeds every generator first (dropout masks); None leaves them as they are.
    callbacks: ``Callback`` objects or functions ``f(state)`` called at each step's end (None:
        none).
    log_every: print a line every this many steps (None: do not print).
    progress: show a tqdm progress bar.
    allow_slow_fp16: run precision="fp16" on a CPU even though it is slow there.

    The model is moved to ``device`` and cast to the mode's weight dtype, in place: fp32 (the
    master weights autocast needs), or bf16 for "bf16-pure".

    A step whose loss is NaN while its batch has no label other than -100 (no token to learn
    from: the mean loss is 0/0) gives a ``NoLabelsWarning`` that says so.
    """
    # 0. Check everything before touching the model.
    if not isinstance(model, torch.nn.Module):
        raise TypeError(
            "model must be a torch.nn.Module (a Hugging Face model, or a module whose "
            f"model(**batch) returns a loss), got {type(model).__name__}"
        )
    if make_optimizer is not None and not callable(make_optimizer):
        raise TypeError(
            f"make_optimizer must be a function params -> optimizer, got {make_optimizer!r}"
        )
    precision = check_precision(precision)
    device = pick_device(device)
    _check_positive_int(steps, "steps")
    _check_positive_int(grad_accum_steps, "grad_accum_steps")
    if make_optimizer is None:
        _check_number(lr, "lr", low=0.0, low_inclusive=False)
        _check_number(weight_decay, "weight_decay", low=0.0, low_inclusive=True)
    if max_grad_norm is not None:
        _check_number(max_grad_norm, "max_grad_norm", low=0.0, low_inclusive=False)
    if log_every is not None:
        _check_positive_int(log_every, "log_every")
    if precision == "fp16" and device.type == "cpu" and not allow_slow_fp16:
        raise ValueError(SLOW_FP16_MESSAGE)
    if callbacks is None:
        callbacks = ()
    if isinstance(callbacks, (str, bytes)) or not isinstance(callbacks, Iterable):
        raise TypeError(
            f"callbacks must be a list of callbacks (or None), got {type(callbacks).__name__}"
        )
    callbacks = [_as_callback(callback) for callback in callbacks]
    loss_scaler = _make_loss_scaler(scaler, precision, device)
    next_batch = _batch_stream(batches, device)
    if seed is not None:
        seed_everything(seed)

    # 1. Model and optimizer. Under autocast the weights stay fp32 ("master weights"): the 16-bit
    #    copies live only inside the forward pass. Only "bf16-pure" stores the weights, and hence
    #    the gradients and AdamW's moments, in bf16.
    model.to(device=device, dtype=weight_dtype(precision))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(
            f"the model has no trainable parameter (requires_grad is False for all "
            f"{sum(1 for _ in model.parameters())} of them): unfreeze some (e.g. "
            "model.requires_grad_(True), or add LoRA adapters) before training"
        )
    if make_optimizer is None:
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    else:
        optimizer = make_optimizer(params)
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                "make_optimizer(params) must return a torch.optim.Optimizer built on params, "
                f"got {type(optimizer).__name__}"
                + (" (does the function forget to return it?)" if optimizer is None else "")
            )

    history = History(precision=precision, device=str(device))
    state = TrainState(model, optimizer, scaler=_shown_to_callbacks(loss_scaler), history=history)
    _call(callbacks, "on_train_start", state)
    bar = tqdm(
        range(1, steps + 1),
        desc=f"train {_mode_that_runs(precision)}",
        disable=not progress,
    )
    warned_no_labels = False

    for step in bar:
        started = time.perf_counter()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        optimizer.zero_grad(set_to_none=True)

        # 2. Forward and backward over the micro-batches; their gradients add up in .grad.
        loss_sum = 0.0
        for _ in range(grad_accum_steps):
            batch = next_batch()
            with precision_context(precision, device.type):  # autocast, or nothing, or emulation
                loss = _loss_of(model(**batch))
            loss = loss / grad_accum_steps  # the summed gradients are those of the mean loss
            loss_value = loss.item()
            loss_sum += loss_value
            if math.isnan(loss_value) and not warned_no_labels and _no_labels(batch):
                warnings.warn(NO_LABELS_MESSAGE.format(step=step), NoLabelsWarning, stacklevel=2)
                warned_no_labels = True  # once per run
            loss_scaler.scale_loss(loss).backward()  # scaled gradients (fp16 modes)

        # 3. Gradients back to true units BEFORE anything reads them. Clipping scaled gradients
        #    would see scale x the true norm: it would clip at almost every step, and down to
        #    max_grad_norm / scale in true units.
        loss_scale = loss_scaler.scale
        loss_scaler.unscale_(optimizer)
        if max_grad_norm is not None:
            grad_norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)  # norm before clip
        else:
            grad_norm = torch.nn.utils.get_total_norm(
                [p.grad for p in params if p.grad is not None]
            )

        # 4. The update. The scaler skips it if a gradient overflowed; a callback may skip it too.
        state.step, state.loss, state.grad_norm = step, loss_sum, grad_norm.item()
        state.skip_step = False
        _call(callbacks, "on_before_optimizer_step", state)
        stepped = False if state.skip_step else loss_scaler.step(optimizer)
        loss_scaler.update()  # a dynamic scale backs off after an overflow, grows after calm

        # 5. Record the step.
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        record = StepRecord(
            step=step,
            loss=loss_sum,
            grad_norm=state.grad_norm,
            loss_scale=loss_scale,
            skipped=not stepped,
            lr=optimizer.param_groups[0]["lr"],
            step_time_s=time.perf_counter() - started,
            peak_mem_bytes=torch.cuda.max_memory_allocated(device)
            if device.type == "cuda"
            else None,
        )
        history.records.append(record)
        state.record = record
        _call(callbacks, "on_step_end", state)
        bar.set_postfix(loss=f"{record.loss:.4f}", scale=f"{record.loss_scale:g}", refresh=False)
        if log_every is not None and (step % log_every == 0 or step == steps):
            bar.write(str(record))
        if state.stop:
            break

    bar.close()
    _call(callbacks, "on_train_end", state)
    return history


# ----------------------------------------------------------------------------------------------
# Loss scalers as the loop sees them: scale, scale_loss, unscale_, step -> stepped?, update.


class _NoScaling:
    """fp32 and bf16 need no loss scaling: a scale of 1 and no skipped steps (a non-finite
    gradient reaches the weights, as it would in a plain PyTorch loop)."""

    scale = 1.0

    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        return loss

    def unscale_(self, optimizer: torch.optim.Optimizer) -> None:
        pass

    def step(self, optimizer: torch.optim.Optimizer) -> bool:
        optimizer.step()
        return True

    def update(self) -> None:
        pass


class _TorchScaler:
    """``torch.amp.GradScaler`` under the method names of ``course_utils.scaling``."""

    def __init__(self, grad_scaler: torch.amp.GradScaler) -> None:
        self.grad_scaler = grad_scaler

    @property
    def scale(self) -> float:
        return self.grad_scaler.get_scale()

    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        return self.grad_scaler.scale(loss)

    def unscale_(self, optimizer: torch.optim.Optimizer) -> None:
        self.grad_scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> bool:
        # GradScaler skips a step by not calling optimizer.step() (watch for that call), except
        # with a fused optimizer: it then calls step(found_inf=...) and the kernel skips the
        # update itself. Either way the step is skipped iff unscale_ found an inf/NaN.
        calls = []
        hook = optimizer.register_step_post_hook(lambda *args: calls.append(True))
        try:
            self.grad_scaler.step(optimizer)
        finally:
            hook.remove()
        found_inf = self._found_inf(optimizer)
        return bool(calls) and not found_inf

    def _found_inf(self, optimizer: torch.optim.Optimizer) -> bool:
        """What GradScaler's unscale_ found for this optimizer (its own record of it)."""
        if not self.grad_scaler.is_enabled():
            return False
        per_optimizer = getattr(self.grad_scaler, "_per_optimizer_states", {})
        found = per_optimizer.get(id(optimizer), {}).get("found_inf_per_device", {})
        return any(bool(value.item()) for value in found.values())

    def update(self) -> None:
        self.grad_scaler.update()


def _mode_that_runs(precision: str) -> str:
    """The mode the progress bar names: ``precision``, unless the loop runs "fp32"
    inside an emulated autocast (``precision.active_emulation()``), whose numerics then run."""
    emulation = active_emulation()
    if precision == "fp32" and emulation is not None:
        return emulation.mode_name
    return precision


def _make_loss_scaler(scaler: Any, precision: str, device: torch.device):
    if isinstance(scaler, str) and scaler == "auto":
        if uses_loss_scaling(precision):
            return _TorchScaler(torch.amp.GradScaler(device.type))
        return _NoScaling()
    if scaler is None:
        return _NoScaling()
    if precision == "bf16-pure":
        raise ValueError(
            "precision='bf16-pure' takes no loss scaler: bf16 has fp32's exponent range, so its "
            "gradients do not underflow the way fp16's do. Pass scaler=None or 'auto'."
        )
    if isinstance(scaler, torch.amp.GradScaler):
        return _TorchScaler(scaler)
    if isinstance(scaler, StaticLossScaler):  # DynamicLossScaler is one too
        return scaler
    if isinstance(scaler, (int, float)) and not isinstance(scaler, bool):
        return StaticLossScaler(scaler)
    raise TypeError(
        "scaler must be 'auto', None, a number (a static loss scale), a StaticLossScaler or "
        f"DynamicLossScaler, or a torch.amp.GradScaler; got {scaler!r}"
    )


def _shown_to_callbacks(loss_scaler):
    """``state.scaler``: the GradScaler or our scaler object in use, None when not scaling."""
    if isinstance(loss_scaler, _TorchScaler):
        return loss_scaler.grad_scaler
    return None if isinstance(loss_scaler, _NoScaling) else loss_scaler


# ----------------------------------------------------------------------------------------------
# Small helpers: batches, the loss, callbacks, argument checks.


def _batch_stream(batches: Mapping | Iterable[Mapping], device: torch.device):
    """A function that returns the next batch, on ``device``."""
    if isinstance(batches, Mapping):
        source = itertools.repeat(batches)
    elif isinstance(batches, Iterable) and not isinstance(batches, (str, bytes, torch.Tensor)):
        source = batches
    else:
        raise TypeError(
            "batches must be a dict (one batch), a list of dicts or an iterable of dicts, "
            f"got {type(batches).__name__}"
        )
    iterator = iter(source)

    def next_batch() -> dict:
        nonlocal iterator
        try:
            batch = next(iterator)
        except StopIteration:
            if iter(source) is source:  # an iterator (a generator...): it cannot start over
                raise ValueError(
                    "batches ran out: pass a list (it is cycled), a re-iterable, or a generator "
                    "that yields at least steps * grad_accum_steps batches"
                ) from None
            iterator = iter(source)  # a new epoch
            batch = next(iterator, None)
            if batch is None:
                raise ValueError("batches is empty") from None
        if not isinstance(batch, Mapping):
            raise TypeError(
                "each batch must be a dict such as {'input_ids': ..., 'attention_mask': ..., "
                f"'labels': ...}}, got {type(batch).__name__}"
            )
        return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    return next_batch


def _loss_of(output: Any) -> torch.Tensor:
    """The scalar loss in a model's output: ``output.loss`` (Hugging Face) or ``output`` itself."""
    loss = output if isinstance(output, torch.Tensor) else getattr(output, "loss", "missing")
    if loss is None:
        raise ValueError(
            "the model returned loss=None: a Hugging Face causal LM computes a loss only when the "
            "batch has 'labels' (for next-token prediction, labels = input_ids)"
        )
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise TypeError(
            "model(**batch) must return a scalar loss tensor or an object with a .loss (as Hugging "
            f"Face models do), got {type(output).__name__}"
        )
    return loss


NO_LABELS_MESSAGE = (
    "step {step}: the loss is nan and this batch has no label other than -100 (the ignore "
    "index) after its first position: no token counts, so the mean loss is 0/0. Usually "
    "truncation cut every answer away, or the labels were masked wrongly; drop such batches "
    "before training (notebook 06, section 2)."
)


def _no_labels(batch: Mapping) -> bool:
    """The batch has integer labels and every one a causal LM predicts (after position 0) is
    -100: nothing to average the loss over."""
    labels = batch.get("labels")
    if not isinstance(labels, torch.Tensor) or labels.is_floating_point() or labels.ndim == 0:
        return False
    return not bool((labels[..., 1:] != -100).any())


def _as_callback(callback: Any) -> Any:
    if isinstance(callback, Callback) or any(
        hasattr(callback, name) for name in vars(Callback) if name.startswith("on_")
    ):
        return callback
    if callable(callback):
        return _FunctionCallback(callback)
    raise TypeError(f"a callback must be a Callback or a function f(state), got {callback!r}")


class _FunctionCallback(Callback):
    def __init__(self, function: Callable[[TrainState], None]) -> None:
        self.function = function

    def on_step_end(self, state: TrainState) -> None:
        self.function(state)


def _call(callbacks: list, hook: str, state: TrainState) -> None:
    for callback in callbacks:
        method = getattr(callback, hook, None)
        if method is not None:
            method(state)


def _check_positive_int(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")


def _check_number(value: Any, name: str, *, low: float, low_inclusive: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    too_low = value < low if low_inclusive else value <= low
    if too_low or not math.isfinite(value):
        bound = ">=" if low_inclusive else ">"
        raise ValueError(f"{name} must be finite and {bound} {low}, got {value}")


__all__ = [
    "PRECISIONS",
    "Callback",
    "History",
    "NoLabelsWarning",
    "StepRecord",
    "TrainState",
    "train",
]
