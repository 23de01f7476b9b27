"""A precision audit: record what *actually* ran during training steps, then give a verdict.

Taught in notebook 05, section "4. The precision audit" (and used from "The working version" of
section 1 on).

Asking for mixed precision and getting it are two different things: a Trainer with ``fp16=True``
on a CPU trains in fp32 without a word, and TRL's configs turn ``bf16`` on unless told otherwise.
The audit watches the training forward passes and reports what happened:

- whether autocast was on (and its dtype) inside the model's linear layers;
- the dtypes those layers produced (``nn.Linear``, GPT-2's ``Conv1D``, LoRA's A/B layers);
- the dtype of the loss;
- whether a ``torch.amp.GradScaler`` scaled the loss, its last scale, and skipped steps;
- the dtypes of the trainable and frozen weights at the end: trainable weights in 16 bits mean
  *pure* 16-bit training, with no fp32 master weights (what ``bf16=True`` gives on a model loaded
  from a bf16 checkpoint, since transformers 5's ``from_pretrained`` defaults to ``dtype="auto"``);

and compares that with what was requested (``args.bf16`` / ``args.fp16`` of a Trainer, or
``expected=`` when you drive the loop yourself). Two ways to use it::

    audit = PrecisionAudit()                       # as a Trainer callback
    trainer = SFTTrainer(..., callbacks=[audit]); trainer.train()
    print(audit.report())

    with PrecisionAudit(model, scaler=scaler, expected="bf16") as audit:   # around your own loop
        for batch in batches: ...
    print(audit.report())

Only forward passes run with gradients enabled on a model in training mode count as training
steps; evaluation (under ``torch.no_grad``) is ignored. All hooks are removed at the end.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import torch
from torch import nn
from transformers import TrainerCallback

from course_utils.precision import FORMATS, dtype_name

_TRL_BF16_NOTE = (
    "bf16=True here may come from TRL's default: its configs set bf16=True whenever neither bf16 "
    "nor fp16 is given (since TRL 0.19, https://github.com/huggingface/trl/pull/3515); pass "
    "bf16=False for an fp32 run."
)


def is_linear_like(module: nn.Module) -> bool:
    """True for the layers whose matmuls autocast changes: ``nn.Linear`` (LoRA's A and B, the LM
    head) and GPT-2's ``Conv1D`` (a linear layer with transposed weights)."""
    return isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"


@dataclasses.dataclass
class AuditReport:
    """What the audit saw. ``ran`` names it; ``problems`` lists mismatches with the request."""

    steps: int
    requested: str | None
    requested_from: str
    autocast_dtypes: tuple[str, ...]  # dtypes autocast was on with, in the linear layers
    linear_output_dtypes: dict[str, tuple[str, ...]]  # layer class name -> output dtypes seen
    loss_dtypes: tuple[str, ...]
    scaler_present: bool
    scaler_steps: int  # times the scaler scaled a loss during training
    scaler_scale: float | None  # its scale after the last step
    skipped_steps: int  # optimizer steps the scaler skipped (inf/NaN gradients)
    weight_dtypes: dict[str, dict[str, int]]  # "trainable"/"frozen" -> dtype -> parameter count
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def autocast(self) -> str | None:
        """The autocast dtype seen ("bfloat16", "float16"), or None if autocast was off."""
        return self.autocast_dtypes[0] if len(self.autocast_dtypes) == 1 else None

    @property
    def ran(self) -> str:
        """What ran, in one phrase: "fp32", "bf16 autocast", "fp16 autocast + GradScaler",
        "bf16 weights (no autocast)", ... or "nothing recorded"."""
        if self.steps == 0:
            return "nothing recorded"
        if len(self.autocast_dtypes) > 1:
            return "mixed: autocast with " + " and ".join(self.autocast_dtypes)
        pure = self.pure_16_bit
        if pure is not None:
            how = f"{_short(self.autocast)} autocast" if self.autocast else "no autocast"
            return f"pure {_short(pure)} ({how}, {_short(pure)} trainable weights)"
        if self.autocast is not None:
            name = _short(self.autocast)
            return f"{name} autocast" + (" + GradScaler" if self.scaler_steps else "")
        outputs = {d for dtypes in self.linear_output_dtypes.values() for d in dtypes}
        low = sorted(outputs - {"float32"})
        if not low:
            return "fp32" + (" + GradScaler" if self.scaler_steps else "")
        return " + ".join(_short(d) for d in low) + " weights (no autocast)"

    @property
    def pure_16_bit(self) -> str | None:
        """The 16-bit dtype ("bfloat16", "float16") of the trainable weights when they are all in
        one 16-bit dtype: then there are no fp32 master weights and every optimizer update is
        rounded to 16 bits. None when they are fp32 (mixed precision keeps them there), mixed, or
        unknown."""
        trainable = set(self.weight_dtypes.get("trainable", {}))
        if len(trainable) == 1:
            (dtype,) = trainable
            if dtype in ("bfloat16", "float16"):
                return dtype
        return None

    @property
    def ran_precision(self) -> str | None:
        """The precision that ran, as a request would name it: "fp32", "bf16", "fp16" (None when
        nothing was recorded or several ran)."""
        if self.steps == 0 or len(self.autocast_dtypes) > 1:
            return None
        if self.autocast is not None:
            return _short(self.autocast)
        if self.pure_16_bit is not None:
            return _short(self.pure_16_bit)
        outputs = {d for dtypes in self.linear_output_dtypes.values() for d in dtypes}
        low = outputs - {"float32"}
        return "fp32" if not low else (_short(low.pop()) if len(low) == 1 else None)

    @property
    def problems(self) -> list[str]:
        """Mismatches between what was requested and what ran, and risky combinations."""
        found = []
        if self.steps == 0:
            return [
                "no training step was recorded: was the audit attached to the model that trained?"
            ]
        ran = self.ran_precision
        if self.requested is not None and ran is not None and ran != self.requested:
            if not (self.requested == "fp32" and self.autocast is None):
                found.append(self._mismatch_message(ran))
        pure = self.pure_16_bit
        if pure is not None:
            found.append(
                f"the trainable weights are {pure}: pure {_short(pure)} training, with no fp32 master "
                f"weights, so every optimizer update is rounded to {_short(pure)} and updates smaller "
                f"than half a {_short(pure)} spacing are lost. A checkpoint saved in {_short(pure)} "
                f"loads in {_short(pure)} by default (transformers 5: from_pretrained(dtype='auto')); "
                "for mixed precision load it with from_pretrained(..., dtype=torch.float32)."
            )
        if self.autocast == "float16" and not self.scaler_steps:
            found.append(
                "fp16 autocast ran without a GradScaler: small gradients underflow to zero in fp16. "
                "Use torch.amp.GradScaler (the Trainer does this for you with fp16=True on a GPU)."
            )
        return found

    @property
    def all_notes(self) -> list[str]:
        """``notes`` plus what the audit infers: 16-bit weights under fp32 flags, skipped steps."""
        inferred = []
        if (
            self.requested == "fp32"
            and self.autocast is None
            and self.ran_precision not in (None, "fp32")
        ):
            inferred.append(
                "the precision flags were off (fp32), but some weights are 16-bit, so their matmuls "
                "ran in 16 bits: this is 16-bit weights, not mixed precision (no autocast)."
            )
        if self.skipped_steps:
            inferred.append(
                f"the GradScaler skipped {self.skipped_steps} optimizer step(s) on inf/NaN gradients"
            )
        return list(self.notes) + inferred

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def verdict(self) -> str:
        """One line: what ran, and OK or the first problem."""
        if self.ok:
            if self.requested is None:
                return f"OK: ran {self.ran}"
            if self.ran_precision == self.requested:
                return f"OK: ran {self.ran} (as requested: {self.requested})"
            return f"OK: ran {self.ran} (the flags asked for {self.requested}; the weights' dtype decided)"
        return f"MISMATCH: ran {self.ran}; {self.problems[0]}"

    def __str__(self) -> str:
        scaler = "none"
        if self.scaler_present:
            scaler = (
                f"scaled {self.scaler_steps} losses, last scale {self.scaler_scale:g}, "
                f"skipped steps {self.skipped_steps}"
                if self.scaler_steps
                else "present but never used"
            )
        lines = [
            f"precision audit over {self.steps} training step(s)",
            f"  requested     : {self.requested or 'not known'} ({self.requested_from})",
            f"  autocast      : {', '.join(self.autocast_dtypes) or 'off'}",
            "  linear outputs: "
            + (
                "; ".join(f"{kind} {'/'.join(d)}" for kind, d in self.linear_output_dtypes.items())
                or "none seen"
            ),
            f"  loss          : {'/'.join(self.loss_dtypes) or 'not seen'}",
            f"  GradScaler    : {scaler}",
            "  weights       : "
            + "; ".join(
                f"{group} {'/'.join(counts)}"
                for group, counts in self.weight_dtypes.items()
                if counts
            ),
        ]
        lines += [f"  note          : {note}" for note in self.all_notes]
        lines += [f"  problem       : {problem}" for problem in self.problems[1:]]
        lines.append(f"  verdict       : {self.verdict}")
        return "\n".join(lines)

    def _mismatch_message(self, ran: str) -> str:
        if self.requested == "fp16" and ran == "fp32":
            return (
                "fp16 was requested, but no fp16 autocast ran and no GradScaler stepped: this trained "
                "in fp32. On a CPU the Trainer (through accelerate) turns fp16 mixed precision off "
                "without a warning; on a CPU use bf16 (with use_cpu=True) or fp32."
            )
        return f"{self.requested} was requested, but {ran} ran."


class PrecisionAudit(TrainerCallback):
    """Record what ran during training steps. Use it as a Trainer callback
    (``callbacks=[PrecisionAudit()]``) or as a context manager around your own loop
    (``with PrecisionAudit(model, scaler=..., expected="bf16") as audit``).

    ``expected`` ("fp32", "bf16", "fp16") is what you asked for; as a Trainer callback it is read
    from ``args.bf16`` / ``args.fp16`` unless given.
    """

    def __init__(
        self,
        model: nn.Module | None = None,
        *,
        scaler: torch.amp.GradScaler | None = None,
        expected: str | None = None,
    ):
        if model is not None and not isinstance(model, nn.Module):
            raise TypeError(f"PrecisionAudit needs a torch.nn.Module, got {type(model).__name__}")
        if expected is not None and expected not in FORMATS:
            raise ValueError(f"expected must be one of {', '.join(FORMATS)}, got {expected!r}")
        if scaler is not None and not isinstance(scaler, torch.amp.GradScaler):
            raise TypeError(f"scaler must be a torch.amp.GradScaler, got {type(scaler).__name__}")
        self.model = model
        self.scaler = scaler
        self.expected = expected
        self._reset()

    # ------------------------------------------------------------------ results
    def report(self) -> AuditReport:
        """What was recorded so far, with the verdict."""
        weights = self._final_weights or (_weight_dtypes(self._model) if self._model else {})
        return AuditReport(
            steps=self._steps,
            requested=self._requested,
            requested_from=self._requested_from,
            autocast_dtypes=tuple(sorted(self._autocast)),
            linear_output_dtypes={k: tuple(sorted(v)) for k, v in sorted(self._outputs.items())},
            loss_dtypes=tuple(sorted(self._loss)),
            scaler_present=self._scaler is not None,
            scaler_steps=self._scaler_steps,
            scaler_scale=self._scale,
            skipped_steps=self._skipped,
            weight_dtypes=weights,
            notes=list(self._notes),
        )

    # ------------------------------------------------------------------ context manager
    def __enter__(self) -> PrecisionAudit:
        if self.model is None:
            raise TypeError(
                "as a context manager, PrecisionAudit needs the model: PrecisionAudit(model)"
            )
        self._reset()
        self._requested = self.expected
        self._requested_from = "expected=" if self.expected else "not given"
        self._skips_from_scaler = True  # a Trainer reports skipped steps; your own loop does not
        self._attach(self.model, self.scaler)
        return self

    def __exit__(self, *exc) -> None:
        self._detach()

    # ------------------------------------------------------------------ Trainer callback
    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        if model is None:
            raise ValueError("the Trainer passed no model to PrecisionAudit.on_train_begin")
        self._reset()
        self._requested, self._requested_from = _requested_by(args, self.expected)
        if getattr(args, "bf16", False) and type(args).__module__.startswith("trl."):
            self._notes.append(_TRL_BF16_NOTE)
        self._attach(model, self.scaler or getattr(optimizer, "scaler", None))

    def on_step_end(self, args, state, control, optimizer=None, **kwargs):
        if optimizer is not None and getattr(optimizer, "step_was_skipped", False):
            self._skipped += 1

    def on_train_end(self, args, state, control, **kwargs):
        self._detach()

    # ------------------------------------------------------------------ machinery
    def _reset(self) -> None:
        self._handles: list = []
        self._kinds: dict[nn.Module, str] = {}
        self._model: nn.Module | None = None
        self._scaler = None
        self._steps = 0
        self._in_training_forward = False
        self._autocast: set[str] = set()
        self._outputs: dict[str, set[str]] = {}
        self._loss: set[str] = set()
        self._loss_seen_this_step = False
        self._scaler_steps = 0
        self._scale: float | None = None
        self._skipped = 0
        self._skips_from_scaler = False
        self._requested: str | None = None
        self._requested_from = "not given"
        self._notes: list[str] = []
        self._final_weights: dict[str, dict[str, int]] | None = None

    def _attach(self, model: nn.Module, scaler) -> None:
        self._model, self._scaler = model, scaler
        self._handles.append(model.register_forward_pre_hook(self._on_model_start))
        for name, module in model.named_modules():
            if is_linear_like(module):
                self._kinds[module] = _layer_kind(name, module)
                self._handles.append(module.register_forward_hook(self._on_linear))
            if module is not model:
                self._handles.append(module.register_forward_hook(self._on_any_output))
        # Registered last, so it runs after the layer hooks of the model itself (a bare Linear).
        self._handles.append(model.register_forward_hook(self._on_model_end))
        if scaler is not None:
            self._wrap_scaler(scaler)

    def _detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if self._scaler is not None:
            for name in ("scale", "update"):
                self._scaler.__dict__.pop(name, None)  # drop the instance wrappers
        if self._model is not None:
            self._final_weights = _weight_dtypes(self._model)

    def _wrap_scaler(self, scaler) -> None:
        original_scale, original_update = scaler.scale, scaler.update

        def scale(outputs):
            if scaler.is_enabled():
                self._scaler_steps += 1
            return original_scale(outputs)

        def update(new_scale=None):
            before = float(scaler.get_scale()) if scaler.is_enabled() else None
            original_update(new_scale)
            if scaler.is_enabled():
                self._scale = float(scaler.get_scale())
                # Around your own loop nobody else reports skips: GradScaler lowers its scale
                # exactly when it found inf/NaN gradients and skipped optimizer.step().
                if self._skips_from_scaler and new_scale is None and self._scale < before:
                    self._skipped += 1

        scaler.scale, scaler.update = scale, update

    def _on_model_start(self, module, inputs) -> None:
        self._in_training_forward = torch.is_grad_enabled() and module.training
        if self._in_training_forward:
            self._steps += 1
            self._loss_seen_this_step = False

    def _on_model_end(self, module, inputs, output) -> None:
        if self._in_training_forward and not self._loss_seen_this_step:
            loss = _loss_of(output)
            if loss is not None:
                self._loss.add(dtype_name(loss.dtype, long=True))
        self._in_training_forward = False

    def _on_linear(self, module, inputs, output) -> None:
        if not self._in_training_forward or not isinstance(output, torch.Tensor):
            return
        device_type = output.device.type
        if torch.is_autocast_enabled(device_type):
            self._autocast.add(dtype_name(torch.get_autocast_dtype(device_type), long=True))
        kind = self._kinds.get(module, type(module).__name__)
        self._outputs.setdefault(kind, set()).add(dtype_name(output.dtype, long=True))

    def _on_any_output(self, module, inputs, output) -> None:
        # The innermost module that returns a loss (a Hugging Face model) computed it: its dtype
        # is the loss's real dtype, before any wrapper converts outputs.
        if self._in_training_forward and not self._loss_seen_this_step:
            loss = getattr(output, "loss", None)
            if isinstance(loss, torch.Tensor):
                self._loss.add(dtype_name(loss.dtype, long=True))
                self._loss_seen_this_step = True


def _short(dtype: str) -> str:
    return {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}.get(dtype, dtype)


def _layer_kind(name: str, module: nn.Module) -> str:
    """A readable layer family: LoRA's adapter layers apart from the base layers (``Conv1D`` in
    GPT-2) and the other ``Linear`` layers (the LM head)."""
    if ".lora_A." in f".{name}." or ".lora_B." in f".{name}.":
        return "LoRA A/B"
    return type(module).__name__


def _loss_of(output) -> torch.Tensor | None:
    loss = getattr(output, "loss", None)
    if isinstance(loss, torch.Tensor):
        return loss
    if isinstance(output, torch.Tensor) and output.ndim == 0:
        return output
    return None


def _requested_by(args, expected: str | None) -> tuple[str | None, str]:
    if expected is not None:
        return expected, "expected="
    fp16, bf16 = bool(getattr(args, "fp16", False)), bool(getattr(args, "bf16", False))
    requested = "fp16" if fp16 else "bf16" if bf16 else "fp32"
    return requested, f"args.bf16={bf16}, args.fp16={fp16}"


def _weight_dtypes(model: nn.Module) -> dict[str, dict[str, int]]:
    groups: dict[str, Counter] = {"trainable": Counter(), "frozen": Counter()}
    for p in model.parameters():
        groups["trainable" if p.requires_grad else "frozen"][dtype_name(p.dtype, long=True)] += (
            p.numel()
        )
    return {group: dict(sorted(counts.items())) for group, counts in groups.items()}
