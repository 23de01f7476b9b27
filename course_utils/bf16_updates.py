"""Weight updates in bf16: why they stall, and two remedies (stochastic rounding, Kahan).

Taught in notebook 02, section "3. Stalled updates: when `w + lr * g == w`"; notebook 01,
section "Sums: what torch keeps in fp32, and where bf16 still bites", uses ``sum_errors``
(sums of gradients kept in bf16).

A bf16 weight ``w`` has 8 significant bits, so neighbouring values are ``ulp(w)`` apart (about
``|w| / 128``). Rounding ``w + u`` to nearest gives back ``w`` itself whenever ``|u|`` is below
half an ulp: the update is lost, every step, and training stalls. Remedies studied by Zamirai
et al. 2020, "Revisiting BFloat16 Training" (https://arxiv.org/abs/2010.06192):

* stochastic rounding: round ``w + u`` up or down at random, with the probabilities that make
  the result right *on average* (``stochastic_round_bf16``);
* Kahan summation: keep the part of each update that rounding lost in a second bf16 tensor and
  add it back at the next step (``kahan_add``).

``accumulate`` shows all of them on one number; ``Bf16Weights`` puts them under any torch
optimizer, so ``course_utils.train.train`` can run the same model with fp32 master weights or
with bf16 weights updated by each rule:

    make = lambda params: Bf16Weights(torch.optim.AdamW(params, lr=1e-5), rounding="kahan").optimizer
    history = train(model, batches, steps=40, precision="fp32", make_optimizer=make)

The weights stay fp32 *tensors* holding bf16 *values* (rounded after every step), and the
forward and backward passes run in fp32: only the storage of the weights differs between runs,
which isolates the update and runs at fp32 speed on any CPU.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import torch

from course_utils import formats as F

__all__ = [
    "ROUNDINGS",
    "SUM_METHODS",
    "UPDATE_RULES",
    "Bf16Weights",
    "UpdateRatio",
    "WeightChangeTracker",
    "share_changed",
    "accumulate",
    "compare_update_rules",
    "kahan_add",
    "lost_update_fraction",
    "plot_accumulation",
    "plot_update_runs",
    "stochastic_round_bf16",
    "sum_errors",
    "sum_errors_table",
    "update_ratio",
    "update_stalls",
]

ROUNDINGS = ("nearest", "stochastic", "kahan")
_LOW_BITS = 16  # fp32 bits that bf16 drops
_KEEP_HIGH_BITS = -(2**_LOW_BITS)  # int32 mask 0xFFFF0000


def _check_rounding(rounding: str) -> str:
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {', '.join(ROUNDINGS)}; got {rounding!r}")
    return rounding


# ----------------------------------------------------------------------------- one number


def update_stalls(w: float, update: float, fmt: str = "bf16") -> bool:
    """True when ``w + update``, rounded to ``fmt``, gives back ``w`` (rounded to ``fmt``): the
    update is lost. Computed by torch's rounding (``formats.round_to``)."""
    w_rounded = F.round_to([F._as_real(w)], fmt)
    return bool(F.round_to(w_rounded.double() + F._as_real(update), fmt) == w_rounded)


class UpdateRatio(NamedTuple):
    """Round to nearest, a normal weight ``w`` and an update ``u``: if ``|u| / |w|`` is below
    ``always_lost_below`` the sum rounds back to ``w``; above ``never_lost_above`` it never does;
    in between it depends on where ``|w|`` lies between two powers of two (and on the sign)."""

    eps: float
    always_lost_below: float
    never_lost_above: float


def update_ratio(fmt: str = "bf16") -> UpdateRatio:
    """The update/weight ratios at which ``w + u`` stops moving ``w`` in ``fmt``, from
    ``torch.finfo(dtype).eps`` (the gap above 1.0, 2^-mantissa_bits). Near ``|w|`` in
    [2^e, 2^(e+1)) neighbours are ``2^e * eps`` apart (half that just below 2^e): an update is
    lost below half a gap, which is at least ``|w| * eps / 4`` and at most ``|w| * eps / 2``. So:
    fp16 (eps 2^-10) loses every update below 2^-12 of the weight and none above 2^-11 (the
    2^-11 of Micikevicius et al. 2018, https://arxiv.org/abs/1710.03740); bf16 (eps 2^-7):
    2^-9 and 2^-8."""
    dtype = F.get_format(fmt).torch_dtype
    if dtype is None or not dtype.is_floating_point:
        raise ValueError(f"{fmt!r} has no torch dtype to take finfo of")
    eps = torch.finfo(dtype).eps
    return UpdateRatio(eps=eps, always_lost_below=eps / 4, never_lost_above=eps / 2)


def lost_update_fraction(
    weights: torch.Tensor | Iterable[torch.Tensor], update: float, fmt: str = "bf16"
) -> float:
    """The share of the values in ``weights`` (a tensor, or e.g. ``model.parameters()``) for
    which ``w + update``, with ``w`` and the sum rounded to ``fmt``, gives back ``w``: the share
    of weights a step of that size would not move."""
    update = F._as_real(update)
    tensors = [weights] if isinstance(weights, torch.Tensor) else list(weights)
    if not tensors or not all(isinstance(t, torch.Tensor) for t in tensors):
        raise TypeError("weights must be a tensor or an iterable of tensors")
    lost = total = 0
    for t in tensors:
        w = F.round_to(t.detach().flatten().cpu(), fmt)
        lost += (F.round_to(w + update, fmt) == w).sum().item()
        total += w.numel()
    return lost / total if total else math.nan


def stochastic_round_bf16(
    t: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``t`` (fp32) rounded to bf16 stochastically: up or down to a neighbouring bf16 value with
    probability proportional to closeness, so the *expected* result is ``t`` itself. Done on the
    bits: add a random 16-bit number to the low half of the fp32 pattern, then truncate.
    inf and NaN pass through. Returns a bf16 tensor."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"expected a tensor, got {type(t).__name__}")
    if t.dtype != torch.float32:
        raise TypeError(f"expected an fp32 tensor (bf16 rounding starts from fp32), got {t.dtype}")
    bits = t.contiguous().view(torch.int32)
    noise = torch.empty_like(bits).random_(0, 2**_LOW_BITS, generator=generator)
    # The pattern is sign | magnitude, and magnitude + noise never reaches the sign bit, so one
    # integer addition adds the noise to the magnitude for either sign. Truncating the low 16
    # bits afterwards rounds up with probability (dropped bits) / 2^16. A carry into the
    # exponent is right too (the largest values may reach inf, as they should); inf stays inf.
    rounded = ((bits + noise) & _KEEP_HIGH_BITS).view(torch.float32)
    return torch.where(torch.isnan(t), t, rounded).to(torch.bfloat16)


def kahan_add(
    w: torch.Tensor, compensation: torch.Tensor, update: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Kahan-compensated ``w + update`` in bf16: returns the new bf16 weight and the new bf16
    compensation (what rounding lost, to be added back next time). ``update`` may be any
    float dtype; the small arithmetic is done in fp32, the results are stored in bf16."""
    for name, tensor in (("w", w), ("compensation", compensation)):
        if not isinstance(tensor, torch.Tensor) or tensor.dtype != torch.bfloat16:
            raise TypeError(f"{name} must be a bf16 tensor, got {getattr(tensor, 'dtype', tensor)}")
    w32 = w.float()
    wanted = update.float() + compensation.float()  # this update plus what was lost before
    new_w = (w32 + wanted).to(torch.bfloat16)
    applied = new_w.float() - w32  # exact in fp32: both are bf16 values
    return new_w, (wanted - applied).to(torch.bfloat16)


def accumulate(start: float, increment: float, steps: int, method: str) -> torch.Tensor:
    """Add ``increment`` to ``start`` ``steps`` times, storing the running value in fp32
    (``method="fp32"``) or in bf16 with round-to-nearest, stochastic rounding (seeded) or Kahan
    compensation. Returns the ``steps + 1`` values (start included) as float64."""
    if method not in ("fp32", *ROUNDINGS):
        raise ValueError(f"method must be 'fp32' or one of {', '.join(ROUNDINGS)}; got {method!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    generator = torch.Generator().manual_seed(0)
    dtype = torch.float32 if method == "fp32" else torch.bfloat16
    value = torch.tensor(F._as_real(start), dtype=dtype)
    inc = torch.tensor(F._as_real(increment), dtype=torch.float32)
    compensation = torch.zeros((), dtype=torch.bfloat16)
    path = [value.item()]
    for _ in range(steps):
        if method == "fp32":
            value = value + inc
        elif method == "nearest":
            value = (value.float() + inc).to(torch.bfloat16)
        elif method == "stochastic":
            value = stochastic_round_bf16(value.float() + inc, generator)
        else:
            value, compensation = kahan_add(value, compensation, inc)
        path.append(value.item())
    return torch.tensor(path, dtype=torch.float64)


SUM_METHODS = ("fp32", "bf16", "all-reduce", "once")


def sum_errors(
    signal: torch.Tensor,
    counts: Iterable[int] = (8, 64, 512),
    generator: torch.Generator | None = None,
    noise: float = 0.5,
) -> dict[int, dict[str, float]]:
    """How far a gradient summed over many micro-batches (or ranks) falls from the exact sum.

    For each ``n`` in ``counts``: ``n`` bf16 gradients (``signal`` plus ``noise`` times fresh
    normal noise from ``generator``), each divided by ``n`` (``loss / n``), are summed four ways:
    "fp32" and "bf16", by ``backward()`` adding into the ``.grad`` of an fp32 or a bf16
    parameter; "all-reduce", by a loop of elementwise bf16 adds (a sequential ring, each rank
    adding its own gradient); "once", the exact sum rounded to bf16 once. Returns
    ``{n: {method: relative error}}`` (L2 norms, against the float64 sum). Taught in notebook
    01, section "Sums: what torch keeps in fp32, and where bf16 still bites"."""
    if not isinstance(signal, torch.Tensor) or signal.dim() != 1 or not signal.is_floating_point():
        raise TypeError("signal must be a 1-D floating-point tensor (one gradient)")
    counts = list(counts)
    if not counts or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in counts):
        raise ValueError(f"counts must be positive ints (micro-batches or ranks), got {counts!r}")
    bf16 = torch.bfloat16
    errors = {}
    for steps in counts:
        noisy = signal + noise * torch.randn(steps, signal.numel(), generator=generator)
        batches = noisy.to(bf16)
        exact = batches.double().sum(0) / steps
        grads = {}
        for dtype in (torch.float32, bf16):
            weight = torch.zeros(signal.numel(), dtype=dtype, requires_grad=True)
            for batch in batches:  # one backward per micro-batch: .grad += its gradient
                (weight * batch.to(dtype)).sum().div(steps).backward()
            grads[dtype] = weight.grad
        reduced = batches[0] / steps  # rank 0's gradient; every other rank adds its own
        for rank_grad in batches[1:] / steps:
            reduced = reduced + rank_grad
        sums = {"fp32": grads[torch.float32], "bf16": grads[bf16]}
        sums |= {"all-reduce": reduced, "once": exact.to(bf16)}
        errors[steps] = {
            name: ((tensor.double() - exact).norm() / exact.norm()).item()
            for name, tensor in sums.items()
        }
    return errors


def sum_errors_table(errors: Mapping[int, Mapping[str, float]]) -> str:
    """``sum_errors``' result as a text table, one row per count, errors in percent."""
    if not isinstance(errors, Mapping) or not errors:
        raise TypeError("errors must be the non-empty dict that sum_errors returns")
    widths = {"fp32": 11, "bf16": 11, "all-reduce": 16, "once": 13}
    header = ("fp32 .grad", "bf16 .grad", "bf16 all-reduce", "rounded once")
    lines = [
        f"{'steps or ranks':>14} "
        + " ".join(f"{h:>{w}}" for h, w in zip(header, widths.values(), strict=True))
    ]
    for steps, row in errors.items():
        missing = set(widths) - set(row)
        if missing:
            raise ValueError(f"row {steps} lacks {sorted(missing)}: not a sum_errors result")
        lines.append(f"{steps:>14} " + " ".join(f"{row[k]:>{w}.2%}" for k, w in widths.items()))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- a whole model


class Bf16Weights:
    """Keep the weights an optimizer updates as bf16 values, updated by ``rounding``.

    Wraps any torch optimizer with step hooks: before each step the current weights are saved;
    after it, the optimizer's fp32 result ``w + u`` is rounded to bf16 to nearest, stochastically
    (seeded by ``seed``), or with Kahan compensation (one bf16 buffer per weight). The weights
    are rounded to bf16 at once. The optimizer's own state (e.g. AdamW's moments) stays fp32, so
    the only difference from fp32 master weights is how the weights are stored. ``remove()``
    takes the hooks off. The wrapped optimizer is ``.optimizer``."""

    def __init__(
        self, optimizer: torch.optim.Optimizer, rounding: str = "nearest", seed: int = 0
    ) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"expected a torch optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.rounding = _check_rounding(rounding)
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        if any(p.dtype != torch.float32 for p in self.params):
            raise ValueError("Bf16Weights expects fp32 parameters (it stores bf16 values in them)")
        first = self.params[0].device if self.params else torch.device("cpu")
        self.generator = torch.Generator(device=first).manual_seed(seed)
        self.compensation = {}
        self._before: list[torch.Tensor] = []
        with torch.no_grad():
            for p in self.params:
                p.copy_(p.to(torch.bfloat16))
                if rounding == "kahan":
                    self.compensation[p] = torch.zeros_like(p, dtype=torch.bfloat16)
        self._handles = [
            optimizer.register_step_pre_hook(self._save),
            optimizer.register_step_post_hook(self._round),
        ]

    def _save(self, *_args) -> None:
        if self.rounding == "kahan":  # the update is recovered as (after - before)
            self._before = [p.detach().to(torch.bfloat16) for p in self.params]

    @torch.no_grad()
    def _round(self, *_args) -> None:
        if self.rounding == "kahan":
            for p, before in zip(self.params, self._before, strict=True):
                update = p.detach() - before.float()  # what the optimizer wanted to add
                new, self.compensation[p] = kahan_add(before, self.compensation[p], update)
                p.copy_(new)
            self._before = []
            return
        for p in self.params:
            if self.rounding == "nearest":
                p.copy_(p.to(torch.bfloat16))
            else:
                p.copy_(stochastic_round_bf16(p.detach(), self.generator))

    def remove(self) -> None:
        """Take the hooks off the optimizer (the weights keep their values)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []


@dataclass
class WeightChangeTracker:
    """A ``train()`` callback: the fraction of weight values that changed at each step.

    ``fractions[i]`` is the share of all parameter elements whose value differs after step i+1.
    """

    fractions: list[float] | None = None

    def __post_init__(self) -> None:
        self.fractions = [] if self.fractions is None else self.fractions
        self._before: list[torch.Tensor] = []

    def on_before_optimizer_step(self, state) -> None:
        self._before = [p.detach().clone() for p in _params(state.model.parameters())]

    def on_step_end(self, state) -> None:
        if not self._before:
            return
        self.fractions.append(share_changed(self._before, state.model.parameters()))
        self._before = []


def share_changed(
    before: Iterable[torch.Tensor], parameters: Iterable[torch.nn.Parameter]
) -> float:
    """The share of the trainable parameters' values that differ from ``before`` (copies taken
    with ``[p.detach().clone() for p in parameters if p.requires_grad]``)."""
    changed = total = 0
    for p, old in zip(_params(parameters), before, strict=True):
        changed += (p.detach() != old).sum().item()
        total += p.numel()
    return changed / max(total, 1)


def _params(parameters: Iterable[torch.nn.Parameter]) -> list[torch.nn.Parameter]:
    return [p for p in parameters if p.requires_grad]


UPDATE_RULES = {  # run label -> Bf16Weights rounding (None: fp32 master weights)
    "fp32 master weights": None,
    "bf16 nearest": "nearest",
    "bf16 stochastic": "stochastic",
    "bf16 Kahan": "kahan",
}


def compare_update_rules(
    model: torch.nn.Module,
    batch: Mapping,
    steps: int = 16,
    lr: float = 2e-5,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> dict[str, tuple]:
    """Train a copy of ``model`` (the same starting weights each time) on ``batch`` for ``steps``
    AdamW steps (learning rate ``lr``, no weight decay), once per entry of ``UPDATE_RULES``:
    fp32 master weights, then weights stored in bf16 with each rounding (``Bf16Weights``).
    Forward, backward and AdamW's moments stay fp32 in every run: only the weights' storage
    differs. Returns ``{label: (History, WeightChangeTracker)}``, what ``plot_update_runs``
    draws; ``progress`` shows one tqdm bar over the runs. Taught in notebook 02, section
    "3. Stalled updates: when `w + lr * g == w`"."""
    import copy

    from tqdm.auto import tqdm

    from course_utils.train import train

    if not isinstance(batch, Mapping):
        raise TypeError(
            f"batch must be one dict of tensors (input_ids, labels...), got {type(batch).__name__}"
        )
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    runs = {}
    for label, rounding in tqdm(UPDATE_RULES.items(), desc="update rules", disable=not progress):

        def make_optimizer(params, rounding=rounding):
            optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
            if rounding is not None:
                Bf16Weights(optimizer, rounding)  # round the weights to bf16 after every step
            return optimizer

        tracker = WeightChangeTracker()
        history = train(
            copy.deepcopy(model),
            batch,
            steps=steps,
            precision="fp32",
            make_optimizer=make_optimizer,
            callbacks=[tracker],
            device=device,
            progress=False,
        )
        runs[label] = (history, tracker)
    return runs


# ----------------------------------------------------------------------------- the pictures


_STYLES = {  # every line visible: the fp32 reference is a wide pale band the others run over
    "fp32": dict(color="0.55", linewidth=5, alpha=0.45, zorder=1),
    "nearest": dict(color="tab:blue", marker="^", linestyle="-", zorder=3),
    "stochastic": dict(color="tab:orange", marker="o", linestyle="--", zorder=4),
    "kahan": dict(color="tab:green", marker="s", linestyle=":", linewidth=2, zorder=5),
}


def _style(label: str, markevery: int = 1) -> dict:
    key = next((k for k in _STYLES if k in label.lower()), None)
    style = dict(_STYLES.get(key, {}))
    if "marker" in style:
        style.update(markevery=markevery, markersize=5, markerfacecolor="none")
    return style


def plot_accumulation(paths: Mapping[str, torch.Tensor], increment: float = 1e-3, ax=None):
    """The running values of ``accumulate`` for each method (``paths[method]``), every line
    visible (fp32 a wide pale band, the bf16 methods with markers). Returns the axis."""
    import matplotlib.pyplot as plt

    if not isinstance(paths, Mapping) or not paths:
        raise TypeError("paths must be a non-empty dict {method: accumulate(...)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.5))
    for method, path in paths.items():
        name = method if method == "fp32" else f"bf16 {method}"
        ax.plot(
            path.numpy(),
            label=f"{name}: ends at {path[-1].item():.4g}",
            **_style(method, markevery=max(len(path) // 12, 1)),
        )
    ax.set(
        xlabel=f"additions of {increment:g}",
        ylabel="running value",
        title=f"1.0 + {increment:g} + {increment:g} + ...: the value stored in fp32 or in bf16",
    )
    ax.legend()
    return ax


def plot_update_runs(runs: Mapping[str, tuple], reference: str | None = None):
    """Three panels for runs ``{label: (history, WeightChangeTracker)}``: the training loss;
    the loss minus the ``reference`` run's (default: the first label starting with "fp32"), so
    curves that sit on top of it separate; and the share of weights each step changed. Returns
    the axes."""
    import matplotlib.pyplot as plt

    if not isinstance(runs, Mapping) or not runs:
        raise TypeError("runs must be a non-empty dict {label: (history, tracker)}")
    if reference is None:
        reference = next((label for label in runs if label.lower().startswith("fp32")), None)
    if reference not in runs:
        raise ValueError(f"reference run {reference!r} is not among {list(runs)}")
    fig, (loss_ax, diff_ax, moved_ax) = plt.subplots(1, 3, figsize=(15, 4.5))
    ref_losses = runs[reference][0].losses
    for label, (history, tracker) in runs.items():
        steps = history.column("step")
        style = _style(label)
        loss_ax.plot(steps, history.losses, label=label, **style)
        diff_ax.plot(steps, [a - b for a, b in zip(history.losses, ref_losses, strict=True)],
                     label=label, **style)  # fmt: skip
        moved_ax.plot(steps, [100 * f for f in tracker.fractions], label=label, **style)
    loss_ax.set(xlabel="step", ylabel="training loss (one batch)", title="loss")
    diff_ax.set(
        xlabel="step",
        ylabel=f"loss minus the {reference} run's",
        title=f"distance from {reference}",
    )
    moved_ax.set(
        xlabel="step",
        ylabel="% of weights changed by the step",
        title="share of weights each step changed",
        ylim=(0, 105),
    )
    loss_ax.legend()
    fig.tight_layout()
    return loss_ax, diff_ax, moved_ax
