"""Where did the NaN come from? Find the first module whose output (or gradient) is not finite.

Taught in notebook 06, section "2. Diagnose: which step, which batch, which module" (and its
exercise 2).

    report = find_first_nonfinite(model, batch)
    if report is not None:
        print(report)              # module, phase, and min/max/abs-max of inputs and outputs

``find_first_nonfinite`` runs one forward and one backward pass with temporary hooks:

- forward: a hook on every module checks its outputs as it finishes. Modules finish inner
  first, so the first output that is not finite belongs to the module where the NaN or inf
  appeared (or to the first submodule after it, when it appeared in its parent's own code:
  the report says so when that module's inputs were already non-finite);
- backward (only if the forward pass and the loss were finite): hooks on every module output
  and every parameter check each gradient as autograd computes it, in the order it does.

All hooks are removed before it returns, and the gradients the model had are put back.

Also here: ``first_nonfinite_step(history)``, ``grad_norm_spikes(history)`` (which step?) and
``nonfinite_parameters(model)`` (which weights are already damaged?).
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from course_utils.precision import precision_context

PHASES = ("forward", "backward")


# ----------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class TensorStats:
    """A tensor summarised: shape, dtype, NaN and inf counts, min/max/abs-max of finite values."""

    name: str  # what it is: "input[0]", "output", "weight", "grad of output"...
    shape: tuple[int, ...]
    dtype: str
    nan: int
    inf: int
    min: float  # over the finite values (nan if there are none)
    max: float
    absmax: float

    @property
    def finite(self) -> bool:
        return self.nan == 0 and self.inf == 0

    @classmethod
    def of(cls, tensor: torch.Tensor, name: str) -> TensorStats:
        t = tensor.detach()
        if t.is_floating_point() or t.is_complex():
            nan = int(torch.isnan(t).sum())
            inf = int(torch.isinf(t).sum())
            finite = t[torch.isfinite(t)].float()
        else:  # token ids, masks
            nan = inf = 0
            finite = t
        if finite.numel():
            low, high = float(finite.min()), float(finite.max())
            absmax = max(abs(low), abs(high))
        else:
            low = high = absmax = math.nan
        return cls(name, tuple(t.shape), str(t.dtype).replace("torch.", ""), nan, inf,
                   low, high, absmax)  # fmt: skip

    def __str__(self) -> str:
        bad = f"nan={self.nan} inf={self.inf}" if not self.finite else "finite"
        return (
            f"{self.name:<18} {self.dtype:<9} {str(list(self.shape)):<16} {bad:<22} "
            f"min {self.min:<10.3g} max {self.max:<10.3g} absmax {self.absmax:.3g}"
        )


# ----------------------------------------------------------------------------- the report


@dataclass
class NonFiniteReport:
    """Where the first non-finite value appeared.

    ``module`` is the module's name in ``model.named_modules()`` ("" is the model itself, whose
    output holds the loss), ``phase`` is "forward" or "backward". In forward, ``outputs`` are the
    module's outputs and ``inputs`` its inputs; in backward, ``outputs`` are the gradients that
    reached its outputs (or a parameter's gradient) and ``inputs`` is empty.
    """

    module: str
    module_type: str
    phase: str
    inputs: list[TensorStats] = field(default_factory=list)
    outputs: list[TensorStats] = field(default_factory=list)
    parameters: list[TensorStats] = field(default_factory=list)
    loss: float | None = None
    note: str = ""

    @property
    def inputs_finite(self) -> bool:
        return all(stats.finite for stats in self.inputs)

    def __str__(self) -> str:
        where = repr(self.module) if self.module else "'' (the model itself)"
        lines = [f"first non-finite value: {self.phase} pass, module {where} ({self.module_type})"]
        for title, group in (("inputs", self.inputs), ("outputs", self.outputs),
                             ("own parameters", self.parameters)):  # fmt: skip
            if group:
                lines.append(f"  {title}:")
                lines.extend(f"    {stats}" for stats in group)
        if self.loss is not None:
            lines.append(f"  loss: {self.loss:.4g}")
        if self.note:
            lines.append(f"  note: {self.note}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- the search


def find_first_nonfinite(
    model: torch.nn.Module,
    batch: Mapping[str, Any],
    *,
    precision: str = "fp32",
) -> NonFiniteReport | None:
    """Run one forward and backward pass of ``model(**batch)`` and return where the first
    non-finite value appeared, or None if everything (outputs, loss, gradients) was finite.

    ``precision``: the mode of ``course_utils.precision`` to run the forward pass in ("fp32",
    "bf16", "fp16-emulated"...). The model's weights and mode (train/eval) are not changed; its
    ``.grad`` tensors are restored afterwards; no hooks are left on it.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(batch, Mapping):
        raise TypeError(
            "batch must be a dict such as {'input_ids': ..., 'labels': ...}, "
            f"got {type(batch).__name__}"
        )
    params = list(model.parameters())
    device = params[0].device if params else torch.device("cpu")
    batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    names = {module: name for name, module in model.named_modules()}
    owners = _parameter_owners(model)
    search = _Search(names)
    handles = [m.register_forward_hook(search.forward_hook, with_kwargs=True) for m in names]
    saved_grads = [p.grad for p in params]
    try:
        with precision_context(precision, device.type):
            output = model(**batch)
        for handle in handles:  # the backward hooks below are registered on tensors
            handle.remove()
        handles = []
        loss = output if isinstance(output, torch.Tensor) else getattr(output, "loss", None)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise ValueError(
                "find_first_nonfinite needs a loss: model(**batch) must return a scalar tensor or "
                "an output with .loss (for a causal LM, put 'labels' in the batch)"
            )
        loss_value = float(loss.detach().float())
        if search.report is not None:
            search.report.loss = loss_value
            return search.report
        if not math.isfinite(loss_value):  # no module output was bad: the loss computation was
            return NonFiniteReport(
                module="",
                module_type=type(model).__name__,
                phase="forward",
                outputs=[TensorStats.of(loss, "loss")],
                loss=loss_value,
                note="every module output was finite: the loss computation itself overflowed",
            )
        if not loss.requires_grad:
            raise ValueError("the loss does not require grad: are all parameters frozen?")
        for param in params:
            param.grad = None
            if param.requires_grad:
                owner = owners.get(param, ("", ""))
                handles.append(param.register_hook(search.parameter_hook(param, *owner)))
        loss.backward()
        if search.report is not None:
            search.report.loss = loss_value
        return search.report
    finally:
        for handle in handles:
            handle.remove()
        search.active = False  # tensor hooks of a graph that is still alive now do nothing
        for param, grad in zip(params, saved_grads, strict=True):
            param.grad = grad


class _Search:
    """The state of one search: module names and the first report found."""

    def __init__(self, names: dict[torch.nn.Module, str]) -> None:
        self.names = names
        self.report: NonFiniteReport | None = None
        self.active = True

    def forward_hook(self, module, args, kwargs, output) -> None:
        if not self.active:
            return
        outputs = list(_tensors(output, "output"))
        if self.report is None and not all(_finite(t) for _, t in outputs):
            inputs = list(_tensors(args, "input")) + list(_tensors(kwargs, "input"))
            report = NonFiniteReport(
                module=self.names[module],
                module_type=type(module).__name__,
                phase="forward",
                inputs=[TensorStats.of(t, name) for name, t in inputs],
                outputs=[TensorStats.of(t, name) for name, t in outputs],
                parameters=[
                    TensorStats.of(p, n) for n, p in module.named_parameters(recurse=False)
                ],
            )
            if not report.inputs_finite:
                report.note = (
                    "its inputs were already non-finite: the NaN/inf appeared in code that is not "
                    "a submodule (look at the forward() of its parent module, "
                    f"{_parent(report.module)!r})"
                )
            self.report = report
        for name, tensor in outputs:  # watch the gradients that will reach these outputs
            if tensor.requires_grad and tensor.is_floating_point():
                tensor.register_hook(self.output_grad_hook(module, name))

    def output_grad_hook(self, module, output_name: str):
        def hook(grad: torch.Tensor) -> None:
            if self.active and self.report is None and not _finite(grad):
                self.report = NonFiniteReport(
                    module=self.names[module],
                    module_type=type(module).__name__,
                    phase="backward",
                    outputs=[TensorStats.of(grad, f"grad of {output_name}")],
                )

        return hook

    def parameter_hook(self, param, owner_name: str, param_name: str):
        def hook(grad: torch.Tensor) -> None:
            if self.active and self.report is None and not _finite(grad):
                self.report = NonFiniteReport(
                    module=owner_name,
                    module_type=type(self._module(owner_name)).__name__,
                    phase="backward",
                    outputs=[TensorStats.of(grad, f"grad of {param_name}")],
                    parameters=[TensorStats.of(param, param_name)],
                    note=f"the gradient of its parameter {param_name!r} is not finite, while "
                    "the gradients reaching the module outputs were",
                )

        return hook

    def _module(self, name: str) -> torch.nn.Module:
        return next(m for m, n in self.names.items() if n == name)


def _finite(tensor: torch.Tensor) -> bool:
    if not (tensor.is_floating_point() or tensor.is_complex()):
        return True
    return bool(torch.isfinite(tensor).all())


def _tensors(value: Any, prefix: str) -> Iterable[tuple[str, torch.Tensor]]:
    """(name, tensor) for every tensor in a module's inputs or output (tuples, dicts, outputs)."""
    if isinstance(value, torch.Tensor):
        yield prefix, value
    elif isinstance(value, Mapping):  # kwargs, ModelOutput
        for key, item in value.items():
            yield from _tensors(item, f"{prefix}.{key}" if prefix != "input" else str(key))
    elif isinstance(value, (tuple, list)):
        for index, item in enumerate(value):
            yield from _tensors(item, f"{prefix}[{index}]")


def _parent(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else ""


def _parameter_owners(model: torch.nn.Module) -> dict[torch.nn.Parameter, tuple[str, str]]:
    """parameter -> (name of the first module that holds it, its local name)."""
    owners: dict[torch.nn.Parameter, tuple[str, str]] = {}
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            owners.setdefault(param, (module_name, param_name))
    return owners


# ----------------------------------------------------------------------------- which step? which weights?


def first_nonfinite_step(history) -> int | None:
    """The first step of a ``course_utils.train`` History whose loss or gradient norm is not
    finite (None if there is none)."""
    for record in history:
        if not (math.isfinite(record.loss) and math.isfinite(record.grad_norm)):
            return record.step
    return None


def grad_norm_spikes(history, factor: float = 10.0, window: int = 20) -> list[int]:
    """Steps whose gradient norm is more than ``factor`` times the median of the ``window``
    steps before (non-finite norms count as spikes); the first ``window`` steps are not judged."""
    if not (isinstance(window, int) and window >= 1):
        raise ValueError(f"window must be an int >= 1, got {window!r}")
    if not factor > 1:
        raise ValueError(f"factor must be > 1, got {factor!r}")
    norms = [record.grad_norm for record in history]
    steps = [record.step for record in history]
    spikes = []
    for i in range(window, len(norms)):
        before = [n for n in norms[i - window : i] if math.isfinite(n)]
        if not math.isfinite(norms[i]) or (
            before and norms[i] > factor * statistics.median(before)
        ):
            spikes.append(steps[i])
    return spikes


def nonfinite_parameters(model: torch.nn.Module) -> dict[str, int]:
    """Parameter name -> how many of its values are NaN or inf (only the damaged ones)."""
    damaged = {}
    for name, param in model.named_parameters():
        count = int((~torch.isfinite(param.detach())).sum())
        if count:
            damaged[name] = count
    return damaged


__all__ = [
    "DebuggerRun",
    "NonFiniteReport",
    "TensorStats",
    "find_first_nonfinite",
    "first_nonfinite_step",
    "grad_norm_spikes",
    "nonfinite_parameters",
    "adam_step_bound",
    "largest_weight_change",
    "run_debugger",
]


@dataclass
class DebuggerRun:
    """What transformers' ``DebugUnderflowOverflow`` did on one forward pass (see ``run_debugger``).

    ``frames``: what it printed, parsed: one (module name, {variable: abs max}) per module
    frame, e.g. ``("transformer.h.0.mlp.c_proj", {"weight": 2.1e3, "input[0]": 4.2, "output":
    7.9e4})``; in trace mode, every module of the pass, in the order they finished."""

    raised: bool
    stopped_at: str | None
    hooks_left: int
    text: str
    frames: list[tuple[str, dict[str, float]]] = field(default_factory=list)

    def output_absmax(self, suffix: str = "") -> list[tuple[str, float]]:
        """(module, abs max of its output) for the frames whose module name ends with ``suffix``."""
        return [(name, values["output"]) for name, values in self.frames
                if name.endswith(suffix) and "output" in values]  # fmt: skip


def run_debugger(
    model: torch.nn.Module,
    batch: Mapping[str, torch.Tensor],
    *,
    precision: str = "fp32",
    trace: bool = False,
) -> DebuggerRun:
    """One forward pass of a copy of ``model`` under transformers' ``DebugUnderflowOverflow``, for a
    side-by-side with ``find_first_nonfinite``: whether it raised, the module frame it stopped at,
    how many forward hooks it left on the (copied) model, what it printed, and the abs-max
    values it printed, parsed (``frames``).

    ``precision``: a ``course_utils.precision`` mode for the forward pass ("fp16-emulated"...).
    ``trace=True``: its trace mode (``trace_batch_nums=[0]``): it prints the abs min and max of
    every module's weights, inputs and outputs, and does not stop at an overflow.
    Taught in notebook 06, section 2 and section 4."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(batch, Mapping):
        raise TypeError(f"batch must be a dict of tensors, got {type(batch).__name__}")
    from transformers.debug_utils import DebugUnderflowOverflow

    model = copy.deepcopy(model)
    device = next(model.parameters()).device
    batch = {key: value.to(device) for key, value in batch.items()}
    DebugUnderflowOverflow(model, trace_batch_nums=[0] if trace else None)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed), precision_context(precision, device.type):
            model(**batch)
        raised = False
    except ValueError:
        raised = True
    text = printed.getvalue()
    frames = _debugger_frames(text)
    hooks = sum(len(m._forward_hooks) for m in model.modules())
    stopped = frames[-1][0] if raised and frames else None
    return DebuggerRun(raised, stopped, hooks, text, frames)


def _debugger_frames(text: str) -> list[tuple[str, dict[str, float]]]:
    """Parse DebugUnderflowOverflow's printout: a frame header is 17 spaces, the module name and
    its class; each variable line is "abs_min abs_max name"."""
    frames: list[tuple[str, dict[str, float]]] = []
    for line in text.splitlines():
        parts = line.split()
        if line.startswith(" " * 17) and len(parts) == 2 and not parts[0].startswith("*"):
            frames.append((parts[0], {}))
        elif frames and len(parts) == 3:
            try:
                frames[-1][1][parts[2]] = float(parts[1])
            except ValueError:
                continue
    return frames


def largest_weight_change(before: Mapping[str, torch.Tensor], model: torch.nn.Module) -> float:
    """The largest |w_after - w_before| over every parameter of ``model``: ``before`` is a state
    dict saved earlier (``model.state_dict()`` or a checkpoint's ``"model"``). Taught in notebook
    06, section 3: under AdamW, one step moves no weight much further than the learning rate
    (``adam_step_bound``), even for a huge finite gradient; the moments still carry it on."""
    if not isinstance(before, Mapping):
        raise TypeError(f"before must be a state dict, got {type(before).__name__}")
    largest = 0.0
    for name, param in model.named_parameters():
        if name not in before:
            raise ValueError(f"parameter {name!r} is not in the state dict given as 'before'")
        old = before[name].to(param.device, param.dtype)
        if old.shape != param.shape:
            raise ValueError(
                f"parameter {name!r}: shape {tuple(param.shape)} vs {tuple(old.shape)}"
            )
        largest = max(largest, float((param.detach() - old).abs().max()))
    return largest


def adam_step_bound(lr: float, betas: tuple[float, float] = (0.9, 0.999)) -> float:
    """Kingma & Ba (2015, section 2.1, https://arxiv.org/abs/1412.6980): Adam's step on one
    weight is at most about ``lr * (1 - beta1) / sqrt(1 - beta2)`` when ``1 - beta1 >
    sqrt(1 - beta2)``, else about ``lr``, whatever the size of the gradient (3.16 x lr for
    PyTorch's defaults). AdamW's weight decay adds ``lr * weight_decay * |w|``. A bound on one
    step, not on the run: the outlier stays in the moments and moves the later steps too."""
    for value, name in ((lr, "lr"),):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    beta1, beta2 = betas
    if not (0 <= beta1 < 1 and 0 <= beta2 < 1):
        raise ValueError(f"betas must be in [0, 1), got {betas!r}")
    return lr * max(1.0, (1 - beta1) / math.sqrt(1 - beta2))
