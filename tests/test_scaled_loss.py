"""course_utils.scaled_loss: a loss multiplied by a factor gives gradients multiplied by it."""

import copy

import pytest
import torch

from course_utils.scaled_loss import GradientAgreement, ScaledLoss


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


class Regression(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(8, 8)

    def forward(self, x, y):
        return torch.nn.functional.mse_loss(self.linear(x), y)


def _regression_batch():
    generator = torch.Generator().manual_seed(1)
    return {
        "x": torch.randn(16, 8, generator=generator),
        "y": torch.randn(16, 8, generator=generator),
    }


def test_gradient_agreement_is_one_in_fp32_and_less_when_fp16_flushes():
    from course_utils.train import train

    batch = _regression_batch()
    same = GradientAgreement(batch)
    train(Regression(), batch, steps=2, precision="fp32", callbacks=[same], progress=False)
    assert same.cosines == pytest.approx([1.0, 1.0], abs=1e-6)
    flushed = GradientAgreement(batch)
    tiny = ScaledLoss(Regression(), 2.0**-30)  # most gradients below fp16's smallest subnormal
    train(tiny, batch, steps=2, precision="fp16-emulated", scaler=None, callbacks=[flushed],
          progress=False)  # fmt: skip
    assert all(cosine < 0.999 for cosine in flushed.cosines)


def test_gradient_agreement_substitute_keeps_the_zeros_and_fp32_values_elsewhere():
    from course_utils.train import train

    batch = _regression_batch()
    seen = []
    probe = GradientAgreement(batch, substitute=True)
    model = ScaledLoss(Regression(), 2.0**-18)
    reference = copy.deepcopy(model)
    reference(**batch).loss.backward()
    train(model, batch, steps=1, precision="fp16-emulated", scaler=None,
          callbacks=[probe, lambda s: seen.append(model.model.linear.weight.grad.clone())],
          progress=False)  # fmt: skip
    grad, fp32 = seen[0], reference.model.linear.weight.grad
    assert (grad == 0).any() and (grad != 0).any()
    assert torch.equal(grad[grad != 0], fp32[grad != 0])


def test_gradient_agreement_bad_input():
    with pytest.raises(TypeError, match="dict"):
        GradientAgreement([1, 2])
    with pytest.raises(TypeError, match="True or False"):
        GradientAgreement({}, substitute="yes")


def test_plot_gradient_drift_draws_each_run_and_the_cosines():
    import matplotlib.pyplot as plt

    from course_utils.scaled_loss import DRIFT_COLOURS, plot_gradient_drift

    fig = plot_gradient_drift({"fp32": [3.0, 2.0, 1.5], "fp16": [3.0, 2.5, 2.8]}, [0.9, 0.5, 0.1])
    ax_loss, ax_cos = fig.axes
    assert [line.get_label() for line in ax_loss.get_lines()] == ["fp32", "fp16"]
    assert [line.get_color() for line in ax_loss.get_lines()] == list(DRIFT_COLOURS[:2])
    assert list(ax_loss.get_lines()[1].get_xdata()) == [1, 2, 3]
    assert list(ax_cos.get_lines()[0].get_ydata()) == [0.9, 0.5, 0.1]
    assert ax_cos.get_ylabel() == "cosine(fp16 gradient, fp32 gradient)"
    plt.close(fig)
    with pytest.raises(TypeError, match="non-empty dict"):
        plot_gradient_drift([], [0.5])
    with pytest.raises(ValueError, match="cosines is empty"):
        plot_gradient_drift({"fp32": [1.0]}, [])
    with pytest.raises(ValueError, match="at most"):
        plot_gradient_drift({str(k): [1.0] for k in range(9)}, [0.5])
