"""course_utils.scaled_loss: a loss multiplied by a factor gives gradients multiplied by it."""

import pytest
import torch

from course_utils.scaled_loss import ScaledLoss


class Quadratic(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))

    def forward(self, x):
        return (self.w * x).pow(2).sum()  # a bare tensor loss, like a custom model's


class HasLoss(Quadratic):
    def forward(self, x, labels=None):
        return type("Out", (), {"loss": super().forward(x) if labels is not None else None})()


def test_gradients_scale_exactly_with_a_power_of_two():
    x = torch.tensor([0.3, 0.7])
    plain, wrapped = Quadratic(), ScaledLoss(Quadratic(), 2.0**-10)
    plain(x).backward()
    loss = wrapped(x=x).loss
    loss.backward()
    assert torch.equal(wrapped.model.w.grad, plain.w.grad * 2.0**-10)
    assert loss.item() == pytest.approx(plain(x).item() * 2.0**-10)
    assert list(wrapped.parameters()) == [wrapped.model.w]  # trains the wrapped model in place
    assert "factor=0.000976562" in repr(wrapped)


def test_reads_the_loss_attribute_and_explains_a_missing_one():
    x = torch.tensor([1.0, 1.0])
    assert ScaledLoss(HasLoss(), 0.5)(x=x, labels=True).loss.item() == pytest.approx(2.5)
    with pytest.raises(ValueError, match="labels"):
        ScaledLoss(HasLoss(), 0.5)(x=x)


@pytest.mark.parametrize(
    ("model", "factor", "error"),
    [
        ("gpt2", 1.0, TypeError),
        (Quadratic(), "small", TypeError),
        (Quadratic(), True, TypeError),
        (Quadratic(), 0.0, ValueError),
        (Quadratic(), float("inf"), ValueError),
        (Quadratic(), -1.0, ValueError),
    ],
)
def test_bad_arguments(model, factor, error):
    with pytest.raises(error):
        ScaledLoss(model, factor)
