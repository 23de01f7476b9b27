"""Keep a run alive through NaNs: skip the bad step, or roll back to the last good checkpoint.

Taught in notebook 06, section "5. Heal the run without a restart" (``NanGuard``) and its part
"The same guard for the Hugging Face `Trainer`" (``NanRecoveryCallback``).

Two callbacks with the same policy, one per training loop:

- ``NanGuard`` for the course's loop (``course_utils.train``)::

      guard = NanGuard("checkpoints/", policy="rollback", save_every=20, lr_factor=0.5)
      history = train(model, batches, steps=300, callbacks=[guard])
      print(guard.summary())

- ``NanRecoveryCallback`` for the Hugging Face ``Trainer`` (and TRL's ``SFTTrainer``)::

      trainer = Trainer(..., callbacks=[NanRecoveryCallback("checkpoints/", save_every=20)])

What they do, before each optimizer step:

1. a step is *bad* if its loss or its gradient norm is not finite (with fp16 loss scaling, an
   overflowing gradient with a finite loss is not bad: the scaler skips that step and lowers its
   scale, as designed); with ``spike_factor``, a gradient norm more than ``spike_factor`` times
   the median of the last ``spike_window`` good steps is a *spike*;
2. a spike, or a bad step under ``policy="skip"``, is skipped: no update, the next batch comes;
3. a bad step under ``policy="rollback"`` restores the weights, the optimizer state (and the
   loss scaler's) from the newest good checkpoint, skips the step, and, with ``lr_factor``,
   multiplies the learning rate by it. A checkpoint that leads to another bad step before the
   next save is set aside (kept on disk, not used again), and the one before it is used next
   time. Corrupt checkpoints are skipped with a message (``course_utils.nan.checkpoints``).

Every ``save_every`` good steps a checkpoint is written atomically (temp file, fsync, rename),
if the weights are finite: an update can make them NaN/inf even when the loss and the gradient
norm before it were finite (AdamW with ``eps=0`` and a zero gradient: 0/0). Such weights are
never saved; under ``policy="rollback"`` the guard rolls back at once. Each guard is a run of
its own: its folder must not hold another run's checkpoints (``CheckpointStore`` refuses it,
with what to do; a second run of the same notebook cell needs a fresh folder).
Each event is kept in ``.events``, printed (``verbose``) and logged (``course_utils.nan.recovery``
logger, level INFO).
"""

from __future__ import annotations

import logging
import math
import os
import statistics
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from course_utils.nan.checkpoints import (
    CheckpointStore,
    NonFiniteWeightsError,
    apply_training_state,
)
from course_utils.train import Callback, TrainState

logger = logging.getLogger(__name__)

POLICIES = ("skip", "rollback")


@dataclass(frozen=True)
class RecoveryEvent:
    """One thing the guard did: at ``step``, ``action`` ("skipped", "rolled back", "stopped",
    "checkpoint skipped", "checkpoint set aside", "checkpoint not saved") because of
    ``reason``."""

    step: int
    action: str
    reason: str

    def __str__(self) -> str:
        return f"step {self.step}: {self.action}: {self.reason}"


class _Recovery:
    """The policy shared by both callbacks: detection, checkpoints, events."""

    def __init__(
        self,
        checkpoint_dir: str | os.PathLike | None,
        *,
        policy: str = "rollback",
        save_every: int = 20,
        keep_last: int = 3,
        lr_factor: float | None = None,
        spike_factor: float | None = None,
        spike_window: int = 20,
        max_consecutive_bad: int = 5,
        max_rollbacks: int = 10,
        verbose: bool = True,
        printer: Callable[[str], None] | None = None,
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown policy {policy!r}: choose one of {', '.join(POLICIES)}")
        if policy == "rollback" and checkpoint_dir is None:
            raise ValueError("policy='rollback' needs a checkpoint_dir to roll back to")
        _check_int(save_every, "save_every")
        _check_int(spike_window, "spike_window")
        _check_int(max_consecutive_bad, "max_consecutive_bad")
        _check_int(max_rollbacks, "max_rollbacks")
        if lr_factor is not None and not (
            isinstance(lr_factor, (int, float)) and 0 < lr_factor < 1
        ):
            raise ValueError(f"lr_factor must be None or a number in (0, 1), got {lr_factor!r}")
        if spike_factor is not None and not (
            isinstance(spike_factor, (int, float)) and spike_factor > 1
        ):
            raise ValueError(f"spike_factor must be None or a number > 1, got {spike_factor!r}")
        self.policy = policy
        self.save_every = save_every
        self.lr_factor = lr_factor
        self.spike_factor = spike_factor
        self.max_consecutive_bad = max_consecutive_bad
        self.max_rollbacks = max_rollbacks
        self.verbose = verbose
        self.printer = printer or print
        self.store = (
            None
            if checkpoint_dir is None
            else _GuardStore(self, checkpoint_dir, keep_last=keep_last)
        )
        self.events: list[RecoveryEvent] = []
        self.rollbacks = 0
        self.lr_scale = 1.0  # product of the lr_factor applied so far
        self._recent_norms: deque[float] = deque(maxlen=spike_window)
        self._consecutive_bad = 0
        self._restored_from: int | None = None  # checkpoint in use since the last rollback
        self._set_aside_from: int | None = None  # checkpoints from this step on led to NaN again
        self._step = 0

    # ---------------------------------------------------------------- detection

    def classify(self, loss: float, grad_norm: float, scaling: bool) -> str | None:
        """None for a good step, else why it is bad ("... not finite") or a spike ("spike: ...")."""
        if not math.isfinite(loss):
            return f"loss is {loss}"
        if not math.isfinite(grad_norm):
            if scaling:  # fp16: the loss scaler skips this step and backs off; nothing to do
                return None
            return f"gradient norm is {grad_norm}"
        if self.spike_factor is not None and len(self._recent_norms) >= min(
            5, self._recent_norms.maxlen or 5
        ):
            median = statistics.median(self._recent_norms)
            if grad_norm > self.spike_factor * median:
                return (
                    f"spike: gradient norm {grad_norm:.3g} is {grad_norm / median:.0f}x the "
                    f"median of the last {len(self._recent_norms)} steps"
                )
        return None

    def note_good(self, grad_norm: float) -> None:
        self._consecutive_bad = 0
        if math.isfinite(grad_norm):
            self._recent_norms.append(grad_norm)

    # ---------------------------------------------------------------- actions

    def handle_bad(
        self,
        step: int,
        reason: str,
        rollback: Callable[[], int | None],
        undone: str = "batch skipped",
    ) -> bool:
        """Decide and log; return True to stop training. ``rollback()`` restores the state and
        returns the step restored (None if there is nothing to restore)."""
        self._consecutive_bad += 1
        spike = reason.startswith("spike")
        if spike or self.policy == "skip":
            if self._consecutive_bad > self.max_consecutive_bad:
                self._event(step, "stopped", f"{reason}; {self._consecutive_bad} bad steps in a "
                            "row: skipping does not help (the weights may be damaged already: "
                            "use policy='rollback')")  # fmt: skip
                return True
            self._event(step, "skipped", reason + " (no update from this batch)")
            return False
        if self.rollbacks >= self.max_rollbacks:
            self._event(step, "stopped", f"{reason}; already rolled back {self.rollbacks} times")
            return True
        restored = rollback()
        if restored is None:
            self._event(step, "stopped", f"{reason}; no good checkpoint left to roll back to")
            return True
        self.rollbacks += 1
        lr_note = ""
        if self.lr_factor is not None:
            lr_note = f", learning rate x{self.lr_scale:g}"
        self._event(step, "rolled back", f"{reason}: restored step {restored} (weights, optimizer"
                    f"{', loss scaler' if self._scaler_restored else ''}){lr_note}, {undone}")  # fmt: skip
        return False

    def restore(self, model, optimizer, scaler, step: int) -> int | None:
        """Load the newest good checkpoint older than any that already failed; lower the LR."""
        assert self.store is not None
        if self._restored_from is not None:  # we came back here and failed again: not good
            self._set_aside_from = self._restored_from
            self._event(step, "checkpoint set aside", f"step {self._restored_from}: training "
                        "went bad again from it before the next save; the file is kept, the "
                        "next rollback goes further back")  # fmt: skip
        state = self.store.latest_good(before=self._set_aside_from)
        if state is None:
            return None
        saved_scale = float(state.get("extra", {}).get("lr_scale", 1.0))
        apply_training_state(state, model, optimizer, scaler)
        self._scaler_restored = scaler is not None and "scaler" in state
        if self.lr_factor is not None:
            self.lr_scale *= self.lr_factor
        for group in optimizer.param_groups:  # restored lr was saved under saved_scale
            group["lr"] = group["lr"] / saved_scale * self.lr_scale
        self._restored_from = int(state["step"])
        self._recent_norms.clear()
        return self._restored_from

    def maybe_save(self, step: int, model, optimizer, scaler, force: bool = False) -> str | None:
        """Save if it is time. Returns why the weights were not saved when the update made them
        non-finite (the caller decides what to do), None otherwise."""
        if self.store is None or not (force or step % self.save_every == 0):
            return None
        try:
            self.store.save(step, model, optimizer, scaler, extra={"lr_scale": self.lr_scale})
        except NonFiniteWeightsError:
            damaged = [n for n, p in model.named_parameters() if not bool(p.isfinite().all())]
            total = sum(1 for _ in model.parameters())
            example = f" (e.g. {damaged[0]!r})" if damaged else ""
            return (
                f"after the update of step {step}, {len(damaged) or 'some'} of the {total} weight "
                f"tensors hold NaN/inf{example} though the losses and gradient norms were "
                "finite (an update made them so); these weights were not saved"
            )
        except OSError as exc:  # disk full, a crash in the rename...: the older ones are intact
            self._event(step, "checkpoint not saved", f"{exc}; the previous checkpoints are kept")
            return None
        self._restored_from = None
        self._set_aside_from = None
        return None

    def save_start(self, step: int, model, optimizer, scaler) -> None:
        """The checkpoint before the first step (not saved, with an event, if the weights
        already hold NaN/inf)."""
        if self.maybe_save(step, model, optimizer, scaler, force=True) is not None:
            self._event(step, "checkpoint not saved", "the starting weights already hold "
                        "NaN/inf: there is nothing good to roll back to")  # fmt: skip

    def handle_damaged_update(self, step: int, reason: str, rollback) -> bool:
        """The weights went non-finite in an update: roll back now (policy "rollback") or say
        that nothing can be saved (policy "skip"). Returns True to stop training."""
        if self.policy == "rollback":
            return self.handle_bad(step, reason, rollback, undone="the updates since undone")
        self._event(step, "checkpoint not saved", f"{reason}; policy='skip' cannot undo an "
                    "update already made (policy='rollback' can)")  # fmt: skip
        return False

    def _event(self, step: int, action: str, reason: str) -> None:
        event = RecoveryEvent(step, action, reason)
        self.events.append(event)
        logger.info("%s", event)
        if self.verbose:
            self.printer(f"[recovery] {event}")

    _scaler_restored = False

    def summary(self) -> str:
        """One line per event, or a line saying there were none."""
        if not self.events:
            return "no recovery events: every step was finite"
        return "\n".join(str(event) for event in self.events)


# ----------------------------------------------------------------------------- course loop


class NanGuard(_Recovery, Callback):
    """The recovery policy as a ``course_utils.train`` callback (see the module docstring).

    checkpoint_dir: where checkpoints go (None: no checkpoints; only policy="skip" then).
    policy: "rollback" (default) or "skip". save_every: steps between checkpoints (one is also
    saved before the first step). keep_last: checkpoints kept. lr_factor: multiply the learning
    rate by this at each rollback. spike_factor: also skip steps whose gradient norm exceeds this
    times the median of the last spike_window steps. max_consecutive_bad, max_rollbacks: give up
    (stop the run, with a message) after that many.
    """

    def __init__(self, checkpoint_dir: str | os.PathLike | None = None, **kwargs: Any) -> None:
        super().__init__(checkpoint_dir, **kwargs)
        try:  # print above a progress bar without breaking it
            from tqdm.auto import tqdm

            self.printer = kwargs.get("printer") or tqdm.write
        except ImportError:  # pragma: no cover - tqdm is a course requirement
            pass

    def on_train_start(self, state: TrainState) -> None:
        self._step = 0
        self.save_start(0, state.model, state.optimizer, state.scaler)

    def on_before_optimizer_step(self, state: TrainState) -> None:
        self._step = state.step
        reason = self.classify(state.loss, state.grad_norm, scaling=state.scaler is not None)
        if reason is None:
            self.note_good(state.grad_norm)
            return
        state.skip_step = True

        def rollback():
            return self.restore(state.model, state.optimizer, state.scaler, state.step)

        state.stop = self.handle_bad(state.step, reason, rollback)

    def on_step_end(self, state: TrainState) -> None:
        record = state.record
        if record is not None and not record.skipped and math.isfinite(record.loss):
            damage = self.maybe_save(state.step, state.model, state.optimizer, state.scaler)
            if damage is not None:

                def rollback():
                    return self.restore(state.model, state.optimizer, state.scaler, state.step)

                state.stop = self.handle_damaged_update(state.step, damage, rollback) or state.stop


# ----------------------------------------------------------------------------- HF Trainer

try:
    from transformers import TrainerCallback
except ImportError:  # pragma: no cover - transformers is a course requirement
    TrainerCallback = object  # type: ignore[assignment,misc]


class NanRecoveryCallback(_Recovery, TrainerCallback):
    """The recovery policy as a Hugging Face ``TrainerCallback`` (see the module docstring).

    It runs in ``on_pre_optimizer_step``, after the Trainer has clipped the gradients (with
    ``max_grad_norm``). A step is skipped by dropping the gradients (``p.grad = None``: the
    optimizer leaves those parameters alone); a rollback also restores the weights and the
    optimizer state from its own atomic checkpoints (not the Trainer's ``save_steps`` folders),
    and ``lr_factor`` lowers the scheduler's base learning rates. Same arguments as NanGuard.
    """

    def __init__(self, checkpoint_dir: str | os.PathLike | None = None, **kwargs: Any) -> None:
        super().__init__(checkpoint_dir, **kwargs)
        self._bad_this_step = False

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        self._step = state.global_step
        self.save_start(state.global_step, model, optimizer, None)

    def on_pre_optimizer_step(self, args, state, control, model=None, optimizer=None,
                              lr_scheduler=None, **kwargs):  # fmt: skip
        step = state.global_step + 1
        self._step = step
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        grad_norm = float(torch.nn.utils.get_total_norm(grads)) if grads else 0.0
        # The Trainer does not show callbacks the loss; a non-finite loss makes every gradient
        # non-finite, so the gradient norm sees it. With fp16=True, non-finite gradients are the
        # loss scaler's business: it skips those steps and lowers its scale.
        reason = self.classify(0.0, grad_norm, scaling=bool(getattr(args, "fp16", False)))
        self._bad_this_step = reason is not None
        if reason is None:
            self.note_good(grad_norm)
            return
        if reason.startswith("gradient norm"):
            reason = f"gradient norm is {grad_norm} (loss or gradients not finite)"

        def rollback():
            restored = self.restore(model, optimizer, None, step)
            if restored is not None and self.lr_factor is not None and lr_scheduler is not None:
                _scale_scheduler(lr_scheduler, self.lr_factor)
            return restored

        if self.handle_bad(step, reason, rollback):
            control.should_training_stop = True
        for param in model.parameters():  # no update from this batch
            param.grad = None

    def on_step_end(self, args, state, control, model=None, optimizer=None, lr_scheduler=None,
                    **kwargs):  # fmt: skip
        if not self._bad_this_step:
            step = state.global_step
            damage = self.maybe_save(step, model, optimizer, None)
            if damage is not None:

                def rollback():
                    restored = self.restore(model, optimizer, None, step)
                    if restored is not None and self.lr_factor is not None and lr_scheduler:
                        _scale_scheduler(lr_scheduler, self.lr_factor)
                    return restored

                if self.handle_damaged_update(step, damage, rollback):
                    control.should_training_stop = True
        self._bad_this_step = False


class _GuardStore(CheckpointStore):
    """The guard's store: a skipped checkpoint becomes one event, said once."""

    def __init__(self, guard: _Recovery, directory, keep_last: int) -> None:
        self._guard = guard
        super().__init__(directory, keep_last=keep_last)

    def _skip(self, name: str, why: str) -> None:
        self._guard._event(self._guard._step, "checkpoint skipped", f"{name}: {why}")


def _scale_scheduler(scheduler, factor: float) -> None:
    """Lower the learning rate a Trainer scheduler will set from now on (LambdaLR & co)."""
    if hasattr(scheduler, "base_lrs"):
        scheduler.base_lrs = [lr * factor for lr in scheduler.base_lrs]


def _check_int(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")


__all__ = ["POLICIES", "NanGuard", "NanRecoveryCallback", "RecoveryEvent"]
