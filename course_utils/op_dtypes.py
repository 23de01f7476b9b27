"""Which aten ops run in which dtype: a dispatch-mode tracer, and autocast's documented op lists.

``torch.autocast`` works inside PyTorch's dispatcher: before an op on its lists runs, it casts the
op's inputs (to 16 bits, or to fp32). A ``TorchDispatchMode`` sits *below* autocast, so it sees
each aten op with the dtypes it really ran in, casts included::

    with trace_op_dtypes(model) as trace:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(**batch).loss
        loss.backward()
    print(trace.table())                  # op | inputs | output | calls, forward pass
    trace.output_dtypes("addmm")          # {'bf16'}

``documented_policy(op, device_type)`` says what autocast registers for an op on a device
("lower precision", "fp32", "promote", "refused" or "not listed"), from ``AUTOCAST_OPS``: the
lists transcribed from PyTorch's source (``SOURCE_URLS``, at the installed torch's tag), checked
against the installed dispatcher by ``registered_autocast_ops`` in the tests. ``DOCS_URL`` is the
AMP docs' op reference.

Taught in notebook 04, section "1. Which ops run in which dtype: measured, not recited";
notebook 01, section "Sums: what torch keeps in fp32, and where bf16 still bites", quotes
``documented_policy``.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from course_utils.precision import FLOATING_NAMES, dtype_name

DOCS_URL = "https://pytorch.org/docs/stable/amp.html#autocast-op-reference"


# Ops that only look at or re-label memory (views, detach, aliases): no arithmetic, no dtype
# decision. Hidden from the tables unless asked for.
_BOOKKEEPING_OPS = {
    "detach",
    "alias",
    "lift_fresh",
    "_local_scalar_dense",
    "clone",
    "contiguous",
    "_unsafe_view",
    "empty_like",
    "zeros_like",
    "ones_like",
    "zeros",
    "ones",
    "empty",
    "full",
    "scalar_tensor",
    "arange",
    "copy_",
}


@dataclass(frozen=True)
class OpCall:
    """One aten op as it ran: the dtypes of its tensor inputs and outputs, and where."""

    op: str  # aten op name without namespace and overload, e.g. "addmm"
    inputs: tuple[str, ...]  # dtypes of the tensor inputs, e.g. ("bf16", "bf16", "bf16")
    outputs: tuple[str, ...]  # dtypes of the tensor outputs
    phase: str  # "forward" (outside backward) or "backward"
    where: str  # forward: the innermost module running; backward: the autograd node
    finite: bool | None = None  # all floating outputs finite? (None: not checked)
    is_view: bool = False  # the op returns a view of its input (no new values)

    @property
    def output(self) -> str:
        """The first output's dtype ("-" if the op returned no tensor)."""
        return self.outputs[0] if self.outputs else "-"

    @property
    def is_cast(self) -> bool:
        """A dtype conversion (what autocast inserts): ``_to_copy`` from one dtype to another."""
        return self.op == "_to_copy" and self.inputs[:1] != self.outputs[:1]

    @property
    def is_floating(self) -> bool:
        """Some input or output is a floating-point tensor (not only ints and bools)."""
        return any(name in FLOATING_NAMES for name in (*self.inputs, *self.outputs))

    @property
    def is_bookkeeping(self) -> bool:
        """Views, aliases, fresh constants: ops that compute nothing in any dtype."""
        return self.is_view or self.op in _BOOKKEEPING_OPS


@dataclass
class OpTrace:
    """The ops recorded by ``trace_op_dtypes``, with helpers to tabulate them."""

    calls: list[OpCall] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.calls)

    def select(
        self, phase: str | None = "forward", *, bookkeeping: bool = False, casts: bool = True
    ) -> list[OpCall]:
        """The calls of one phase ("forward", "backward", or None for both)."""
        if phase not in ("forward", "backward", None):
            raise ValueError(f"phase must be 'forward', 'backward' or None, got {phase!r}")
        return [
            c
            for c in self.calls
            if (phase is None or c.phase == phase)
            and (bookkeeping or not c.is_bookkeeping)
            and (casts or c.op != "_to_copy")
        ]

    def table(
        self,
        phase: str | None = "forward",
        *,
        by: tuple[str, ...] = ("op", "inputs", "output"),
        bookkeeping: bool = False,
        casts: bool = True,
        floating_only: bool = True,
    ):
        """A pandas DataFrame, one row per distinct ``by`` columns (in order of first call),
        with the number of ``calls``. Inputs are shown as "bf16, fp32". Integer-only ops (index
        and mask arithmetic) are left out unless ``floating_only=False``."""
        import pandas as pd

        allowed = {"op", "inputs", "output", "outputs", "phase", "where"}
        unknown = set(by) - allowed
        if unknown:
            raise KeyError(f"cannot group by {sorted(unknown)}: choose from {sorted(allowed)}")
        counts: Counter[tuple] = Counter()
        for call in self.select(phase, bookkeeping=bookkeeping, casts=casts):
            if floating_only and not call.is_floating:
                continue
            counts[tuple(_column(call, name) for name in by)] += 1
        rows = [dict(zip(by, key, strict=True)) | {"calls": n} for key, n in counts.items()]
        return pd.DataFrame(rows, columns=[*by, "calls"])

    def output_dtypes(self, op: str, phase: str | None = "forward") -> set[str]:
        """The dtypes ``op``'s first output had, over all its calls in ``phase``."""
        found = {c.output for c in self.calls if c.op == op and (phase is None or c.phase == phase)}
        if not found:
            seen = sorted({c.op for c in self.calls})
            raise KeyError(f"op {op!r} did not run in {phase or 'any'} phase; ops seen: {seen}")
        return found

    def casts(self, phase: str | None = "forward") -> Counter:
        """How many dtype conversions ran, by ``(from, to)``."""
        return Counter(
            (c.inputs[0], c.output)
            for c in self.calls
            if c.is_cast and (phase is None or c.phase == phase)
        )

    def first_nonfinite(self) -> OpCall | None:
        """The first call whose output held an inf or NaN (needs ``check_finite=True``)."""
        if self.calls and all(c.finite is None for c in self.calls):
            raise ValueError("this trace did not check outputs: use check_finite=True")
        return next((c for c in self.calls if c.finite is False), None)


def _column(call: OpCall, name: str) -> str:
    value = getattr(call, name)
    return ", ".join(value) if isinstance(value, tuple) else value


class OpDtypeTracer(TorchDispatchMode):
    """Records every aten op that reaches the dispatcher below autocast (see the module doc)."""

    def __init__(self, trace: OpTrace, check_finite: bool = False) -> None:
        super().__init__()
        self.trace = trace
        self.check_finite = check_finite
        self.module_stack: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = tuple(dtype_name(t.dtype) for t in tree_leaves((args, kwargs)) if _is_tensor(t))
        results = [t for t in tree_leaves(out) if _is_tensor(t)]
        node = torch._C._current_autograd_node()  # set while the autograd engine runs a node
        if node is not None:
            phase, where = "backward", type(node).__name__
        else:
            phase, where = "forward", self.module_stack[-1] if self.module_stack else ""
        finite = None
        if self.check_finite:
            finite = all(bool(torch.isfinite(t).all()) for t in results if t.is_floating_point())
        self.trace.calls.append(
            OpCall(
                op=func.overloadpacket.__name__,
                inputs=inputs,
                outputs=tuple(dtype_name(t.dtype) for t in results),
                phase=phase,
                where=where,
                finite=finite,
                is_view=bool(func.is_view),
            )
        )
        return out


def _is_tensor(value) -> bool:
    return isinstance(value, torch.Tensor)


@contextlib.contextmanager
def trace_op_dtypes(
    model: nn.Module | None = None, *, check_finite: bool = False
) -> Iterator[OpTrace]:
    """Record every aten op run inside the ``with`` block (forward and backward).

    With ``model``, forward ops are labelled with the innermost of its modules running them
    (``OpCall.where``, e.g. ``"transformer.h.0.attn.c_attn"``); backward ops with their autograd
    node (e.g. ``"AddmmBackward0"``). ``check_finite=True`` also notes whether each output was
    finite (``trace.first_nonfinite()``). Hooks are removed on exit, even after an error.
    """
    if model is not None and not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module or None, got {type(model).__name__}")
    trace = OpTrace()
    tracer = OpDtypeTracer(trace, check_finite=check_finite)
    handles = []
    if model is not None:
        for name, module in model.named_modules():
            handles.append(module.register_forward_pre_hook(_push(tracer, name or "(model)")))
            handles.append(module.register_forward_hook(_pop(tracer), always_call=True))
    try:
        with tracer:
            yield trace
    finally:
        for handle in handles:
            handle.remove()


def _push(tracer: OpDtypeTracer, name: str):
    def hook(module, args):
        tracer.module_stack.append(name)

    return hook


def _pop(tracer: OpDtypeTracer):
    def hook(module, args, output):
        if tracer.module_stack:
            tracer.module_stack.pop()

    return hook


# ----------------------------------------------------------------------------------------------
# What autocast registers for each op, transcribed from PyTorch's source at the tag of the installed
# torch (2.13.0); ``registered_autocast_ops`` reads the same lists back from the installed
# dispatcher, and the tests check that the two agree.
#
# CUDA: ``TORCH_LIBRARY_IMPL(aten, Autocast, m)`` in autocast_mode.cpp registers the macros of
# autocast_mode.h: AT_FORALL_LOWER_PRECISION_FP ("lower precision"), AT_FORALL_FP32 and
# AT_FORALL_FP32_SET_OPT_DTYPE and AT_FORALL_DIFFERENT_REDISPATCH_SIGNATURE ("fp32"),
# AT_FORALL_PROMOTE ("promote"), plus cudnn_convolution(_transpose) and a
# ``binary_cross_entropy_banned`` kernel that raises ("refused").
# CPU: ``TORCH_LIBRARY_IMPL(aten, AutocastCPU, m)`` in autocast_mode.cpp lists its ops one by one.
# Names are aten op names without their overload (``pow`` covers ``pow.Tensor_Scalar`` ...).

TORCH_TAG = "v2.13.0"
SOURCE_URLS = {
    "cuda": f"https://github.com/pytorch/pytorch/blob/{TORCH_TAG}/aten/src/ATen/autocast_mode.h",
    "cpu": f"https://github.com/pytorch/pytorch/blob/{TORCH_TAG}/aten/src/ATen/autocast_mode.cpp",
}
POLICIES = ("lower precision", "fp32", "promote", "refused", "not listed")

AUTOCAST_OPS: dict[str, dict[str, tuple[str, ...]]] = {
    "cuda": {
        "lower precision": tuple(
            (  # AT_FORALL_LOWER_PRECISION_FP, then the two cudnn kernels of autocast_mode.cpp
                "_convolution conv1d conv2d conv3d conv_tbc conv_transpose1d conv_transpose2d "
                "conv_transpose3d convolution prelu addmm addmv addr matmul einsum mm mv "
                "linalg_vecdot linear addbmm baddbmm bmm chain_matmul linalg_multi_dot "
                "_thnn_fused_lstm_cell _thnn_fused_gru_cell lstm_cell gru_cell rnn_tanh_cell "
                "rnn_relu_cell _scaled_dot_product_flash_attention scaled_dot_product_attention "
                "cudnn_convolution cudnn_convolution_transpose"
            ).split()
        ),
        "fp32": tuple(
            (  # AT_FORALL_FP32
                "acos asin cosh erfinv exp expm1 log log10 log2 log1p reciprocal rsqrt sinh tan "
                "pow softplus layer_norm native_layer_norm rms_norm group_norm frobenius_norm "
                "nuclear_norm cosine_similarity poisson_nll_loss cosine_embedding_loss nll_loss "
                "nll_loss2d hinge_embedding_loss kl_div l1_loss smooth_l1_loss huber_loss "
                "mse_loss margin_ranking_loss multilabel_margin_loss soft_margin_loss "
                "triplet_margin_loss multi_margin_loss binary_cross_entropy_with_logits dist "
                "pdist cdist renorm logsumexp upsample_nearest1d _upsample_nearest_exact1d "
                "upsample_nearest2d _upsample_nearest_exact2d upsample_nearest3d "
                "_upsample_nearest_exact3d upsample_linear1d upsample_bilinear2d "
                "_upsample_bilinear2d_aa upsample_trilinear3d upsample_bicubic2d "
                "_upsample_bicubic2d_aa "
                # AT_FORALL_FP32_SET_OPT_DTYPE, AT_FORALL_DIFFERENT_REDISPATCH_SIGNATURE
                "prod softmax log_softmax cumprod cumsum linalg_vector_norm linalg_matrix_norm "
                "sum norm"
            ).split()
        ),
        "promote": tuple(
            (  # AT_FORALL_PROMOTE
                "addcdiv addcmul atan2 bilinear cross dot vdot grid_sampler index_put tensordot "
                "scatter_add"
            ).split()
        ),
        "refused": ("binary_cross_entropy",),  # "unsafe to autocast": use ..._with_logits
    },
    "cpu": {
        "lower precision": tuple(
            (
                "conv1d conv2d conv3d bmm mm linalg_vecdot baddbmm addmm _addmm_activation "
                "addbmm linear _convolution matmul conv_tbc mkldnn_rnn_layer conv_transpose1d "
                "conv_transpose2d conv_transpose3d prelu scaled_dot_product_attention "
                "_native_multi_head_attention"
            ).split()
        ),
        "fp32": tuple(
            (
                "avg_pool3d binary_cross_entropy grid_sampler polar prod quantile nanquantile "
                "stft cdist grid_sampler_2d _grid_sampler_2d_cpu_fallback grid_sampler_3d trace "
                "view_as_complex cholesky cholesky_inverse cholesky_solve inverse lu_solve orgqr "
                "ormqr pinverse max_pool3d max_unpool2d max_unpool3d adaptive_avg_pool3d "
                "reflection_pad1d reflection_pad2d replication_pad1d replication_pad2d "
                "replication_pad3d mse_loss cosine_embedding_loss nll_loss nll_loss2d "
                "hinge_embedding_loss poisson_nll_loss smooth_l1_loss cross_entropy_loss l1_loss "
                "huber_loss margin_ranking_loss soft_margin_loss triplet_margin_loss "
                "multi_margin_loss ctc_loss kl_div multilabel_margin_loss "
                "binary_cross_entropy_with_logits fft_fft fft_ifft fft_fft2 fft_ifft2 fft_fftn "
                "fft_ifftn fft_rfft fft_irfft fft_rfft2 fft_irfft2 fft_rfftn fft_irfftn fft_hfft "
                "fft_ihfft linalg_cond linalg_matrix_rank linalg_solve linalg_cholesky "
                "linalg_svdvals linalg_eigvals linalg_eigvalsh linalg_inv "
                "linalg_householder_product linalg_tensorinv linalg_tensorsolve "
                "fake_quantize_per_tensor_affine geqrf _lu_with_info qr svd triangular_solve "
                "fractional_max_pool2d fractional_max_pool3d adaptive_max_pool3d "
                "multilabel_margin_loss_forward linalg_qr linalg_cholesky_ex linalg_svd "
                "linalg_eig linalg_eigh linalg_lstsq linalg_inv_ex"
            ).split()
        ),
        "promote": ("stack", "cat", "index_copy"),
    },
}
DOCUMENTED_OPS = AUTOCAST_OPS  # the name earlier versions of the course used

_DISPATCH_KEYS = {"cuda": "AutocastCUDA", "cpu": "AutocastCPU"}

# aten ops seen in traces (below autocast) -> the op autocast registers (what the code called).
ATEN_NAMES = {
    "_softmax": "softmax",
    "_safe_softmax": "softmax",
    "_log_softmax": "log_softmax",
    "nll_loss_forward": "nll_loss",
    "_scaled_dot_product_flash_attention_for_cpu": "scaled_dot_product_attention",
    "_scaled_dot_product_efficient_attention": "scaled_dot_product_attention",
    "_scaled_dot_product_cudnn_attention": "scaled_dot_product_attention",
    "mkldnn_convolution": "convolution",
}


def _check_device(device_type) -> str:
    if device_type not in AUTOCAST_OPS:
        raise ValueError(f"device_type must be one of {sorted(AUTOCAST_OPS)}, got {device_type!r}")
    return device_type


def documented_policy(op: str, device_type: str) -> str:
    """What autocast does with ``op`` on ``device_type`` ("cpu" or "cuda"), from the source lists
    (``SOURCE_URLS``): "lower precision" (cast to fp16/bf16), "fp32", "promote" (widest input
    dtype), "refused" (raises under autocast), or "not listed" (runs in its inputs' dtype).
    ``op`` may be the aten name a trace shows (``_log_softmax``, ``nll_loss_forward``...)."""
    if not isinstance(op, str):
        raise TypeError(f"op must be an aten op name (a str), got {op!r}")
    lists = AUTOCAST_OPS[_check_device(device_type)]
    for name in (op, ATEN_NAMES.get(op, op)):
        for policy, ops in lists.items():
            if name in ops:
                return policy
    return "not listed"


def documented_table(ops, device_types=("cpu", "cuda")):
    """A pandas DataFrame: one row per op of ``ops`` (aten names), one column per device type,
    each cell ``documented_policy(op, device)``. Notebook 04 prints it for the ops a
    transformer runs (section "1. Which ops run in which dtype: measured, not recited")."""
    import pandas as pd

    if isinstance(ops, str) or not all(isinstance(op, str) for op in ops):
        raise TypeError(f"ops must be a list of aten op names (str), got {ops!r}")
    if isinstance(device_types, str):
        raise TypeError(
            f"device_types must be a list such as ('cpu', 'cuda'), got {device_types!r}"
        )
    columns = {_check_device(d): [documented_policy(op, d) for op in ops] for d in device_types}
    return pd.DataFrame(columns, index=list(ops))


def fp32_only_on(device_type: str = "cuda") -> set[str]:
    """The ops on ``device_type``'s fp32 list that are on no list at all of the other device
    ("cpu" <-> "cuda"): on the other device they run in their inputs' dtype."""
    device_type = _check_device(device_type)
    other = "cpu" if device_type == "cuda" else "cuda"
    listed_there = {op for ops in AUTOCAST_OPS[other].values() for op in ops}
    return set(AUTOCAST_OPS[device_type]["fp32"]) - listed_there


def registered_autocast_ops(device_type: str) -> set[str]:
    """The aten ops (overloads folded) that have an autocast kernel for ``device_type`` in the
    *installed* torch, read from its dispatcher. A CPU-only build registers the CUDA kernels
    too, so this works without a GPU. Uses private ``torch._C`` functions (torch 2.x)."""
    key = _DISPATCH_KEYS[_check_device(device_type)]
    names = torch._C._dispatch_get_all_op_names()
    return {
        name.removeprefix("aten::").split(".")[0]
        for name in names
        if name.startswith("aten::") and torch._C._dispatch_has_kernel_for_dispatch_key(name, key)
    }


__all__ = [
    "ATEN_NAMES",
    "AUTOCAST_OPS",
    "DOCS_URL",
    "DOCUMENTED_OPS",
    "OpCall",
    "OpDtypeTracer",
    "OpTrace",
    "POLICIES",
    "SOURCE_URLS",
    "TORCH_TAG",
    "documented_policy",
    "documented_table",
    "dtype_name",
    "fp32_only_on",
    "registered_autocast_ops",
    "trace_op_dtypes",
]
