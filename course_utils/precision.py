"""Precision modes of the course's training loop, and fp16 *emulated* on fp32 hardware.

Taught in notebook 03, section "1. The problem: fp16 flushes small gradients to zero" (a run in
"fp16-emulated"); ``course_utils.train`` runs every mode.

``precision_context(precision, device_type)`` is the one ``with`` block the forward pass runs in:

- ``"fp32"`` and ``"bf16-pure"``: nothing (the weights' own dtype decides);
- ``"bf16"`` / ``"fp16"``: ``torch.autocast(device_type, dtype)``;
- ``"fp16-emulated"``: ``EmulatedFp16Autocast``, fp16 numerics computed in fp32.

Why emulate? Most CPUs have no fp16 arithmetic units, so real fp16 matmuls there are far slower
than fp32 (notebook 07 measures by how much). A GPU's tensor cores take fp16 inputs, multiply them
exactly, add the products in fp32 and round the result to fp16. The same numbers come out of
fp32 hardware if every input of a matmul is rounded to fp16 first and its output is rounded
to fp16 after, and, in backward, every gradient that autocast would hold in fp16 is rounded too.
That is what this module does, op by op, as autocast does.
"""

from __future__ import annotations

import contextlib
from collections import Counter

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from course_utils.env import pick_device

# The course's one vocabulary of precision names. Every other module imports these.
# The three number formats the course compares, in the order it introduces them.
FORMATS: tuple[str, ...] = ("fp32", "bf16", "fp16")
# Formats a matmul benchmark can time: tf32 is fp32 storage with TF32 tensor-core maths, fp8 is E4M3.
MATMUL_FORMATS: tuple[str, ...] = ("fp32", "tf32", "bf16", "fp16", "fp8")
# name -> torch dtype (storage dtype: tf32 is stored as fp32; fp8 only where torch has it).
DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "tf32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
    "fp8": torch.float8_e4m3fn,
}
_LONG_NAMES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}
_SHORT_NAMES: dict[torch.dtype, str] = {
    torch.float32: "fp32",
    torch.bfloat16: "bf16",
    torch.float16: "fp16",
    torch.float64: "fp64",
    torch.float8_e4m3fn: "fp8_e4m3",
    torch.float8_e5m2: "fp8_e5m2",
    torch.int64: "int64",
    torch.int32: "int32",
    torch.uint8: "uint8",
    torch.int8: "int8",
    torch.bool: "bool",
}

# the short names of the floating-point dtypes (what an op trace counts as "float" work)
FLOATING_NAMES: frozenset[str] = frozenset(
    name for dtype, name in _SHORT_NAMES.items() if dtype.is_floating_point
)


def to_dtype(name: object) -> torch.dtype:
    """``"bf16"`` (or ``"bfloat16"``) -> ``torch.bfloat16``; a clear ValueError for anything else."""
    if isinstance(name, torch.dtype):
        return name
    key = _LONG_NAMES.get(name, name) if isinstance(name, str) else None
    if key not in DTYPES:
        valid = ", ".join(repr(n) for n in DTYPES)
        raise ValueError(f"unknown precision name {name!r}: choose one of {valid}")
    return DTYPES[key]


def dtype_name(dtype: torch.dtype | None, *, long: bool = False) -> str:
    """``torch.bfloat16`` -> ``"bf16"`` (``long=True``: ``"bfloat16"``); None -> ``"none"``."""
    if dtype is None:
        return "none"
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"expected a torch.dtype, got {dtype!r}")
    if long:
        return str(dtype).removeprefix("torch.")
    return _SHORT_NAMES.get(dtype, str(dtype).removeprefix("torch."))


# Training-loop modes: name -> what it means; the three FORMATS first, in the same order.
# Two words with one meaning each, everywhere in the course:
# - "pure bf16": the trainable weights are bf16, so there are no fp32 master weights and every
#   optimizer update is rounded to bf16 (with or without autocast around the forward pass).
# - "emulated": said of the course's own fp16 emulation ("fp16-emulated": fp16 rounding computed
#   in fp32 on a CPU). CUDA running bf16 on a GPU without bf16 tensor cores (compute capability
#   below 8.0) is "bf16 without native support" or "CUDA's bf16 emulation", always with "CUDA".
PRECISIONS: dict[str, str] = {
    "fp32": "fp32 weights and maths: the baseline",
    "bf16": "autocast to bfloat16: matmuls in bf16, weights and optimizer state in fp32",
    "fp16": "autocast to float16 + loss scaling: fast only on a GPU",
    "bf16-pure": "pure bf16: weights, gradients and optimizer state all in bfloat16, so no fp32 "
    "master weights; this loop adds no autocast",
    "fp16-emulated": "autocast-fp16 numerics computed in fp32 (fp32 speed on a CPU) + loss scaling",
}

AUTOCAST_DTYPES: dict[str, torch.dtype] = {name: DTYPES[name] for name in ("bf16", "fp16")}
assert tuple(PRECISIONS)[:3] == FORMATS


def check_precision(precision: object) -> str:
    """Return ``precision`` if it names a mode, else raise a ValueError that lists the modes."""
    if not isinstance(precision, str) or precision not in PRECISIONS:
        valid = ", ".join(repr(name) for name in PRECISIONS)
        raise ValueError(f"unknown precision {precision!r}: choose one of {valid}")
    return precision


def weight_dtype(precision: str) -> torch.dtype:
    """The dtype the weights live in: bf16 for "bf16-pure", fp32 (master weights) otherwise."""
    return torch.bfloat16 if check_precision(precision) == "bf16-pure" else torch.float32


def uses_loss_scaling(precision: str) -> bool:
    """True for the fp16 modes: fp16 gradients underflow without a loss scale, bf16 ones do not."""
    return check_precision(precision) in ("fp16", "fp16-emulated")


def precision_context(
    precision: str, device_type: str | torch.device = "cpu"
) -> contextlib.AbstractContextManager:
    """The context the forward pass (and the loss) runs in for ``precision``, on ``device_type``
    ("cpu", "cuda", or a ``torch.device``). The device goes through ``env.pick_device``: one
    that is not there is an error here (``torch.autocast`` would only warn and run fp32)."""
    precision = check_precision(precision)
    device_type = pick_device(device_type).type
    if precision in AUTOCAST_DTYPES:
        return torch.autocast(device_type, dtype=AUTOCAST_DTYPES[precision])
    if precision == "fp16-emulated":
        return EmulatedFp16Autocast()
    return contextlib.nullcontext()


class RoundToFp16(torch.autograd.Function):
    """A cast to fp16 and back, in both directions: the forward rounds the tensor to the nearest
    fp16 value (overflow -> inf, tiny values -> subnormals or 0), the backward rounds the
    incoming gradient the same way, as the gradient of a real fp16 tensor would be."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.to(torch.float16).to(tensor.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.to(torch.float16).to(grad.dtype)


def round_fp16(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` rounded to fp16 values, kept in its own dtype (differentiable, see RoundToFp16)."""
    return RoundToFp16.apply(tensor)


# The ops autocast runs in fp16 on CUDA: "lower_precision_fp" in PyTorch's
# aten/src/ATen/autocast_mode.cpp, listed in the AMP docs as "CUDA Ops that can autocast to
# float16" (https://docs.pytorch.org/docs/stable/amp.html#cuda-ops-that-can-autocast-to-float16).
FP16_OPS = {
    F.linear: "linear",
    torch.matmul: "matmul",
    torch.Tensor.matmul: "matmul",  # also what `a @ b` dispatches to
    torch.mm: "mm",
    torch.Tensor.mm: "mm",
    torch.bmm: "bmm",
    torch.Tensor.bmm: "bmm",
    torch.addmm: "addmm",  # Hugging Face's Conv1D (GPT-2's projections) calls it
    torch.Tensor.addmm: "addmm",
    torch.baddbmm: "baddbmm",
    torch.Tensor.baddbmm: "baddbmm",
    torch.addbmm: "addbmm",
    torch.mv: "mv",
    torch.addmv: "addmv",
    torch.addr: "addr",
    torch.einsum: "einsum",
    F.conv1d: "conv1d",
    F.conv2d: "conv2d",
    F.conv3d: "conv3d",
    F.scaled_dot_product_attention: "scaled_dot_product_attention",
}


_ACTIVE_EMULATIONS: list[EmulatedFp16Autocast] = []  # entered and not yet left, innermost last


def active_emulation() -> EmulatedFp16Autocast | None:
    """The innermost emulated autocast (``EmulatedFp16Autocast`` or a subclass) whose block is
    running now, or None. ``course_utils.train`` names its progress bar after it: a loop told
    "fp32" inside an emulation runs the emulation's numerics (``mode_name``)."""
    return _ACTIVE_EMULATIONS[-1] if _ACTIVE_EMULATIONS else None


class EmulatedFp16Autocast(TorchFunctionMode):
    """Like ``torch.autocast("cuda", dtype=torch.float16)``, computed in fp32 on any device.

    For each op in ``FP16_OPS``: fp32 tensor inputs (activations and weights) are rounded to
    fp16, the op runs in fp32 (products of fp16 numbers are exact in fp32, sums accumulate in
    fp32, as on tensor cores), and the output is rounded to fp16. Each rounding also rounds the
    gradient that flows back through it, so activation gradients and weight gradients underflow
    and overflow as they would in real fp16. Other ops run in fp32 unchanged (autocast runs
    softmax, layer norm and the loss in fp32 too). ``calls`` counts the emulated ops by name.

    >>> with EmulatedFp16Autocast() as amp:      # doctest: +SKIP
    ...     loss = model(**batch).loss
    >>> amp.calls                                 # doctest: +SKIP
    Counter({'addmm': 8, 'scaled_dot_product_attention': 2, 'linear': 1})
    """

    mode_name = "fp16-emulated"  # what a training loop run inside it calls the mode it ran

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    def __enter__(self):
        _ACTIVE_EMULATIONS.append(self)
        try:
            return super().__enter__()
        except BaseException:
            _ACTIVE_EMULATIONS.pop()
            raise

    def __exit__(self, exc_type, exc_value, traceback):
        try:
            return super().__exit__(exc_type, exc_value, traceback)
        finally:
            _ACTIVE_EMULATIONS.remove(self)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func not in FP16_OPS:
            return func(*args, **kwargs)
        self.calls[FP16_OPS[func]] += 1
        args = [_round_if_fp32(a) for a in args]
        kwargs = {key: _round_if_fp32(value) for key, value in kwargs.items()}
        return _round_if_fp32(func(*args, **kwargs))


def _round_if_fp32(value):
    if isinstance(value, torch.Tensor) and value.dtype == torch.float32:
        return round_fp16(value)
    if isinstance(value, (list, tuple)):  # einsum's operands may come as a list
        return type(value)(_round_if_fp32(item) for item in value)
    return value
