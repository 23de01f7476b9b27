"""Memory anatomy of a training step, measured from the tensors themselves.

Taught in notebook 04, section "3. Memory anatomy, in bytes per parameter".

Where the bytes of one AdamW training step go, for a precision mode of ``course_utils.train``:

- ``weights``, ``gradients``, ``optimizer_state``: the tensors the model and AdamW hold after
  the step (AdamW keeps two moments per parameter, ``exp_avg`` and ``exp_avg_sq``);
- ``weight_copies``: the 16-bit copies of the weights autocast makes for its matmuls (they live
  from the forward pass to the backward pass; fp32 and pure-bf16 runs make none);
- ``activations``: the tensors autograd saves for the backward pass (seen with
  ``torch.autograd.graph.saved_tensors_hooks``), parameters and weight copies not counted.

``sweep_batch_sizes`` measures the activations at a few batch sizes and ``BatchSweep`` extends
them linearly (``estimate``, ``crossover``, ``limit_ratio``); ``plot_batch_sweep`` draws it
(notebook 04, section 3).

Every figure is the size of real tensors, so it is the same on any CPU for the same model, batch
shape, precision and torch version (on CUDA, other autocast lists and attention kernels save
other tensors). On CUDA, ``peak`` adds what the allocator saw:
``torch.cuda.max_memory_allocated`` over the step.

>>> anatomy = measure_memory(model, batch, precision="bf16")      # doctest: +SKIP
>>> print(anatomy)                                                 # doctest: +SKIP
>>> anatomy.per_parameter()["weights"]                             # doctest: +SKIP
4.0
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from course_utils.env import pick_device
from course_utils.precision import PRECISIONS, check_precision, precision_context, weight_dtype
from course_utils.units import format_bytes

# the training modes whose memory the anatomy models (emulated fp16 holds what fp16 holds)
MEMORY_PRECISIONS = tuple(p for p in PRECISIONS if p != "fp16-emulated")
PARTS = ("weights", "gradients", "optimizer_state", "weight_copies", "activations")


@dataclass
class MemoryAnatomy:
    """Bytes held during one training step, by part (see the module doc)."""

    precision: str
    device: str
    num_parameters: int
    batch_shape: tuple[int, ...]
    weights: int
    gradients: int
    optimizer_state: int
    weight_copies: int
    activations: int
    peak: int | None = None  # torch.cuda.max_memory_allocated over the step; None on a CPU

    @property
    def model_state(self) -> int:
        """Weights + gradients + optimizer state: what a step needs whatever the batch size."""
        return self.weights + self.gradients + self.optimizer_state

    @property
    def total(self) -> int:
        """All parts added up: an upper bound of the step's peak (gradients appear while
        activations are freed, so the two never fully coexist)."""
        return self.model_state + self.weight_copies + self.activations

    def per_parameter(self) -> dict[str, float]:
        """Bytes per parameter of each part, plus ``model_state`` and ``total``."""
        n = self.num_parameters
        parts = {part: getattr(self, part) / n for part in PARTS}
        return parts | {"model_state": self.model_state / n, "total": self.total / n}

    def __str__(self) -> str:
        lines = [f"{self.precision} on {self.device}, batch {tuple(self.batch_shape)}:"]
        for part in PARTS:
            value = getattr(self, part)
            lines.append(
                f"  {part:<16} mem: {format_bytes(value):>10} "
                f"({value / self.num_parameters:.2f} bytes/param)"
            )
        lines.append(f"  {'total':<16} mem: {format_bytes(self.total):>10}")
        if self.peak is not None:
            lines.append(f"  {'cuda peak':<16} mem: {format_bytes(self.peak):>10}")
        return "\n".join(lines)


def measure_memory(
    model: nn.Module,
    batch: Mapping[str, torch.Tensor],
    precision: str = "bf16",
    *,
    device: str | torch.device | None = None,
    lr: float = 1e-4,
) -> MemoryAnatomy:
    """Run one AdamW step of a copy of ``model`` on ``batch`` in ``precision`` ("fp32", "bf16",
    "fp16" or "bf16-pure") and measure where the bytes went. ``model`` itself is left as it was."""
    precision = _check_memory_precision(precision)
    device = pick_device(device)
    model = _training_copy(model, precision, device)
    batch = _to_device(batch, device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)

    with _StepRecorder(model) as recorder:
        with precision_context(precision, device.type):
            loss = _loss_of(model(**batch))
    weight_copies, activations = recorder.weight_copy_bytes(), recorder.activation_bytes()
    loss.backward()
    optimizer.step()
    peak = None
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device)

    return MemoryAnatomy(
        precision=precision,
        device=str(device),
        num_parameters=sum(p.numel() for p in params),
        batch_shape=tuple(batch["input_ids"].shape) if "input_ids" in batch else (),
        weights=_unique_bytes(params),
        gradients=_unique_bytes([p.grad for p in params if p.grad is not None]),
        optimizer_state=_unique_bytes(
            [v for state in optimizer.state.values() for v in state.values() if _is_tensor(v)]
        ),
        weight_copies=weight_copies,
        activations=activations,
        peak=peak,
    )


def activation_bytes(
    model: nn.Module,
    batch: Mapping[str, torch.Tensor],
    precision: str = "bf16",
    *,
    device: str | torch.device | None = None,
) -> int:
    """Bytes of the activations autograd saves for backward in one forward pass of ``model``
    in ``precision`` (weights and their 16-bit copies not counted). Cheaper than
    ``measure_memory``: no backward, no optimizer; the model is not copied unless its dtype
    or device must change."""
    precision = _check_memory_precision(precision)
    device = pick_device(device)
    first = next(model.parameters(), None)
    if first is None or first.dtype != weight_dtype(precision) or first.device != device:
        model = _training_copy(model, precision, device)
    batch = _to_device(batch, device)
    with _StepRecorder(model) as recorder, precision_context(precision, device.type):
        _loss_of(model(**batch))
        return recorder.activation_bytes()


# ----------------------------------------------------------------------------------------------
# Memory against the batch size (notebook 04, section 3).


@dataclass(frozen=True)
class BatchSweep:
    """Bytes of one training step against the batch size, per precision.

    ``fixed[p]`` is what does not grow with the batch (weights, gradients, AdamW state and
    autocast's weight copies); ``activations[p][i]`` was measured at ``batch_sizes[i]``.
    Activations grow linearly with the batch (same sequence length), so ``estimate`` extends the
    measurements along that line. Taught in notebook 04, section 3 (``plot_batch_sweep``)."""

    batch_sizes: tuple[int, ...]
    fixed: dict[str, int]
    activations: dict[str, tuple[int, ...]]

    def _check(self, precision: str) -> str:
        if precision not in self.fixed:
            raise ValueError(
                f"precision {precision!r} was not measured; this sweep has {sorted(self.fixed)}"
            )
        return precision

    def totals(self, precision: str) -> list[int]:
        """Measured bytes (fixed + activations) at each of ``batch_sizes``."""
        p = self._check(precision)
        return [self.fixed[p] + a for a in self.activations[p]]

    def per_sequence(self, precision: str) -> float:
        """Activation bytes each extra sequence adds (slope between the first and last size)."""
        p = self._check(precision)
        first, last = self.batch_sizes[0], self.batch_sizes[-1]
        return (self.activations[p][-1] - self.activations[p][0]) / (last - first)

    def estimate(self, precision: str, batch_size: float) -> float:
        """Bytes at ``batch_size``, on the line through the measurements."""
        p = self._check(precision)
        start = self.batch_sizes[0]
        return self.fixed[p] + self.activations[p][0] + (batch_size - start) * self.per_sequence(p)

    def limit_ratio(self, precision: str = "bf16", base: str = "fp32") -> float:
        """What ``estimate(precision) / estimate(base)`` tends to for very large batches."""
        return self.per_sequence(precision) / self.per_sequence(base)

    def crossover(self, precision: str = "bf16", base: str = "fp32", up_to: int = 2**20):
        """The smallest batch size at which ``precision`` takes fewer bytes than ``base``, on the
        estimated lines (None if none up to ``up_to``)."""
        return next(
            (
                b
                for b in range(1, up_to + 1)
                if self.estimate(precision, b) < self.estimate(base, b)
            ),
            None,
        )


def sweep_batch_sizes(
    model: nn.Module,
    batches: Mapping[int, Mapping[str, torch.Tensor]],
    anatomy: Mapping[str, MemoryAnatomy],
    *,
    device: str | torch.device | None = None,
) -> BatchSweep:
    """Activation bytes of ``model`` for each ``{batch_size: batch}`` (at least two sizes) and
    each precision of ``anatomy`` (``measure_memory`` results, which give the fixed part)."""
    if not isinstance(batches, Mapping) or len(batches) < 2:
        raise ValueError(
            "batches must map at least two batch sizes to batches, e.g. {1: b1, 8: b8}"
        )
    sizes = sorted(batches)
    if any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in sizes):
        raise ValueError(f"batch sizes must be positive ints, got {sizes!r}")
    for b in sizes:
        rows = _to_device(batches[b], torch.device("cpu")).get("input_ids")
        if rows is not None and rows.shape[0] != b:
            raise ValueError(f"the batch under key {b} has {rows.shape[0]} rows, not {b}")
    if not isinstance(anatomy, Mapping) or not anatomy:
        raise ValueError("anatomy must map precisions to measure_memory(...) results")
    fixed, activations = {}, {}
    for precision, part in anatomy.items():
        if not isinstance(part, MemoryAnatomy):
            raise TypeError(f"anatomy[{precision!r}] must be a MemoryAnatomy, got {part!r}")
        fixed[precision] = part.model_state + part.weight_copies
        activations[precision] = tuple(
            activation_bytes(model, batches[b], precision, device=device) for b in sizes
        )
    return BatchSweep(tuple(sizes), fixed, activations)


def plot_batch_sweep(
    sweep: BatchSweep,
    *,
    precision: str = "bf16",
    base: str = "fp32",
    up_to: int = 1024,
    seq_len: int | None = None,
):
    """Two panels: the bytes of a step against the batch size (measured points, estimated
    lines), and ``precision`` relative to ``base``, with the large-batch limit and the 50%
    of the claim "mixed precision cuts memory by 50%". Returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    for p in (precision, base):
        sweep._check(p)
    longer = [2**k for k in range(0, max(1, up_to).bit_length())]
    unit = f"sequences of {seq_len} tokens" if seq_len else "sequences"
    names = {base: base, precision: f"{precision} autocast"}
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for p, colour in ((base, "tab:blue"), (precision, "tab:orange")):
        left.plot(sweep.batch_sizes, [t / 2**20 for t in sweep.totals(p)], "o", color=colour,
                  label=f"{names[p]}, measured")  # fmt: skip
        left.plot(longer, [sweep.estimate(p, b) / 2**20 for b in longer], "--", color=colour,
                  alpha=0.6, label=f"{names[p]}, extrapolated")  # fmt: skip
    left.set_xscale("log", base=2)
    left.set_yscale("log")
    left.set(xlabel=f"batch size ({unit})", ylabel="MiB (weights, grads, AdamW, copies, activations)",
             title="Memory of one training step")  # fmt: skip
    left.legend(fontsize="small")
    ratio = [sweep.estimate(precision, b) / sweep.estimate(base, b) for b in longer]
    measured = [a / f for a, f in zip(sweep.totals(precision), sweep.totals(base), strict=True)]
    limit = sweep.limit_ratio(precision, base)
    right.plot(
        longer, ratio, "--", color="tab:orange", label=f"{names[precision]} / {base} (extrapolated)"
    )
    right.plot(sweep.batch_sizes, measured, "o", color="tab:orange", label="measured")
    right.axhline(1.0, color="tab:blue", label=base)
    right.axhline(limit, color="gray", linestyle=":", label="limit for very large batches")
    right.axhline(0.5, color="tab:red", label='the claim: "cuts memory by 50%"')
    right.set_xscale("log", base=2)
    right.set(xlabel=f"batch size ({unit})", ylabel=f"memory relative to {base}",
              ylim=(min(0.4, limit - 0.1), max(1.1, max(ratio) + 0.05)),
              title=f"{names[precision]} / {base}: {measured[0]:.2f} at batch size "
                    f"{sweep.batch_sizes[0]}, {limit:.2f} in the limit")  # fmt: skip
    right.legend(fontsize="small")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------
# How the parts are told apart.


class _StepRecorder(TorchDispatchMode):
    """During a forward pass: which tensors autograd saves for backward, and which tensors are
    casts of a parameter (autocast's weight copies). Storages are told apart by identity."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.param_storages = {_storage_key(p) for p in model.parameters()}
        self.copies: dict[int, int] = {}  # storage key -> bytes, casts of parameters
        self.saved: dict[int, int] = {}  # storage key -> bytes, tensors saved for backward
        self._keep: list[torch.Tensor] = []  # keeps recorded storages alive (no address reuse)
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    def __enter__(self):
        self._hooks.__enter__()
        return super().__enter__()

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            self._hooks.__exit__(*exc)

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        key = _storage_key(tensor)
        if key not in self.saved:
            self.saved[key] = tensor.untyped_storage().nbytes()
            self._keep.append(tensor)
        return tensor

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func.overloadpacket.__name__ == "_to_copy" and args and _is_tensor(args[0]):
            if _storage_key(args[0]) in self.param_storages and _is_tensor(out):
                key = _storage_key(out)
                self.copies.setdefault(key, out.untyped_storage().nbytes())
                self._keep.append(out)
        return out

    def weight_copy_bytes(self) -> int:
        return sum(self.copies.values())

    def activation_bytes(self) -> int:
        return sum(
            size
            for key, size in self.saved.items()
            if key not in self.param_storages and key not in self.copies
        )


def _storage_key(tensor: torch.Tensor) -> int:
    return tensor.untyped_storage()._cdata  # the StorageImpl: the same for every view of it


def _unique_bytes(tensors) -> int:
    sizes = {_storage_key(t): t.untyped_storage().nbytes() for t in tensors}
    return sum(sizes.values())


def _is_tensor(value) -> bool:
    return isinstance(value, torch.Tensor)


def _check_memory_precision(precision: str) -> str:
    precision = check_precision(precision)
    if precision not in MEMORY_PRECISIONS:
        raise ValueError(
            f"precision={precision!r} keeps fp16 values in fp32 tensors, so it uses fp32's "
            f"memory; measure one of {', '.join(map(repr, MEMORY_PRECISIONS))} instead"
        )
    return precision


def _training_copy(model: nn.Module, precision: str, device: torch.device) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    copied = copy.deepcopy(model).to(device=device, dtype=weight_dtype(precision))
    return copied.train()


def _to_device(batch: Mapping[str, torch.Tensor], device: torch.device) -> dict:
    if not isinstance(batch, Mapping):
        raise TypeError(
            "batch must be a dict such as {'input_ids': ..., 'labels': ...}, "
            f"got {type(batch).__name__}"
        )
    return {k: v.to(device) if _is_tensor(v) else v for k, v in batch.items()}


def _loss_of(output) -> torch.Tensor:
    loss = output if _is_tensor(output) else getattr(output, "loss", None)
    if loss is None:
        raise ValueError(
            "the model returned no loss: a Hugging Face causal LM computes one only when the "
            "batch has 'labels' (for next-token prediction, labels = input_ids)"
        )
    return loss


__all__ = [
    "MEMORY_PRECISIONS",
    "BatchSweep",
    "MemoryAnatomy",
    "activation_bytes",
    "measure_memory",
    "plot_batch_sweep",
    "sweep_batch_sizes",
]
