"""course_utils.module_dtypes: output dtypes under autocast, no hooks left behind."""

import pytest
import torch
from torch import nn

from course_utils.module_dtypes import parameter_dtypes, record_output_dtypes


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8), nn.Linear(8, 2))


def test_fp32_outputs_without_autocast():
    net = _net()
    with record_output_dtypes(net) as seen:
        net(torch.randn(4, 8))
    assert seen == {"0": torch.float32, "1": torch.float32, "2": torch.float32}


def test_autocast_bf16_on_cpu_runs_linear_in_bf16_and_loss_in_fp32():
    net = nn.ModuleDict({"body": _net(), "loss": nn.MSELoss()})
    x, y = torch.randn(4, 8), torch.randn(4, 2)
    with record_output_dtypes(net) as seen, torch.autocast("cpu", dtype=torch.bfloat16):
        net["loss"](net["body"](x), y)
    assert seen["body.0"] is torch.bfloat16 and seen["body.2"] is torch.bfloat16
    # On the CPU, layer_norm follows its (bf16) input; on CUDA autocast runs it in fp32.
    assert seen["body.1"] is torch.bfloat16
    assert seen["loss"] is torch.float32  # mse_loss is on autocast's fp32 list
    assert parameter_dtypes(net) == {torch.float32: sum(p.numel() for p in net.parameters())}


def test_hooks_removed_even_on_error():
    net = _net()
    with pytest.raises(RuntimeError), record_output_dtypes(net):
        net(torch.randn(4, 3))  # wrong width
    assert all(not m._forward_hooks for m in net.modules())


def test_not_a_module_is_a_clear_error():
    with pytest.raises(TypeError, match="needs a torch.nn.Module"), record_output_dtypes("gpt2"):
        pass
