"""Reproducible NaN scenarios for notebook 06, on the course's tiny GPT-2 and shipped data.

``BadBatchScenario``: "stable for 100 steps, NaN at step 101". Supervised fine-tuning of
``tiny-gpt2`` on the shipped question/answer pairs (``data/finetune``) with a completion-only
loss: the cross-entropy of the answer tokens, averaged as ``(loss * mask).sum() / mask.sum()``
(the way TRL's GRPO trainer wrote it until https://github.com/huggingface/trl/pull/3248 clamped
the denominator). AdamW, bf16 autocast, fp32 weights. Examples are cut to ``max_length`` tokens,
keeping the start. At ``bad_step`` the batch holds four very long examples: their questions
alone are longer than ``max_length``, truncation cuts every answer away, the mask is all zeros
and the loss is 0 / 0 = NaN; so is every gradient, and AdamW writes NaN into every weight. The
run is dead from that step on, in any precision, on any machine, whatever the learning rate or
the clipping.

``Fp16RangeScenario``: the same fine-tuning (no bad batch) on a model whose residual stream has
grown past what fp16 holds (``grow_residual_stream``: the same function, activations 2**k times
larger, as in T5): every fp16 forward pass overflows in the output projections, and the loss
scaler skips every step. The fixes that exist on a T4 are options of ``train``: keep the
overflowing modules in fp32 (``keep_fp32``), upcast the attention scores (GPT-2's
``reorder_and_upcast_attn``), a lower learning rate; and bf16 where it exists.
``BadBatchScenario(outliers={step: factor})`` plants a finite outlier batch or an inf gradient.

bf16 and fp16 on a CPU: most CPUs have no 16-bit matrix units, and their bf16/fp16 matmuls are
many times slower than fp32 ones. There, ``precision="bf16"`` runs ``EmulatedBf16Autocast`` and
``precision="fp16"`` runs ``EmulatedFp16AutocastFp32Aware`` with a ``torch.amp.GradScaler``: the
inputs and outputs of every matmul are rounded to the 16-bit format and the arithmetic is fp32,
as on tensor cores. On a CUDA GPU it is ``torch.autocast`` itself.

Taught in notebook 06: ``BadBatchScenario`` in sections "1. A run that is stable for 100 steps,
then NaN" to "3. Fixes compared on the same run" and "5. Heal the run without a restart";
``Fp16RangeScenario`` in "4. When fp16's range *is* the cause: fixes that exist on a T4".
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import dataclasses
import functools
import json
import math
import warnings
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F

from course_utils.precision import (
    FORMATS,
    FP16_OPS,
    EmulatedFp16Autocast,
    check_precision,
    precision_context,
)

# ----------------------------------------------------------------------------- bf16 numerics


class RoundToBf16(torch.autograd.Function):
    """A cast to bf16 and back, in both directions (forward value and backward gradient)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.to(torch.bfloat16).to(tensor.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.to(torch.bfloat16).to(grad.dtype)


def _round_bf16(value):
    if isinstance(value, torch.Tensor) and value.dtype == torch.float32:
        return RoundToBf16.apply(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_round_bf16(item) for item in value)
    return value


# Ops the emulations below leave in fp32 right now: "*" (all) inside a module kept in fp32, or
# {"baddbmm"} inside GPT-2's upcast attention scores. Real autocast gets the same effect from
# ``torch.autocast(device_type, enabled=False)``, which an emulation cannot see.
_FULL_PRECISION: contextvars.ContextVar[frozenset] = contextvars.ContextVar(
    "full_precision", default=frozenset()
)


@contextlib.contextmanager
def full_precision(ops: Iterable[str] = ("*",)):
    """Inside this block the emulated autocasts (``EmulatedBf16Autocast``,
    ``EmulatedFp16AutocastFp32Aware``) do not round ``ops`` ("*": every op): what
    ``torch.autocast(..., enabled=False)`` does to real autocast."""
    token = _FULL_PRECISION.set(_FULL_PRECISION.get() | frozenset(ops))
    try:
        yield
    finally:
        _FULL_PRECISION.reset(token)


def _exempt(func) -> bool:
    exempt = _FULL_PRECISION.get()
    return bool(exempt) and ("*" in exempt or FP16_OPS[func] in exempt)


class EmulatedFp16AutocastFp32Aware(EmulatedFp16Autocast):
    """``course_utils.precision.EmulatedFp16Autocast`` (fp16 autocast numerics computed in fp32:
    inputs and output of every matmul-like op rounded to fp16, in forward and backward), except
    inside ``full_precision(...)`` blocks: a module kept in fp32, GPT-2's upcast scores."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in FP16_OPS and _exempt(func):
            return func(*args, **(kwargs or {}))
        return super().__torch_function__(func, types, args, kwargs)


class EmulatedBf16Autocast(EmulatedFp16Autocast):
    """bf16 autocast numerics computed in fp32: the ops autocast runs in 16 bits (``FP16_OPS``:
    linear, matmul, addmm, attention...) get bf16-rounded inputs and a bf16-rounded output,
    in forward and in backward (not inside ``full_precision`` blocks). ``calls`` counts them."""

    mode_name = "bf16-emulated"  # what the training loop's progress bar names (not fp16's name)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func not in FP16_OPS or _exempt(func):
            return func(*args, **kwargs)
        self.calls[FP16_OPS[func]] += 1
        args = [_round_bf16(a) for a in args]
        kwargs = {key: _round_bf16(value) for key, value in kwargs.items()}
        return _round_bf16(func(*args, **kwargs))


def training_precision(precision: str, device: torch.device) -> tuple[str, Any]:
    """(the ``course_utils.train`` precision, an extra context around the run) for a scenario
    precision "bf16", "fp32" or "fp16" on ``device``: real autocast on CUDA; on a CPU, bf16 and
    fp16 are emulated (fp32 arithmetic, 16-bit rounding around every matmul; fp16 with a
    ``torch.amp.GradScaler``, passed to the loop by ``BadBatchScenario.train``)."""
    if precision not in FORMATS:
        raise ValueError(f"unknown precision {precision!r}: choose one of {FORMATS}")
    if device.type == "cuda" or precision == "fp32":
        return check_precision(precision), contextlib.nullcontext()
    if precision == "fp16":
        return "fp32", EmulatedFp16AutocastFp32Aware()
    return "fp32", EmulatedBf16Autocast()  # weights fp32, bf16-rounded matmuls around them


# ----------------------------------------------------------------------------- data


@functools.lru_cache(maxsize=2)
def qa_pairs(split: str = "train") -> tuple[tuple[str, str], ...]:
    """The shipped question/answer pairs of ``split`` ("train" or "heldout") as (prompt,
    answer): the prompt is the question line."""
    from course_utils.finetune.sft import dataset_path

    pairs = []
    with dataset_path(split).open(encoding="utf-8") as file:
        for line in file:
            if line.strip():
                question, answer = json.loads(line)["text"].split("\n", 1)
                pairs.append((question + "\n", answer))
    return tuple(pairs)


@functools.lru_cache(maxsize=1)
def long_questions(count: int = 4) -> tuple[tuple[str, str], ...]:
    """``count`` examples whose question is one of the longest paragraphs of the shipped corpus
    (a pasted page): (prompt, answer) pairs with prompts far longer than 64 tokens."""
    from course_utils.data import corpus_documents

    paragraphs = [p for doc in corpus_documents("train") for p in doc.split("\n") if p.strip()]
    longest = sorted(paragraphs, key=len, reverse=True)[:count]
    return tuple(
        (f"Question: What does this text say? {text}\n", "It describes a Python module.")
        for text in longest
    )


def encode_sft_batch(tokenizer, pairs: Iterable[tuple[str, str]], max_length: int) -> dict:
    """A completion-only SFT batch: prompt + answer + end-of-text, cut to ``max_length`` tokens
    (the start is kept), padded on the right; labels are -100 on the prompt and on padding."""
    rows, label_rows = [], []
    for prompt, answer in pairs:
        # verbose=False: the long prompts are cut below, no need to warn that they are long
        prompt_ids = tokenizer(prompt, add_special_tokens=False, verbose=False)["input_ids"]
        answer_ids = tokenizer(answer, add_special_tokens=False, verbose=False)["input_ids"]
        ids = (prompt_ids + answer_ids + [tokenizer.eos_token_id])[:max_length]
        labels = ([-100] * len(prompt_ids) + answer_ids + [tokenizer.eos_token_id])[:max_length]
        rows.append(ids)
        label_rows.append(labels)
    width = max(len(row) for row in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    input_ids = torch.tensor([row + [pad] * (width - len(row)) for row in rows])
    attention_mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows])
    labels = torch.tensor([row + [-100] * (width - len(row)) for row in label_rows])
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def completion_only_loss(logits, labels, vocab_size=None, *, clamp: bool = False, **kwargs):
    """Next-token cross-entropy averaged over the answer tokens (labels != -100), written as
    ``(per_token * mask).sum() / mask.sum()``: 0 / 0 = NaN for a batch with no answer token.
    ``clamp=True`` divides by ``mask.sum().clamp(min=1)`` instead (the fix): loss 0, no NaN.
    Plugged into a Hugging Face model with ``model.loss_function = completion_only_loss``."""
    logits = logits[:, :-1].float()
    targets = labels[:, 1:].to(logits.device)
    mask = targets != -100
    per_token = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.clamp(min=0).reshape(-1), reduction="none"
    ).view_as(targets)
    count = mask.sum()
    return (per_token * mask).sum() / (count.clamp(min=1) if clamp else count)


# ----------------------------------------------------------------------------- scenario 1


@dataclasses.dataclass
class BadBatchScenario:
    """Fine-tuning that is stable for ``bad_step - 1`` steps and dies at ``bad_step``.

    ``train(...)`` runs it (or part of it) with ``course_utils.train`` and returns the History;
    its keyword arguments are the knobs to try: ``lr``, ``max_grad_norm``, ``precision``,
    ``callbacks``, ``skip_steps`` (batches to leave out) and ``start`` (a checkpoint to resume
    from: the run continues at the step after it, with the same batches as the original run).
    ``clamp_loss=True`` is the code fix: the loss divides by ``mask.sum().clamp(min=1)``.
    ``outliers={step: factor}`` multiplies the loss of those steps, hence every gradient, by
    ``factor``: a finite outlier batch (e.g. 1e6), or an inf gradient (``math.inf``).
    """

    steps: int = 120
    bad_step: int | None = 101
    lr: float = 1e-3
    batch_size: int = 4
    max_length: int = 64
    seed: int = 0
    model_name: str = "tiny-gpt2"
    device: str | None = None
    clamp_loss: bool = False
    outliers: dict[int, float] | None = None

    def __post_init__(self) -> None:
        if self.bad_step is not None and not 1 < self.bad_step <= self.steps:
            raise ValueError(f"bad_step must be None or in 2..steps, got {self.bad_step}")
        for step, factor in (self.outliers or {}).items():
            if isinstance(step, bool) or not isinstance(step, int) or not 1 <= step <= self.steps:
                raise ValueError(f"outliers: step {step!r} is not in 1..{self.steps}")
            if isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor <= 0:
                raise ValueError(
                    f"outliers: the factor of step {step} must be a positive number "
                    f"(math.inf for an inf gradient), got {factor!r}"
                )
        self._tokenizer = None
        self._batches = None

    # -- pieces

    def load_model(self):
        """A fresh copy of the starting model (fp32 weights) with the completion-only loss."""
        from course_utils.models import load_model_and_tokenizer

        model, tokenizer = load_model_and_tokenizer(self.model_name)
        self._tokenizer = tokenizer
        model.loss_function = functools.partial(completion_only_loss, clamp=self.clamp_loss)
        return model

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from course_utils.models import load_model_and_tokenizer

            _, self._tokenizer = load_model_and_tokenizer(self.model_name)
        return self._tokenizer

    @property
    def batches(self) -> list[dict]:
        """One batch per step (index ``step - 1``), the bad one at ``bad_step``."""
        if self._batches is None:
            pairs = list(qa_pairs())
            order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(self.seed))
            needed = self.steps * self.batch_size
            picks = [pairs[int(order[i % len(pairs)])] for i in range(needed)]
            batches = [
                encode_sft_batch(self.tokenizer, picks[i : i + self.batch_size], self.max_length)
                for i in range(0, needed, self.batch_size)
            ]
            if self.bad_step is not None:
                batches[self.bad_step - 1] = self.bad_batch()
            self._batches = batches
        return self._batches

    def bad_batch(self) -> dict:
        """The batch of four very long examples: no answer token survives truncation."""
        return encode_sft_batch(self.tokenizer, long_questions(self.batch_size), self.max_length)

    # -- running it

    def train(
        self,
        model=None,
        *,
        steps: int | None = None,
        start: dict | None = None,
        lr: float | None = None,
        max_grad_norm: float | None = None,
        precision: str = "bf16",
        skip_steps: Iterable[int] = (),
        callbacks: Iterable = (),
        progress: bool = True,
    ):
        """Train (a fresh model unless ``model`` is given) and return the History, whose steps
        are numbered as in the full run. ``steps``: the last step to run (default: all).
        ``progress``: a tqdm bar over the steps (on by default: a full run takes seconds)."""
        from course_utils.env import pick_device
        from course_utils.train import NoLabelsWarning, train

        device = pick_device(self.device)
        model = self.load_model() if model is None else model
        last = self.steps if steps is None else steps
        first = 1
        lr = self.lr if lr is None else lr
        loop_precision, context = training_precision(precision, device)
        saved_optimizer = None
        if start is not None:
            first = int(start["step"]) + 1
            model.load_state_dict(start["model"])
            saved_optimizer = start.get("optimizer")
        if not first <= last <= self.steps:
            raise ValueError(
                f"nothing to run: steps {first}..{last} (the scenario has 1..{self.steps})"
            )
        skip = set(skip_steps)
        wanted = [s for s in range(first, last + 1) if s not in skip]
        batches = [self.batches[s - 1] for s in wanted]

        factors = [(self.outliers or {}).get(s, 1.0) for s in wanted]
        outlier_hook = None
        if any(factor != 1.0 for factor in factors):
            model.loss_function = _StepWeightedLoss(model.loss_function, factors)
            outlier_hook = model.register_forward_pre_hook(model.loss_function.next_step)

        def make_optimizer(params):
            optimizer = torch.optim.AdamW(params, lr=lr)
            if saved_optimizer is not None:  # AdamW's moments as they were at the checkpoint
                # a copy: load_state_dict keeps the tensors it is given, and the run updates them
                optimizer.load_state_dict(copy.deepcopy(saved_optimizer))
                for group in optimizer.param_groups:
                    group["lr"] = lr
            return optimizer

        # emulated fp16 runs with the scaler real fp16 autocast needs (the loop's "fp32" has none)
        scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else "auto"
        try:
            # The scenario reproduces a run that turns NaN without a word (as the Trainer's
            # does): finding the bad batch is notebook 06's lesson, so the loop's warning about
            # a batch without labels is silenced here, and only here.
            with context, warnings.catch_warnings():
                warnings.simplefilter("ignore", NoLabelsWarning)
                history = train(
                    model,
                    batches,
                    steps=len(batches),
                    precision=loop_precision,
                    max_grad_norm=max_grad_norm,
                    device=device,
                    seed=self.seed,
                    make_optimizer=make_optimizer,
                    callbacks=callbacks,
                    progress=progress,
                    scaler=scaler,
                )
        finally:
            if outlier_hook is not None:
                outlier_hook.remove()
                model.loss_function = model.loss_function.loss
        if isinstance(context, EmulatedBf16Autocast):
            history.precision = "bf16 (emulated)"
        elif isinstance(context, EmulatedFp16Autocast):
            history.precision = "fp16 (emulated) + GradScaler"
        for record, step in zip(history.records, wanted, strict=False):
            record.step = step
        self.last_model = model
        return history

    # -- the same run with the Hugging Face Trainer

    def hf_trainer(self, output_dir, *, steps: int | None = None, callbacks=(), **arguments):
        """A ``transformers.Trainer`` that trains a fresh model on this scenario's batches, in
        order, one batch per step (fp32 on a CPU; ``arguments`` go to ``TrainingArguments``)."""
        from transformers import PrinterCallback, Trainer, TrainingArguments

        last = self.steps if steps is None else steps
        settings = {
            "output_dir": str(output_dir),
            "max_steps": last,
            "per_device_train_batch_size": 1,  # one "example" = one of our batches
            "learning_rate": self.lr,
            "lr_scheduler_type": "constant",
            "warmup_steps": 0,
            "weight_decay": 0.01,  # AdamW's default, as in course_utils.train
            "save_strategy": "no",
            "logging_strategy": "no",
            "report_to": [],
            "disable_tqdm": True,
            "use_cpu": not torch.cuda.is_available(),
            "seed": self.seed,
        } | arguments
        trainer = Trainer(
            model=self.load_model(),
            args=TrainingArguments(**settings),
            train_dataset=_InOrder(self.batches[:last]),
            data_collator=_unwrap,
            callbacks=list(callbacks),
        )
        trainer.remove_callback(PrinterCallback)  # it prints the run's timings at the end
        return trainer


class _StepWeightedLoss:
    """A loss function whose n-th call (n-th training step) is multiplied by ``factors[n]``; a
    forward pre-hook calls ``next_step`` before each forward pass."""

    def __init__(self, loss, factors: list[float]) -> None:
        self.loss, self.factors, self.calls = loss, factors, -1

    def next_step(self, module, args) -> None:
        self.calls += 1

    def __call__(self, *args, **kwargs):
        factor = self.factors[self.calls] if 0 <= self.calls < len(self.factors) else 1.0
        loss = self.loss(*args, **kwargs)
        return loss * factor if factor != 1.0 else loss


class _InOrder(torch.utils.data.IterableDataset):
    """The scenario's batches, in order (the Trainer would shuffle a map-style dataset)."""

    def __init__(self, batches: list[dict]) -> None:
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def _unwrap(items: list[dict]) -> dict:
    return items[0]


# ----------------------------------------------------------------------------- scenario 2


def grow_residual_stream(model: torch.nn.Module, factor: float) -> torch.nn.Module:
    """Multiply a GPT-2's residual stream by ``factor`` without changing what it computes, in
    place: the token and position embeddings and the output projection (``c_proj``, weight and
    bias) of every attention and MLP block are multiplied by ``factor``. Every LayerNorm divides
    the scale out again (up to its ``eps``), so the loss is unchanged in fp32, but the residual
    stream and the ``c_proj`` outputs are ``factor`` times larger: the state of models whose
    activations grew during (bf16) pre-training, such as T5's MLP output projection ``wo``
    (https://github.com/huggingface/transformers/issues/5651). The output layer is untied from
    the embeddings first (it keeps the original values), so the logits do not grow."""
    if not isinstance(factor, (int, float)) or isinstance(factor, bool) or not factor > 0:
        raise ValueError(f"factor must be a positive number, got {factor!r}")
    if not math.isfinite(factor):
        raise ValueError(f"factor must be finite, got {factor!r}")
    transformer = getattr(model, "transformer", None)
    if transformer is None or not hasattr(transformer, "wte") or not hasattr(model, "lm_head"):
        raise TypeError(
            f"expected a GPT-2 language model (GPT2LMHeadModel), got {type(model).__name__}"
        )
    with torch.no_grad():
        if model.lm_head.weight is transformer.wte.weight:  # tied: give the head its own copy
            model.lm_head.weight = torch.nn.Parameter(transformer.wte.weight.detach().clone())
            model.config.tie_word_embeddings = False
        transformer.wte.weight *= factor
        transformer.wpe.weight *= factor
        for block in transformer.h:
            for projection in (block.attn.c_proj, block.mlp.c_proj):
                projection.weight *= factor
                projection.bias *= factor
    return model


def keep_in_fp32(model: torch.nn.Module, names: Iterable[str]) -> list[str]:
    """Run the modules named ``names`` (exact names, or endings such as "mlp.c_proj") outside
    autocast, in fp32: ``torch.autocast(device_type, enabled=False)`` and fp32 inputs on a GPU,
    ``full_precision()`` for the CPU emulations. transformers' ``_keep_in_fp32_modules = ["wo"]``
    does the same for T5 only when the model is *loaded* in fp16: under autocast with fp32
    weights (``fp16=True``) autocast still runs ``wo`` in fp16, and only disabling it (as here)
    helps. Returns the names of the modules it wrapped."""
    if isinstance(names, str):
        names = [names]
    names = list(names)
    if not names or not all(isinstance(name, str) and name for name in names):
        raise ValueError(f"names must be non-empty module names, got {names!r}")
    wrapped = []
    for name, module in model.named_modules():
        if any(name == wanted or name.endswith("." + wanted) for wanted in names):
            module.forward = _in_fp32(module.forward)
            wrapped.append(name)
    if not wrapped:
        raise ValueError(f"no module of the model matches {names!r}")
    return wrapped


def _in_fp32(forward):
    @functools.wraps(forward)
    def run(*args, **kwargs):
        device_type = next((a.device.type for a in args if isinstance(a, torch.Tensor)), "cpu")
        args = [a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
                for a in args]  # fmt: skip
        with full_precision(), torch.autocast(device_type, enabled=False):
            return forward(*args, **kwargs)

    return run


def upcast_attention_scores(model: torch.nn.Module) -> None:
    """GPT-2's ``reorder_and_upcast_attn``, switched on in every attention layer: the scores
    q.k are computed in fp32 with autocast disabled (``torch.baddbmm``, scaled before the sum),
    the softmax in fp32; the rest of attention stays in the autocast dtype."""
    for module in model.modules():
        if hasattr(module, "reorder_and_upcast_attn") and hasattr(
            module, "_upcast_and_reordered_attn"
        ):
            module.reorder_and_upcast_attn = True
            original = module._upcast_and_reordered_attn

            @functools.wraps(original)
            def scores_in_fp32(*args, _original=original, **kwargs):
                with full_precision({"baddbmm"}):  # what its autocast(enabled=False) does
                    return _original(*args, **kwargs)

            module._upcast_and_reordered_attn = scores_in_fp32
    model.config.reorder_and_upcast_attn = True


@dataclasses.dataclass
class Fp16RangeScenario(BadBatchScenario):
    """The same fine-tuning (no bad batch) on a model whose residual stream has grown past
    what fp16 holds (``grow_residual_stream``): same function, same fp32 and bf16 losses, but
    the output projections' results pass 65504, so every fp16 forward pass overflows.

    ``growth=None`` chooses the factor from the model: the smallest power of two that puts the
    largest ``c_proj`` output at least ``margin`` times above 65504 in every batch of the run
    (on a CPU, in emulated fp16). ``applied_growth`` holds the factor used.

    ``train(...)`` takes the fixes to try: ``precision``, ``lr``, ``max_grad_norm``,
    ``keep_fp32`` (module names, see ``keep_in_fp32``) and ``upcast_attention=True``.
    ``heldout_loss(model, precision)`` is the mean loss on held-out batches.
    """

    steps: int = 20
    bad_step: int | None = None
    lr: float = 3e-4
    growth: float | None = None
    margin: float = 2.0
    heldout_batches: int = 4

    def load_model(self, *, grown: bool = True):
        model = super().load_model()
        model.set_attn_implementation("eager")  # the implementation GPT-2's upcast option needs
        if not grown:
            return model
        growth = self.growth or getattr(self, "applied_growth", None)
        growth = growth or self._growth_for(model)
        self.applied_growth = growth
        return grow_residual_stream(model, growth)

    def _growth_for(self, model) -> float:
        largest = min(projection_absmax(model, batch) for batch in self.batches)
        needed = self.margin * torch.finfo(torch.float16).max / largest
        return float(2 ** math.ceil(math.log2(needed)))

    def train(self, model=None, *, keep_fp32: Iterable[str] = (), upcast_attention: bool = False,
              **settings):  # fmt: skip
        model = self.load_model() if model is None else model
        if keep_fp32:
            keep_in_fp32(model, keep_fp32)
        if upcast_attention:
            upcast_attention_scores(model)
        return super().train(model, **settings)

    @property
    def heldout(self) -> list[dict]:
        """Held-out batches (the shipped "heldout" split), encoded like the training ones."""
        if getattr(self, "_heldout", None) is None:
            pairs = list(qa_pairs("heldout"))
            size = self.batch_size
            pairs = pairs[: size * self.heldout_batches]
            self._heldout = [
                encode_sft_batch(self.tokenizer, pairs[i : i + size], self.max_length)
                for i in range(0, len(pairs), size)
            ]
        return self._heldout

    def heldout_loss(self, model, precision: str = "fp32") -> float:
        """Mean completion-only loss of ``model`` on the held-out batches, its forward pass in
        ``precision`` ("fp32", "bf16", "fp16": emulated on a CPU, as in ``train``)."""
        from course_utils.env import pick_device

        device = pick_device(self.device)
        loop_precision, context = training_precision(precision, device)
        model.to(device).eval()
        losses = []
        try:
            with torch.no_grad(), context, precision_context(loop_precision, device.type):
                for batch in self.heldout:
                    batch = {key: value.to(device) for key, value in batch.items()}
                    losses.append(float(model(**batch).loss))
        finally:
            model.train()
        return sum(losses) / len(losses)


def projection_absmax(model: torch.nn.Module, batch: dict, precision: str = "fp32") -> float:
    """The largest |value| any attention or MLP output projection (``c_proj``) of a GPT-2
    produces on ``batch``, in one forward pass (fp32 by default)."""
    largest = [0.0]

    def hook(module, args, output):
        largest[0] = max(largest[0], float(output.detach().abs().max()))

    handles = [m.register_forward_hook(hook) for n, m in model.named_modules()
               if n.endswith("c_proj")]  # fmt: skip
    if not handles:
        raise TypeError("projection_absmax needs a GPT-2 model (modules named ...c_proj)")
    try:
        device = next(model.parameters()).device
        with torch.no_grad(), precision_context(precision, device.type):
            model(**{key: value.to(device) for key, value in batch.items()})
    finally:
        for handle in handles:
            handle.remove()
    return largest[0]


__all__ = [
    "BadBatchScenario",
    "completion_only_loss",
    "EmulatedBf16Autocast",
    "Fp16RangeScenario",
    "EmulatedFp16AutocastFp32Aware",
    "encode_sft_batch",
    "full_precision",
    "grow_residual_stream",
    "keep_in_fp32",
    "projection_absmax",
    "upcast_attention_scores",
    "long_questions",
    "qa_pairs",
    "training_precision",
]
