"""Loss scaling written from scratch, to show what ``torch.amp.GradScaler`` does.

Taught in notebook 03, sections "1. The problem: fp16 flushes small gradients to zero"
(``DynamicLossScaler`` in a run) and "3. Dynamic loss scaling, written from scratch".

fp16 cannot hold a gradient smaller than 2**-24 (about 6e-8): it flushes to zero. Multiply the
loss by a scale S before ``backward()`` and, by the chain rule, every gradient comes out S times
larger, clear of that floor. Divide the gradients by S again (``unscale_``, in fp32) before
anything reads them (clipping, the optimizer) and the update is the one you would get without
scaling. If S was too large, some gradient overflowed to inf or NaN: skip that step.

- ``StaticLossScaler(scale)``: one fixed S.
- ``DynamicLossScaler(...)``: S halves after an overflow and doubles after ``growth_interval``
  clean steps in a row, exactly like ``torch.amp.GradScaler`` (same scale, step for step).

One iteration, with either of them (or with GradScaler, whose methods have the same names,
except ``scale(loss)`` there is ``scale_loss(loss)`` here)::

    scaler.scale_loss(loss).backward()   # scaled gradients
    scaler.unscale_(optimizer)           # true gradients (and: did any overflow?)
    clip_grad_norm_(model.parameters(), max_norm)   # clip in true units, after unscale_
    scaler.step(optimizer)               # skipped if a gradient overflowed
    scaler.update()                      # the dynamic scaler adjusts S here
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch


def to_float32(x: float) -> float:
    """``x`` rounded to the nearest float32 (overflow -> inf): GradScaler keeps its scale in a
    float32 tensor, so every scale it reaches is a float32 number."""
    return torch.tensor(x, dtype=torch.float64).to(torch.float32).item()


class StaticLossScaler:
    """Multiply the loss by a fixed ``scale``; skip the optimizer step when gradients overflow."""

    def __init__(self, scale: float = 2.0**16) -> None:
        self._scale = _positive_float32(scale, "scale")
        self.found_inf: bool | None = None  # what the last unscale_ found; None: not checked yet
        self._stage = "ready"  # "ready" -> "unscaled" -> "stepped" -> (update) -> "ready"

    @property
    def scale(self) -> float:
        """The factor the loss is multiplied by (a float32 value)."""
        return self._scale

    def get_scale(self) -> float:
        """``scale`` under GradScaler's name for it."""
        return self._scale

    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """``loss * scale``: call ``.backward()`` on this instead of on the loss."""
        return loss * self._scale

    def unscale_(self, optimizer_or_params: torch.optim.Optimizer | Iterable) -> bool:
        """Divide the gradients by ``scale`` in place; return True if any was inf or NaN.

        Call it once per iteration, after all backward passes (gradient accumulation included)
        and before anything reads the gradients (clipping, logging, the optimizer).
        """
        if self._stage == "unscaled":
            raise RuntimeError("unscale_() has already been called since the last update()")
        if self._stage == "stepped":
            raise RuntimeError("unscale_() is being called after step(): call update() first")
        grads = _gradients(optimizer_or_params)
        if any(grad.dtype == torch.float16 for grad in grads):
            raise ValueError(
                "Attempting to unscale FP16 gradients: unscaling must happen in fp32, or the small "
                "gradients the scale rescued would underflow again. Keep the weights in fp32 "
                "(master weights) and let autocast make the fp16 copies."
            )
        self.found_inf = not all(torch.isfinite(grad).all() for grad in grads)
        # Like GradScaler: the reciprocal is taken in float64, then rounded to float32.
        inv_scale = to_float32(1.0 / self._scale) if self._scale else math.inf
        for grad in grads:
            grad.mul_(inv_scale)
        self._stage = "unscaled"
        return self.found_inf

    def step(self, optimizer: torch.optim.Optimizer) -> bool:
        """Unscale (if not done yet), then ``optimizer.step()`` unless a gradient overflowed.
        Returns True if the optimizer stepped, False if the step was skipped."""
        if self._stage == "stepped":
            raise RuntimeError("step() has already been called since the last update()")
        if self._stage == "ready":
            self.unscale_(optimizer)
        self._stage = "stepped"
        if self.found_inf:
            return False  # the weights stay as they were; update() will react to the overflow
        optimizer.step()
        return True

    def update(self, found_inf: bool | None = None) -> None:
        """End the iteration. A static scale never changes."""
        self._stage = "ready"

    def state_dict(self) -> dict[str, Any]:
        return {"scale": self._scale}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take the scale of ``state``; a missing or bad value raises and changes nothing."""
        self._scale = _positive_float32(_field(state, "scale"), "scale")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scale={self._scale:g})"


class DynamicLossScaler(StaticLossScaler):
    """A loss scale that finds itself: back off after an overflow, grow after a calm stretch.

    ``update(found_inf)`` applies the rule of PyTorch's ``_amp_update_scale_`` kernel, which
    ``torch.amp.GradScaler.update()`` calls, so both go through the same scales:

    - overflow: ``scale *= backoff_factor`` and the count of clean steps restarts at 0;
    - a clean step: count it; when the count reaches ``growth_interval``,
      ``scale *= growth_factor`` (unless that would make it inf) and the count restarts at 0.

    Each product is computed in float64 and rounded to float32, as the kernel does.
    """

    def __init__(
        self,
        init_scale: float = 2.0**16,
        growth_factor: float = 2.0,
        backoff_factor: float = 0.5,
        growth_interval: int = 2000,
    ) -> None:
        super().__init__(init_scale)
        self.growth_factor = _growth_factor(growth_factor)
        self.backoff_factor = _backoff_factor(backoff_factor)
        self.growth_interval = _int_at_least(growth_interval, 1, "growth_interval")
        self.growth_tracker = 0  # clean steps in a row since the scale last changed

    def update(self, found_inf: bool | None = None) -> None:
        """Adjust the scale for the next iteration. ``found_inf`` defaults to what ``unscale_``
        (or ``step``) found in this iteration's gradients."""
        if found_inf is None:
            if self._stage == "ready":
                raise RuntimeError(
                    "update() without found_inf needs an overflow check first: "
                    "call unscale_() or step() in this iteration, or pass found_inf"
                )
            found_inf = self.found_inf
        if found_inf:
            self._scale = to_float32(self._scale * self.backoff_factor)
            self.growth_tracker = 0
        else:
            self.growth_tracker += 1
            if self.growth_tracker == self.growth_interval:
                grown = to_float32(self._scale * self.growth_factor)
                if math.isfinite(grown):  # never grow to inf: keep the scale instead
                    self._scale = grown
                self.growth_tracker = 0
        self._stage = "ready"

    def state_dict(self) -> dict[str, Any]:
        """The same keys as ``torch.amp.GradScaler.state_dict()``: either loads the other's."""
        return {
            "scale": self._scale,
            "growth_factor": self.growth_factor,
            "backoff_factor": self.backoff_factor,
            "growth_interval": self.growth_interval,
            "_growth_tracker": self.growth_tracker,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take every value of ``state`` (ours or ``GradScaler.state_dict()``). Each is checked
        as ``__init__`` checks it, all before any is set: a bad state raises and changes
        nothing."""
        keys = ("scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker")
        if not isinstance(state, dict):
            raise TypeError(f"a loss scaler state must be a dict, got {type(state).__name__}")
        missing = [key for key in keys if key not in state]
        if missing:
            raise ValueError(
                f"this loss scaler state lacks {', '.join(map(repr, missing))}: expected the keys "
                f"of DynamicLossScaler/GradScaler.state_dict() {keys}"
            )
        scale = _positive_float32(_field(state, "scale"), "scale")
        growth_factor = _growth_factor(_field(state, "growth_factor"))
        backoff_factor = _backoff_factor(_field(state, "backoff_factor"))
        growth_interval = _int_at_least(_field(state, "growth_interval"), 1, "growth_interval")
        tracker = _int_at_least(_field(state, "_growth_tracker"), 0, "_growth_tracker")
        self._scale, self.growth_factor, self.backoff_factor = scale, growth_factor, backoff_factor
        self.growth_interval, self.growth_tracker = growth_interval, tracker

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(scale={self._scale:g}, "
            f"clean steps={self.growth_tracker}/{self.growth_interval})"
        )


def _field(state: Any, key: str) -> Any:
    if not isinstance(state, dict):
        raise TypeError(f"a loss scaler state must be a dict, got {type(state).__name__}")
    if key not in state:
        raise ValueError(
            f"this loss scaler state has no {key!r} (keys: {sorted(map(str, state))}); an "
            "empty dict is what a disabled GradScaler saves"
        )
    return state[key]


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    return float(value)


def _growth_factor(value: object) -> float:
    factor = _number(value, "growth_factor")
    if not (math.isfinite(factor) and factor > 1.0):
        raise ValueError(f"growth_factor must be a finite number > 1, got {value!r}")
    return factor


def _backoff_factor(value: object) -> float:
    factor = _number(value, "backoff_factor")
    if not 0.0 < factor < 1.0:
        raise ValueError(f"backoff_factor must be between 0 and 1, got {value!r}")
    return factor


def _int_at_least(value: object, low: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def _positive_float32(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    rounded = to_float32(float(value))
    if not (math.isfinite(rounded) and rounded > 0):
        raise ValueError(f"{name} must be positive and finite in float32, got {value!r}")
    return rounded


def _gradients(optimizer_or_params: torch.optim.Optimizer | Iterable) -> list[torch.Tensor]:
    """The existing ``.grad`` tensors of an optimizer's parameters, or of an iterable of them."""
    if isinstance(optimizer_or_params, torch.optim.Optimizer):
        params = [p for group in optimizer_or_params.param_groups for p in group["params"]]
    elif isinstance(optimizer_or_params, torch.Tensor):
        params = [optimizer_or_params]
    elif isinstance(optimizer_or_params, Iterable):
        params = list(optimizer_or_params)
    else:
        raise TypeError(
            "unscale_ expects an optimizer or an iterable of parameters, "
            f"got {type(optimizer_or_params).__name__}"
        )
    for p in params:
        if not isinstance(p, torch.Tensor):
            raise TypeError(f"expected parameters (tensors), got {type(p).__name__}")
    return [p.grad for p in params if p.grad is not None]
