"""The checks of notebooks 01 and 02: right answers pass, typical mistakes get a precise message."""

import pytest
import torch

from course_utils import formats as F
from course_utils.exercises import evaluate
from course_utils.exercises.nb01 import SURVIVAL_CANDIDATES
from course_utils.exercises.nb02 import MOVE_CASES


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (-13.0, None),
        (torch.tensor(-13.0), None),
        (13.0, "wrong sign"),
        (-5.0, "implicit leading 1"),
        (-1.625 * 2**18, "forgets the bias"),
        (-12.0, "is not the value"),
        ("-13", "should be a number"),
    ],
)
def test_decode_fp16(answer, message):
    result = evaluate("01.decode_fp16", answer)
    assert result.passed == (message is None)
    if message:
        assert message in result.message


def test_fp16_survivors():
    right = [0.1, 65519.0, 1e-7, 1e-4, 60000.0]
    assert evaluate("01.fp16_survivors", right)
    assert evaluate("01.fp16_survivors", list(reversed(right)))
    missed = evaluate("01.fp16_survivors", [0.1, 1e-7, 1e-4, 60000.0])
    assert not missed and "65519.0" in missed.message and "survive too" in missed.message
    extra = evaluate("01.fp16_survivors", [*right, 70000.0])
    assert not extra and "70000.0 -> inf" in extra.message
    assert "not in SURVIVAL_CANDIDATES" in evaluate("01.fp16_survivors", [0.2]).message
    assert not evaluate("01.fp16_survivors", "0.1")
    # the candidates include both sides of both edges
    fates = F.round_to(SURVIVAL_CANDIDATES, "fp16")
    assert fates.isinf().any() and (fates == 0).any() and (fates == 65504).any()


def test_bf16_integers():
    assert evaluate("01.bf16_integers", 256)
    assert "rounds to 256" in evaluate("01.bf16_integers", 257).message
    assert "fp16's answer" in evaluate("01.bf16_integers", 2048).message
    assert not evaluate("01.bf16_integers", 128)


def test_smallest_loss_scale():
    assert evaluate("02.smallest_loss_scale", 2**15)
    assert evaluate("02.smallest_loss_scale", 32768.0)
    assert "smaller power of two works" in evaluate("02.smallest_loss_scale", 2**16).message
    assert "still zero or subnormal" in evaluate("02.smallest_loss_scale", 2**14).message
    assert "not a power of two" in evaluate("02.smallest_loss_scale", 30000).message
    assert "positive number" in evaluate("02.smallest_loss_scale", -1).message


def moves_right(w, update):
    w = F.round_to([w], "bf16").item()
    gap = F.next_up(w, "bf16") - w if update > 0 else w - F.next_down(w, "bf16")
    return abs(update) > gap / 2


def test_update_moves():
    assert evaluate("02.update_moves", moves_right)
    # the classic mistake: half of ulp(w), the gap *above* w, for downward updates too
    naive = evaluate("02.update_moves", lambda w, u: abs(u) > F.ulp(w, "bf16") / 2)
    assert not naive and "2^-9" in naive.hint
    assert not evaluate("02.update_moves", lambda w, u: True)
    assert "True or False" in evaluate("02.update_moves", lambda w, u: "yes").message
    # the cases mix both verdicts and avoid exact ties
    verdicts = [moves_right(w, u) for w, u in MOVE_CASES]
    assert 0 < sum(verdicts) < len(verdicts)
