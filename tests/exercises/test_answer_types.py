"""Issue 13 item 6: no exercise check of notebooks 00-05 and 08 passes a NaN, an inf, an answer of
the wrong type, or an object whose ``__eq__`` is always True (06 and 07 are tested elsewhere)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils import exercises
from course_utils import formats as F
from course_utils.exercises import nb00 as ex00
from course_utils.exercises import nb01 as ex01
from course_utils.exercises import nb03 as ex03
from course_utils.exercises import nb04 as ex04
from course_utils.exercises import nb08 as ex08
from course_utils.hardware import recommend_precision

NAN, INF = math.nan, math.inf


class AlwaysEqual:
    """Equal to everything, truthy or not as told: the classic way to fool ``==`` checks."""

    def __init__(self, truth: bool = True, value: float = 0.0):
        self.truth, self.value = truth, value

    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = object.__hash__

    def __bool__(self):
        return self.truth

    def __float__(self):
        return self.value

    def __str__(self):
        return "fp16"


# Right answers (the notebooks' solutions), so that each corruption below changes one thing.
def amp_settings(capability):
    return (torch.bfloat16, False) if capability[0] >= 8 else (torch.float16, True)


def moves(w, update):
    w = F.round_to([w], "bf16").item()
    gap = F.next_up(w, "bf16") - w if update > 0 else w - F.next_down(w, "bf16")
    return abs(update) > gap / 2


def update_scale(scale, tracker, found_inf, growth=2.0, backoff=0.5, interval=2000):
    if found_inf:
        return scale * backoff, 0
    tracker += 1
    if tracker == interval:
        grown = scale * growth
        return (grown if grown <= torch.finfo(torch.float32).max else scale), 0
    return scale, tracker


def training_memory_gib(n, precision):
    return ex04.expected_gib(n, precision)


def ring_allreduce_bytes(numel, world, dtype):
    return 2 * (world - 1) / world * numel * torch.tensor([], dtype=dtype).element_size()


PLAN = {"precision": "fp16", "ran_on_gpu": "fp16 autocast + GradScaler", "ran_on_cpu": "fp32"}
RIGHT = {
    "00.amp_settings": amp_settings,
    "01.decode_fp16": F.decode(ex01.DECODE_PATTERN, "fp16"),
    "01.bf16_integers": 256,
    "02.smallest_loss_scale": 2.0**15,
    "02.update_moves": moves,
    "03.update_scale": update_scale,
    "04.training_memory": training_memory_gib,
    "05.precision_plan": PLAN,
    "08.ring_allreduce_bytes": ring_allreduce_bytes,
    "08.fsdp2_dtypes": lambda loaded, policy: ex08.fsdp2_dtypes_key(loaded, policy),
}


def test_the_right_answers_pass():
    for name, answer in RIGHT.items():
        assert exercises.evaluate(name, answer), name
    survivors = [v for v in ex01.SURVIVAL_CANDIDATES if v in (0.1, 65519.0, 1e-7, 1e-4, 6e4)]
    assert exercises.evaluate("01.fp16_survivors", survivors)


# -------------------------------------------------------------------------- value answers
@pytest.mark.parametrize("name", ["01.decode_fp16", "01.bf16_integers", "02.smallest_loss_scale"])
@pytest.mark.parametrize(
    "bad", [NAN, INF, -INF, torch.tensor(NAN), "256", True, AlwaysEqual(), [2.0**15]]
)
def test_number_answers_reject_non_finite_and_wrong_types(name, bad):
    result = exercises.evaluate(name, bad)
    assert not result and result.message.startswith("Not yet:"), result


@pytest.mark.parametrize(
    "bad", [[NAN], [INF], [AlwaysEqual()], "0.1", [0.1, 65519.0, 1e-7, 1e-4, 6e4, NAN]]
)
def test_survivors_reject_non_finite_and_wrong_types(bad):
    assert not exercises.evaluate("01.fp16_survivors", bad)


# ----------------------------------------------------------------------- function answers
def _corrupt(func, change):
    return lambda *args: change(func(*args))


FUNCTION_CORRUPTIONS = {
    # the scaler flag: NaN is truthy, "yes"/"" have the right truthiness, 1/0 are ints
    "00.amp_settings": [
        lambda got: (got[0], NAN if got[1] else False),
        lambda got: (got[0], "yes" if got[1] else ""),
        lambda got: (got[0], int(got[1])),
        lambda got: (got[0], AlwaysEqual(got[1])),
    ],
    "02.update_moves": [
        lambda got: AlwaysEqual(got),
        lambda got: float(got),
        lambda got: NAN if got else False,
    ],
    "03.update_scale": [
        lambda got: (got[0], AlwaysEqual()),
        lambda got: (str(got[0]), got[1]),
        lambda got: (got[0], float(got[1])),
        lambda got: (NAN, got[1]),
        lambda got: (AlwaysEqual(value=got[0]), got[1]),
    ],
    "04.training_memory": [
        lambda got: NAN,
        lambda got: INF,
        lambda got: str(got),
        lambda got: AlwaysEqual(value=got),
        lambda got: [got],
    ],
    "08.ring_allreduce_bytes": [
        lambda got: NAN,
        lambda got: INF,
        lambda got: str(got),
        lambda got: AlwaysEqual(value=got),
    ],
    "08.fsdp2_dtypes": [
        lambda got: {k: AlwaysEqual() for k in got},
        lambda got: {k: str(v) for k, v in got.items()},
    ],
}


@pytest.mark.parametrize(
    ("name", "index"),
    [(name, i) for name, changes in FUNCTION_CORRUPTIONS.items() for i in range(len(changes))],
)
def test_function_answers_reject_non_finite_and_wrong_types(name, index):
    answer = _corrupt(RIGHT[name], FUNCTION_CORRUPTIONS[name][index])
    result = exercises.evaluate(name, answer)
    assert not result, f"{name} corruption {index} passed"
    assert result.message.startswith("Not yet:"), result.message


def test_the_04_memory_exercise_rejects_nan_with_a_clear_message():
    result = exercises.evaluate("04.training_memory", lambda n, precision: NAN)
    assert not result
    assert "finite number" in result.message and "nan" in result.message


def test_train_step_that_poisons_the_weights_fails():
    def train_step(model, optimizer, scaler, micro_batches, max_norm=1.0):
        ex03.reference_train_step(model, optimizer, scaler, micro_batches, max_norm)
        with torch.no_grad():
            next(model.parameters()).fill_(NAN)

    assert not exercises.evaluate("03.train_step", train_step)


# ---------------------------------------------------------------------------- dict answers
@pytest.mark.parametrize(
    "change",
    [
        {"precision": AlwaysEqual()},  # str() says "fp16", but it is no string
        {"ran_on_cpu": NAN},
        {"ran_on_gpu": ["fp16 autocast + GradScaler"]},
    ],
)
def test_precision_plan_rejects_wrong_types(change):
    assert not exercises.evaluate("05.precision_plan", PLAN | change)


def test_amp_settings_still_accepts_numpy_and_tensor_flags():
    import numpy as np

    assert exercises.evaluate(
        "00.amp_settings", _corrupt(amp_settings, lambda got: (got[0], np.bool_(got[1])))
    )
    assert ex00.CHECK_GPUS and recommend_precision(*ex00.CHECK_GPUS[0])


# ------------------------------------------------------------------------ the shared helpers
@given(st.floats(allow_nan=True, allow_infinity=True))
@settings(max_examples=200, deadline=None)
def test_expect_number_takes_exactly_the_finite_floats(x):
    if math.isfinite(x):
        assert exercises.expect_number(x) == x
    else:
        with pytest.raises(exercises.Incorrect, match="finite number"):
            exercises.expect_number(x)


@pytest.mark.parametrize("bad", ["1.5", b"1", True, None, [1.0], 1 + 2j, torch.ones(2), object()])
def test_expect_number_rejects_wrong_types(bad):
    with pytest.raises(exercises.Incorrect, match="should be a number"):
        exercises.expect_number(bad, "x")


def test_expect_number_integer_and_tensors():
    import numpy as np

    assert exercises.expect_number(np.float32(1.5)) == 1.5
    assert exercises.expect_number(torch.tensor(2.5)) == 2.5
    assert exercises.expect_number(np.int64(3), integer=True) == 3
    with pytest.raises(exercises.Incorrect, match="should be an int"):
        exercises.expect_number(3.0, "the tracker", integer=True)


def test_expect_bool():
    import numpy as np

    assert exercises.expect_bool(np.True_) is True
    assert exercises.expect_bool(torch.tensor(False)) is False
    for bad in (1, 0.0, NAN, "True", AlwaysEqual(), torch.tensor([True, False]), None):
        with pytest.raises(exercises.Incorrect, match="True or False"):
            exercises.expect_bool(bad)


def test_expect_equal_and_expect_close_are_not_fooled():
    with pytest.raises(exercises.Incorrect):
        exercises.expect_equal(AlwaysEqual(), 9, what="square(3)")
    with pytest.raises(exercises.Incorrect):
        exercises.expect_equal(AlwaysEqual(), (1, 2))
    with pytest.raises(exercises.Incorrect):
        exercises.expect_equal("x", "y")
    exercises.expect_equal(9.0, 9)
    exercises.expect_equal((1, 2), (1, 2))
    for bad in ("65504", True, INF, NAN, AlwaysEqual(value=65504.0)):
        with pytest.raises(exercises.Incorrect):
            exercises.expect_close(bad, 65504.0)
    with pytest.raises(exercises.Incorrect, match="should be a string"):
        exercises.expect_str(AlwaysEqual())
