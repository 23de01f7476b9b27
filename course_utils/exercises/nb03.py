"""Checks for the exercises of notebook 03 (loss scaling).

Notebook 03, sections "3. Dynamic loss scaling, written from scratch" (the update rule)
and "5. Gradient accumulation with a scaler" (``unscale_`` in the right place).
"""

from __future__ import annotations

import math
import random

import torch

from course_utils.exercises.registry import Incorrect, exercise, expect_callable, expect_number

STEPS, MICRO_BATCHES = 3, 3  # the train_step check: 3 optimizer steps of 3 micro-batches
INIT_SCALE = 16.0  # small, so that gradients left over from a step still show
CLIPPED, UNCLIPPED = 0.5, 1e6  # max_norm: always clips / never clips


# ----------------------------------------------------------------------------------------------
# 03.update_scale: the dynamic loss scaler's update rule, against the kernel GradScaler calls.


def reference_update(scale, growth_tracker, found_inf, growth_factor, backoff_factor, interval):
    """One ``GradScaler.update()``: the very kernel it calls, ``torch._amp_update_scale_``."""
    scale_t = torch.full((), scale, dtype=torch.float32)
    tracker_t = torch.full((), growth_tracker, dtype=torch.int32)
    found_t = torch.full((), float(found_inf), dtype=torch.float32)
    torch._amp_update_scale_(scale_t, tracker_t, found_t, growth_factor, backoff_factor, interval)
    return scale_t.item(), int(tracker_t.item())


def _scenarios() -> list[tuple[str, dict, list[bool]]]:
    rng = random.Random(0)
    return [
        ("three clean steps, then an overflow", dict(growth_interval=3), [False] * 3 + [True]),
        ("an overflow just before growth", dict(growth_interval=3), [False, False, True] * 3),
        ("random overflows", dict(growth_interval=4), [rng.random() < 0.2 for _ in range(200)]),
        (
            "overflow after overflow",
            dict(growth_interval=2, backoff_factor=0.25),
            [True] * 5 + [False] * 6,
        ),
        (
            "growing near float32's largest value",
            dict(init_scale=2.0**125, growth_interval=1),
            [False] * 5,
        ),
        ("the defaults", {}, [False] * 1999 + [True] + [False] * 2000),
    ]


@exercise(
    "03.update_scale",
    hint="After an overflow: scale * backoff_factor, tracker back to 0. After a clean step: "
    "tracker + 1; when it reaches growth_interval, scale * growth_factor and tracker back to 0. "
    "GradScaler keeps its scale in float32: a growth that would overflow float32 (to inf) is "
    "not applied.",
    title="Write the dynamic loss scaler's update rule",
)
def check_update_scale(update_scale):
    """``update_scale(scale, growth_tracker, found_inf, growth_factor, backoff_factor,
    growth_interval) -> (new_scale, new_growth_tracker)``."""
    expect_callable(update_scale, "update_scale")
    for name, settings, overflows in _scenarios():
        factors = dict(growth_factor=2.0, backoff_factor=0.5, growth_interval=2000) | settings
        init_scale = factors.pop("init_scale", 2.0**16)
        ours = theirs = (init_scale, 0)
        for i, found_inf in enumerate(overflows, start=1):
            theirs = reference_update(*theirs, found_inf, *factors.values())
            got = update_scale(*ours, found_inf, *factors.values())
            if not (isinstance(got, tuple) and len(got) == 2):
                raise Incorrect(f"update_scale should return (new_scale, new_tracker), got {got!r}")
            got = (
                expect_number(got[0], f"the new scale after step {i}"),
                expect_number(got[1], f"the new growth_tracker after step {i}", integer=True),
            )
            if not (_same_number(got[0], theirs[0]) and got[1] == theirs[1]):
                event = "an overflow" if found_inf else "a clean step"
                raise Incorrect(
                    f"{name} ({factors}, starting at scale {init_scale:g}): after step {i} "
                    f"({event}), from (scale, tracker) = {_show(ours)} you returned "
                    f"{_show(got)}; GradScaler gives {_show(theirs)}"
                )
            ours = got


def _same_number(a, b) -> bool:
    try:
        return float(a) == float(b) or (math.isnan(float(a)) and math.isnan(float(b)))
    except (TypeError, ValueError):
        return False


def _show(pair) -> str:
    scale, tracker = pair
    try:
        return f"({float(scale):g}, {tracker!r})"
    except (TypeError, ValueError):
        return repr(pair)


# ----------------------------------------------------------------------------------------------
# 03.train_step: accumulate, unscale_ once, clip, step, update.


class RecordingGradScaler(torch.amp.GradScaler):
    """A GradScaler that notes which of its methods were called, in order. An ``unscale_`` that
    ``step()`` had to do itself (nobody called it before) is noted as "unscale_ (by step)"."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: list[str] = []
        self._in_step = False

    def scale(self, outputs):
        self.calls.append("scale")
        return super().scale(outputs)

    def unscale_(self, optimizer):
        self.calls.append("unscale_ (by step)" if self._in_step else "unscale_")
        return super().unscale_(optimizer)

    def step(self, optimizer, *args, **kwargs):
        self.calls.append("step")
        self._in_step = True
        try:
            return super().step(optimizer, *args, **kwargs)
        finally:
            self._in_step = False

    def update(self, new_scale=None):
        self.calls.append("update")
        return super().update(new_scale)


def _problem(seed: int = 0):
    """A small regression model and micro-batches whose gradients always need clipping."""
    gen = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    steps = [
        [
            (torch.randn(4, 8, generator=gen), 5 * torch.randn(4, 1, generator=gen))
            for _ in range(MICRO_BATCHES)
        ]
        for _ in range(STEPS)
    ]
    return model, steps


def reference_train_step(model, optimizer, scaler, micro_batches, max_norm=1.0):
    """The right order: every backward, then unscale_ once, clip, step, update, zero_grad."""
    for x, y in micro_batches:
        loss = torch.nn.functional.mse_loss(model(x), y) / len(micro_batches)
        scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)


def _run(train_step, max_norm: float):
    model, steps = _problem()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = RecordingGradScaler("cpu", init_scale=INIT_SCALE)
    for micro_batches in steps:
        train_step(model, optimizer, scaler, micro_batches, max_norm)
    return model, scaler


@exercise(
    "03.train_step",
    hint="Call scaler.scale(loss).backward() for every micro-batch, then scaler.unscale_(optimizer) "
    "once, then clip_grad_norm_, then scaler.step(optimizer), scaler.update() and "
    "optimizer.zero_grad().",
    title="Put unscale_ in the right place: gradient accumulation, clipping, loss scaling",
)
def check_train_step(train_step):
    """``train_step(model, optimizer, scaler, micro_batches, max_norm)``: one optimizer step."""
    expect_callable(train_step, "train_step")
    model, scaler = _run(train_step, CLIPPED)
    one_step = ["scale"] * MICRO_BATCHES + ["unscale_", "step", "update"]
    calls, first_step = scaler.calls, scaler.calls[: len(one_step)]
    if calls.count("scale") != STEPS * MICRO_BATCHES:
        raise Incorrect(
            f"scaler.scale() was called {calls.count('scale')} times in {STEPS} steps of "
            f"{MICRO_BATCHES} micro-batches: scale every micro-batch's loss before its backward()"
        )
    if "unscale_ (by step)" in calls:
        raise Incorrect(
            "scaler.step() had to unscale the gradients itself, so anything before it (clipping) "
            "saw scaled gradients: call scaler.unscale_(optimizer) before clip_grad_norm_"
        )
    if calls != one_step * STEPS:
        raise Incorrect(
            f"the scaler calls of your first step were {first_step}; expected {one_step}"
        )
    if not _same_weights(_run(train_step, UNCLIPPED)[0], _run(reference_train_step, UNCLIPPED)[0]):
        raise Incorrect(
            f"without clipping, the weights after {STEPS} steps differ from the reference: divide "
            "each micro-batch's loss by the number of micro-batches, and zero the gradients "
            "after each optimizer step"
        )
    if not _same_weights(model, _run(reference_train_step, CLIPPED)[0]):
        raise Incorrect(
            f"with clipping, the weights after {STEPS} steps differ from the reference: clip "
            "after unscale_, else clip_grad_norm_ sees gradients scale times too large (and "
            "clips them to max_norm / scale in true units)"
        )


def _same_weights(model, reference) -> bool:
    pairs = zip(model.parameters(), reference.parameters(), strict=True)
    return all(torch.allclose(p, q, rtol=1e-5, atol=1e-6) for p, q in pairs)
