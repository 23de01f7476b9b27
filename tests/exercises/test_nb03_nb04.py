"""The checks of notebooks 03 and 04: right answers pass, typical mistakes get a precise message."""

import math

import pytest
import torch
import torch.nn.functional as F

from course_utils.exercises import evaluate
from course_utils.exercises.nb03 import reference_update
from course_utils.scaling import DynamicLossScaler

FLOAT32_MAX = torch.finfo(torch.float32).max


# ------------------------------------------------------------------------- 03.update_scale
def update_scale(scale, tracker, found_inf, growth_factor=2.0, backoff_factor=0.5, interval=2000):
    if found_inf:
        return scale * backoff_factor, 0
    tracker += 1
    if tracker == interval:
        grown = scale * growth_factor
        return (grown if grown <= FLOAT32_MAX else scale), 0
    return scale, tracker


def grows_to_inf(scale, tracker, found_inf, growth_factor=2.0, backoff_factor=0.5, interval=2000):
    if found_inf:
        return scale * backoff_factor, 0
    tracker += 1
    return (scale * growth_factor, 0) if tracker == interval else (scale, tracker)


def keeps_count(scale, tracker, found_inf, growth_factor=2.0, backoff_factor=0.5, interval=2000):
    if found_inf:
        return scale * backoff_factor, tracker  # forgets to restart the count
    return update_scale(scale, tracker, False, growth_factor, backoff_factor, interval)


def grows_late(scale, tracker, found_inf, growth_factor=2.0, backoff_factor=0.5, interval=2000):
    if found_inf:
        return scale * backoff_factor, 0
    if tracker == interval:  # compares before counting this step: one step late
        return scale * growth_factor, 0
    return scale, tracker + 1


def test_reference_update_is_grad_scalers_rule():
    ours = DynamicLossScaler(init_scale=2.0**10, growth_interval=2)
    state = (2.0**10, 0)
    for found_inf in [False, False, True, False, True, False, False, False]:
        ours.update(found_inf)
        state = reference_update(*state, found_inf, 2.0, 0.5, 2)
        assert state == (ours.scale, ours.growth_tracker)


def test_update_scale_right_answer():
    assert evaluate("03.update_scale", update_scale).passed


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (grows_to_inf, "growing near float32's largest value"),
        (keeps_count, "an overflow just before growth"),
        (grows_late, "after step 3 (a clean step)"),
        (lambda *args: args[0], "should return (new_scale, new_tracker)"),
        (42, "should be a function"),
        (..., "Not done yet"),
    ],
)
def test_update_scale_mistakes(answer, message):
    result = evaluate("03.update_scale", answer)
    assert not result.passed and message in result.message


# -------------------------------------------------------------------------- 03.train_step
def make_step(order: str, divide: bool = True, zero: bool = True):
    """A train_step whose unscale_ sits at ``order``: "right", "after_clip", "none", "in_loop"."""

    def train_step(model, optimizer, scaler, micro_batches, max_norm=1.0):
        for x, y in micro_batches:
            loss = F.mse_loss(model(x), y)
            scaler.scale(loss / len(micro_batches) if divide else loss).backward()
            if order == "in_loop":
                scaler.unscale_(optimizer)
        if order == "right":
            scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        if order == "after_clip":
            scaler.unscale_(optimizer)
        scaler.step(optimizer)
        scaler.update()
        if zero:
            optimizer.zero_grad()

    return train_step


def test_train_step_right_answer():
    assert evaluate("03.train_step", make_step("right")).passed


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (make_step("after_clip"), "with clipping, the weights"),
        (make_step("none"), "had to unscale the gradients itself"),
        (make_step("in_loop"), "unscale_() has already been called"),
        (make_step("right", divide=False), "divide each micro-batch's loss"),
        (make_step("right", zero=False), "zero the gradients"),
    ],
)
def test_train_step_mistakes(answer, message):
    result = evaluate("03.train_step", answer)
    assert not result.passed and message in result.message, result.message


# --------------------------------------------------------------------- 04.training_memory
def training_memory_gib(num_params, precision):
    return num_params * {"fp32": 16, "bf16": 18, "bf16-pure": 8}[precision] / 2**30


def test_training_memory():
    assert evaluate("04.training_memory", training_memory_gib).passed
    forgot_copies = evaluate(
        "04.training_memory", lambda n, p: training_memory_gib(n, "fp32" if p == "bf16" else p)
    )
    assert not forgot_copies.passed and "16.0 bytes/param" in forgot_copies.message
    in_gb = evaluate("04.training_memory", lambda n, p: training_memory_gib(n, p) * 2**30 / 1e9)
    assert not in_gb.passed and "GB (10**9 bytes)" in in_gb.message
    assert "should be a number" in evaluate("04.training_memory", lambda n, p: "big").message
    assert math.isclose(training_memory_gib(7e9, "bf16"), 117.3, rel_tol=1e-3)
