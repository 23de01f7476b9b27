"""Issue 13 item 6 for notebook 06: no check passes NaN, inf, a value of the wrong type, or an
object whose ``__eq__`` is always True (and ``__ne__`` always False)."""

import math

import numpy as np
import pytest

from course_utils import exercises


class AlwaysEqual:
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = object.__hash__


class AlwaysEqualStr(str):
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = str.__hash__


class AlwaysEqualInt(int):
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = int.__hash__


JUNK = [math.nan, math.inf, -math.inf, AlwaysEqual(), "37", 37.0, [37], True]


@pytest.mark.parametrize("value", [*JUNK, AlwaysEqualInt(37)], ids=repr)
def test_find_bad_step_rejects_junk_returns(value):
    result = exercises.evaluate("06.find_bad_step", lambda batches: value)
    assert not result.passed


def test_find_bad_step_accepts_a_numpy_int_from_the_right_function():
    def right(batches):
        for index, batch in enumerate(batches):
            if (batch["labels"][:, 1:] != -100).sum() == 0:
                return np.int64(index + 1)
        return None

    assert exercises.evaluate("06.find_bad_step", right).passed


@pytest.mark.parametrize(
    "value", [*JUNK, AlwaysEqualStr("transformer.h.0.mlp.c_proj"), None], ids=repr
)
def test_overflowing_module_rejects_junk(value):
    assert not exercises.evaluate("06.overflowing_module", value).passed


@pytest.mark.parametrize(
    "fix",
    [
        {"lr": math.nan},
        {"lr": math.inf},
        {"lr": AlwaysEqual()},
        {"max_grad_norm": math.nan},
        {"max_grad_norm": -math.inf},
        {"precision": AlwaysEqual()},
        {"precision": AlwaysEqualStr("fp32")},
        {AlwaysEqualStr("lr"): 1e-4},
        {AlwaysEqual(): 1e-4},
        {"keep_fp32": AlwaysEqual()},
        {"keep_fp32": [AlwaysEqualStr("c_proj")]},
        {"keep_fp32": "c_proj"},
        {"upcast_attention": AlwaysEqual()},
        {"upcast_attention": math.nan},
        {"lr": True},
    ],
    ids=repr,
)
def test_single_fix_rejects_junk_without_training(fix, monkeypatch):
    from course_utils.nan import scenarios as scenarios

    def no_training(*args, **kwargs):
        raise AssertionError("the check trained on a junk answer")

    monkeypatch.setattr(scenarios.Fp16RangeScenario, "train", no_training)
    result = exercises.evaluate("06.single_fix", fix)
    assert not result.passed and "check trained" not in result.message


@pytest.mark.parametrize(
    "action",
    [AlwaysEqual(), AlwaysEqualStr("lower_lr"), math.nan, math.inf, None, 3],
    ids=repr,
)
def test_tutorial_answer_rejects_junk_actions(action):
    answer = {"finite_outlier": action, "nonfinite_value": action, "divergence": action}
    assert not exercises.evaluate("06.tutorial_question", answer).passed


def test_tutorial_answer_rejects_junk_keys():
    right = {"finite_outlier": "max_grad_norm", "nonfinite_value": "rollback_skip"}
    assert not exercises.evaluate(
        "06.tutorial_question", right | {AlwaysEqualStr("divergence"): "lower_lr"}
    ).passed
    assert not exercises.evaluate("06.tutorial_question", AlwaysEqual()).passed
