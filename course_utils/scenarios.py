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

``Fp16RangeScenario``: the same fine-tuning (no bad batch) on a model whose attention logits
have grown past fp16's largest value (65504): every fp16 forward pass overflows to inf, then NaN,
and the loss scaler skips every step; bf16 (fp32's exponent range) trains.

bf16 on a CPU: most CPUs have no bf16 matrix units, and their bf16 matmuls are many times slower
than fp32 ones. There, ``precision="bf16"`` runs ``EmulatedBf16Autocast``: the inputs and outputs
of every matmul are rounded to bf16 and the arithmetic is fp32, as on bf16 tensor cores (and as
``course_utils.precision`` emulates fp16). On a CUDA GPU it is ``torch.autocast`` itself.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import json
import math
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F

from course_utils.precision import FP16_OPS, EmulatedFp16Autocast, check_precision

PRECISION_CHOICES = ("bf16", "fp32", "fp16")


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


class EmulatedBf16Autocast(EmulatedFp16Autocast):
    """bf16 autocast numerics computed in fp32: the ops autocast runs in 16 bits (``FP16_OPS``:
    linear, matmul, addmm, attention...) get bf16-rounded inputs and a bf16-rounded output,
    in forward and in backward. ``calls`` counts them by name."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func not in FP16_OPS:
            return func(*args, **kwargs)
        self.calls[FP16_OPS[func]] += 1
        args = [_round_bf16(a) for a in args]
        kwargs = {key: _round_bf16(value) for key, value in kwargs.items()}
        return _round_bf16(func(*args, **kwargs))


def training_precision(precision: str, device: torch.device) -> tuple[str, Any]:
    """(the ``course_utils.train`` precision, an extra context around the run) for a scenario
    precision "bf16", "fp32" or "fp16" on ``device``: real autocast on CUDA; on a CPU, bf16 is
    emulated and fp16 is "fp16-emulated"."""
    if precision not in PRECISION_CHOICES:
        raise ValueError(f"unknown precision {precision!r}: choose one of {PRECISION_CHOICES}")
    if device.type == "cuda" or precision == "fp32":
        return check_precision(precision), contextlib.nullcontext()
    if precision == "fp16":
        return "fp16-emulated", contextlib.nullcontext()
    return "fp32", EmulatedBf16Autocast()  # weights fp32, bf16-rounded matmuls around them


# ----------------------------------------------------------------------------- data


@functools.lru_cache(maxsize=1)
def qa_pairs() -> tuple[tuple[str, str], ...]:
    """The shipped question/answer pairs as (prompt, answer): the prompt is the question line."""
    from course_utils.finetune import dataset_path

    pairs = []
    with dataset_path("train").open(encoding="utf-8") as file:
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

    def __post_init__(self) -> None:
        if self.bad_step is not None and not 1 < self.bad_step <= self.steps:
            raise ValueError(f"bad_step must be None or in 2..steps, got {self.bad_step}")
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
        progress: bool = False,
    ):
        """Train (a fresh model unless ``model`` is given) and return the History, whose steps
        are numbered as in the full run. ``steps``: the last step to run (default: all)."""
        from course_utils.env import pick_device
        from course_utils.train import train

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

        def make_optimizer(params):
            optimizer = torch.optim.AdamW(params, lr=lr)
            if saved_optimizer is not None:  # AdamW's moments as they were at the checkpoint
                # a copy: load_state_dict keeps the tensors it is given, and the run updates them
                optimizer.load_state_dict(copy.deepcopy(saved_optimizer))
                for group in optimizer.param_groups:
                    group["lr"] = lr
            return optimizer

        with context:
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
            )
        if isinstance(context, EmulatedBf16Autocast):
            history.precision = "bf16 (emulated)"
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


def grow_attention_logits(model: torch.nn.Module, factor: float) -> torch.nn.Module:
    """Multiply every GPT-2 attention layer's query projection by ``factor``, in place: every
    attention logit q.k grows by ``factor``, as long training can make it grow ("attention logit
    growth", Dehghani et al. 2023, https://arxiv.org/abs/2302.05442)."""
    with torch.no_grad():
        for block in model.transformer.h:
            width = block.attn.embed_dim
            block.attn.c_attn.weight[:, :width] *= factor  # Conv1D: columns [0, width) = queries
            block.attn.c_attn.bias[:width] *= factor
    return model


@dataclasses.dataclass
class Fp16RangeScenario(BadBatchScenario):
    """The same fine-tuning, without a bad batch, on a model whose attention logits were grown
    (``grow_attention_logits``), with eager attention, which computes the logits as a matrix of
    the autocast dtype: in fp16 they pass 65504 in every layer and every batch; in bf16 (largest
    value about 3.4e38) they stay finite.

    ``logit_growth=None`` chooses the growth factor from the model: a power of two that puts the
    smallest per-layer, per-batch largest logit at least ``margin`` times above 65504 (checked on
    every batch of the run). ``applied_growth`` holds the factor used.
    """

    steps: int = 12
    bad_step: int | None = None
    logit_growth: float | None = None
    margin: float = 4.0

    def load_model(self):
        model = super().load_model()
        model.set_attn_implementation("eager")
        growth = self.logit_growth or getattr(self, "applied_growth", None)
        growth = growth or self._growth_for(model)
        self.applied_growth = growth
        return grow_attention_logits(model, growth)

    def _growth_for(self, model) -> float:
        from course_utils.attention_overflow import attention_logit_max

        smallest = min(min(attention_logit_max(model, batch)) for batch in self.batches)
        needed = self.margin * torch.finfo(torch.float16).max / smallest
        return float(2 ** math.ceil(math.log2(needed)))


__all__ = [
    "BadBatchScenario",
    "completion_only_loss",
    "EmulatedBf16Autocast",
    "Fp16RangeScenario",
    "encode_sft_batch",
    "grow_attention_logits",
    "long_questions",
    "qa_pairs",
    "training_precision",
]
