"""Notebook 00's exercise check: right answers pass, each kind of wrong answer gets a hint."""

import torch

from course_utils.exercises import evaluate


def right(capability):
    return (torch.bfloat16, False) if capability[0] >= 8 else (torch.float16, True)


def test_right_answer_passes():
    assert evaluate("00.amp_settings", right).passed


def test_bf16_everywhere_is_wrong_for_volta():
    result = evaluate("00.amp_settings", lambda cap: (torch.bfloat16, False))
    assert not result.passed and "V100" in result.message and result.hint


def test_missing_scaler_for_fp16_is_caught():
    result = evaluate("00.amp_settings", lambda cap: (right(cap)[0], False))
    assert not result.passed and "GradScaler" in result.message


def test_not_a_function_and_stub_are_explained():
    assert "should be a function" in evaluate("00.amp_settings", torch.bfloat16).message
    assert "Not done yet" in evaluate("00.amp_settings", ...).message
    assert "pair" in evaluate("00.amp_settings", lambda cap: torch.bfloat16).message
