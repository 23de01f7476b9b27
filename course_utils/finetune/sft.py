"""Fine-tuning with TRL's ``SFTTrainer`` and a PEFT LoRA adapter, the course's way (notebook 05).

Taught in notebook 05, section "1. The original tutorial's code" (its part "The working
version"), and used by every run after it.

The pieces, each a small function you could write yourself after reading it:

- ``load_finetune_dataset(split)``: the shipped question/answer dataset (``data/finetune/``) as a
  ``datasets.Dataset`` with a ``text`` column;
- ``check_sft_dataset(dataset)``: clear errors for what ``SFTTrainer`` would choke on (a plain
  list, an empty dataset, no ``text`` field);
- ``lora_config()``: the original tutorial's LoRA (r=8, alpha 16, ``c_attn``/``c_proj``);
- ``sft_config(precision)``: an ``SFTConfig`` that states its precision explicitly (never TRL's
  default), runs on a CPU, logs every step and prints no progress bars;
- ``sft_trainer(...)``: the trainer, built from the above;
- ``available_precisions()``: what a Trainer accepts here (no bf16 on a V100 or T4);
- ``text_loss`` and ``generate_answer``: held-out loss and greedy generation, for before/after;
- ``outcome(f)``: "works" or the error ``f()`` raises, in one line (for showing API changes).

>>> train = load_finetune_dataset("train")                                     # doctest: +SKIP
>>> trainer = sft_trainer(model, tokenizer, sft_config("bf16"), train, peft_config=lora_config())
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import pathlib
import tempfile
import warnings
from collections.abc import Iterable, Sequence

import torch

from course_utils.data import data_dir
from course_utils.env import library_progress_bars_off, pick_device
from course_utils.precision import FORMATS

DATASET_NAME = "python_builtins_qa"
SPLITS = ("train", "heldout")
TEXT_FIELD = "text"

# Defaults of the course's CPU-sized run (notebook 05); scripts pass bigger ones on a GPU.
DEFAULT_MAX_LENGTH = 64
DEFAULT_BATCH_SIZE = 4
DEFAULT_LEARNING_RATE = 5e-3


# ---------------------------------------------------------------------------------- data


def finetune_dir() -> pathlib.Path:
    """``data/finetune``: the shipped fine-tuning dataset and its ``build_info.json``."""
    return data_dir() / "finetune"


def dataset_path(split: str = "train") -> pathlib.Path:
    """The JSON-lines file of one split ("train" or "heldout")."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")
    return finetune_dir() / f"{DATASET_NAME}.{split}.jsonl"


def load_finetune_dataset(split: str = "train", *, limit: int | None = None, names: bool = False):
    """One split of the shipped question/answer dataset as a ``datasets.Dataset`` with a ``text``
    column (and ``name``, the function each example is about, when ``names=True``).
    ``limit`` keeps the first ``limit`` examples."""
    from datasets import Dataset

    path = dataset_path(split)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: is data/ complete? (scripts/build_finetune_dataset.py rebuilds it)"
        )
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise ValueError(f"limit must be a positive int or None, got {limit!r}")
    with path.open(encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    columns = [TEXT_FIELD, "name"] if names else [TEXT_FIELD]
    rows = [{c: row[c] for c in columns} for row in rows[:limit]]
    return Dataset.from_list(rows)


def check_sft_dataset(dataset, *, text_field: str = TEXT_FIELD, what: str = "train_dataset"):
    """Return ``dataset`` if ``SFTTrainer`` can train on it, else raise a clear error:
    TypeError for a list or another container, ValueError when it is empty, KeyError when it
    has no ``text_field`` column, TypeError when that column does not hold strings."""
    from datasets import Dataset

    if isinstance(dataset, list | tuple):
        raise TypeError(
            f"{what} is a plain {type(dataset).__name__}: SFTTrainer needs a datasets.Dataset. "
            "Wrap your rows: datasets.Dataset.from_list(rows), with rows like "
            f'{{"{text_field}": "..."}}.'
        )
    if not isinstance(dataset, Dataset):
        raise TypeError(f"{what} must be a datasets.Dataset, got {type(dataset).__name__}")
    if len(dataset) == 0:
        raise ValueError(f"{what} is empty: there is nothing to train on")
    if text_field not in dataset.column_names:
        raise KeyError(
            f"{what} has no {text_field!r} field (its columns: {', '.join(dataset.column_names)}). "
            f"Rename the column holding the text (dataset.rename_column(old, {text_field!r})) or "
            f"set dataset_text_field in the SFTConfig."
        )
    first = dataset[0][text_field]
    if not isinstance(first, str):
        raise TypeError(
            f"{what}[0][{text_field!r}] is a {type(first).__name__}, not a string of text"
        )
    return dataset


def prompt_of(text: str) -> str:
    """The question line of an example, with its newline: what a learner types to ask the model
    (the answer follows on the next line)."""
    if not isinstance(text, str) or "\n" not in text:
        raise ValueError(
            f"expected 'Question: ...?' then the answer on the next line, got {text!r}"
        )
    return text.split("\n", 1)[0] + "\n"


# ---------------------------------------------------------------------------------- configs


def lora_config(
    r: int = 8,
    alpha: int = 16,
    target_modules: Sequence[str] = ("c_attn", "c_proj"),
    dropout: float = 0.0,
):
    """The original tutorial's LoRA adapter for GPT-2, plus ``fan_in_fan_out=True`` (GPT-2's
    ``c_attn``/``c_proj`` are ``Conv1D`` layers that store their weight transposed; PEFT warns
    and sets it itself if you leave it out). ``dropout`` is 0 so runs are reproducible.
    ``r`` is a positive int, ``alpha`` a positive number, ``0 <= dropout < 1`` and
    ``target_modules`` a non-empty list of module names (a plain string would be read by PEFT
    as one regular expression), else a ValueError/TypeError says which."""
    from peft import LoraConfig

    if not isinstance(r, int) or isinstance(r, bool) or r < 1:
        raise ValueError(f"r must be a positive int (the adapter's rank, e.g. 8), got {r!r}")
    if not _is_real(alpha) or not 0 < alpha < math.inf:
        raise ValueError(f"alpha must be a positive number (e.g. 16 = 2 r), got {alpha!r}")
    if not _is_real(dropout) or not 0 <= dropout < 1:
        raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
    if isinstance(target_modules, str | bytes) or not isinstance(target_modules, Iterable):
        raise TypeError(
            f"target_modules must be a list of module names such as ['c_attn', 'c_proj'], "
            f"got {type(target_modules).__name__} {target_modules!r}"
        )
    target_modules = list(target_modules)
    if not all(isinstance(name, str) and name for name in target_modules):
        raise TypeError(
            f"target_modules must be a list of module names (non-empty strings), "
            f"got {target_modules!r}"
        )
    if not target_modules:
        raise ValueError("target_modules must name at least one module, e.g. ['c_attn']")
    return LoraConfig(
        r=r,
        lora_alpha=alpha,
        target_modules=target_modules,
        lora_dropout=dropout,
        fan_in_fan_out=True,
        task_type="CAUSAL_LM",
    )


def sft_config(
    precision: str = "fp32",
    *,
    steps: int = 30,
    batch_size: int = DEFAULT_BATCH_SIZE,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    max_length: int = DEFAULT_MAX_LENGTH,
    seed: int = 0,
    device: str | torch.device | None = None,
    output_dir: str | None = None,
    **overrides,
):
    """An ``SFTConfig`` for a short, reproducible run in ``precision`` ("fp32", "bf16", "fp16").

    It sets ``bf16``/``fp16`` explicitly (TRL would turn bf16 on by default), ``use_cpu=True``
    when the device is a CPU (needed for bf16 there), no checkpoints, no progress bars, no
    reporting, a constant learning rate (so a shorter run is the start of a longer one), a log
    line every step and ``activation_checkpointing=False`` (TRL turns it on by
    default; at this size it only costs time). ``overrides`` go to ``SFTConfig`` as they are.
    ``learning_rate`` is a positive finite number. Without ``output_dir``, each config gets its
    own fresh folder inside one temporary folder per process, removed when the process exits
    (pass ``output_dir`` to keep what a run writes).
    """
    from trl import SFTConfig

    if precision not in FORMATS:
        raise ValueError(f"unknown precision {precision!r}: choose one of {', '.join(FORMATS)}")
    _check_no_conflict(precision, overrides)
    for name, value in (("steps", steps), ("batch_size", batch_size), ("max_length", max_length)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not _is_real(learning_rate) or not 0 < learning_rate < math.inf:
        raise ValueError(
            f"learning_rate must be a positive finite number (e.g. 2e-4), got {learning_rate!r}"
        )
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        # transformers.set_seed (run by the Trainer) seeds NumPy, which takes 0 <= seed < 2**32
        raise ValueError(f"seed must be an int with 0 <= seed < 2**32, got {seed!r}")
    device_type = pick_device(device).type
    settings = {
        "output_dir": output_dir or tempfile.mkdtemp(prefix="run-", dir=_scratch_folder()),
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        "use_cpu": device_type == "cpu",
        "max_steps": steps,
        "per_device_train_batch_size": batch_size,
        "learning_rate": learning_rate,
        "lr_scheduler_type": "constant",
        "max_length": max_length,
        "dataset_text_field": TEXT_FIELD,
        "seed": seed,
        "data_seed": seed,
        "logging_steps": 1,
        "save_strategy": "no",
        "eval_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "activation_checkpointing": False,
        "dataloader_num_workers": 0,
    }
    settings.update(overrides)
    return SFTConfig(**settings)


_SCRATCH: list[tempfile.TemporaryDirectory] = []  # the one course-sft-* folder of this process


def _scratch_folder() -> str:
    """This process's ``course-sft-*`` temporary folder, made on first use; ``TemporaryDirectory``
    removes it (and every run folder in it) when the process exits."""
    if not _SCRATCH or not pathlib.Path(_SCRATCH[0].name).is_dir():
        _SCRATCH[:] = [
            tempfile.TemporaryDirectory(prefix="course-sft-", ignore_cleanup_errors=True)
        ]
    return _SCRATCH[0].name


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_no_conflict(precision: str, overrides: dict) -> None:
    bf16, fp16 = overrides.get("bf16"), overrides.get("fp16")
    if bf16 and fp16:
        raise ValueError(
            "bf16=True and fp16=True together: choose one 16-bit format. bf16 (same range as fp32, "
            "no loss scaling) on GPUs that have it (Ampere and newer) and on CPUs; fp16 with loss "
            "scaling on older GPUs (V100, T4, RTX 20xx)."
        )
    for name, value in (("bf16", bf16), ("fp16", fp16)):
        if value is not None and bool(value) != (precision == name):
            raise ValueError(
                f"precision={precision!r} but {name}={value!r}: give the precision once, as "
                f"precision='fp32', 'bf16' or 'fp16'"
            )


def available_precisions(device: str | torch.device | None = None) -> tuple[str, ...]:
    """The precisions worth running on ``device`` (default: CUDA if present, else the CPU): all
    three on a CPU (bf16 through ``use_cpu=True``; fp16 accepted but not applied by the Trainer)
    and on GPUs with bf16 units; ("fp32", "fp16") on GPUs without them (V100, T4). There the
    Trainer accepts ``bf16=True`` all the same, because ``torch.cuda.is_bf16_supported()`` counts
    emulation by default; this asks ``including_emulation=False``."""
    device_type = pick_device(device).type
    if device_type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
        return ("fp32", "fp16")
    return FORMATS


# ---------------------------------------------------------------------------------- trainer


def sft_trainer(
    model,
    tokenizer,
    args,
    train_dataset,
    *,
    eval_dataset=None,
    peft_config=None,
    callbacks: Iterable = (),
    quiet: bool = True,
):
    """``SFTTrainer(model=..., args=..., train_dataset=..., processing_class=tokenizer,
    peft_config=...)`` after checking the datasets, with the datasets' progress bars off.
    ``quiet``: drop the callback that prints every log line (``trainer.state.log_history`` keeps
    them all)."""
    from transformers import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    if not isinstance(args, SFTConfig):
        raise TypeError(
            f"args must be a trl.SFTConfig (see sft_config()), got {type(args).__name__}"
        )
    check_sft_dataset(train_dataset, text_field=args.dataset_text_field)
    if eval_dataset is not None:
        check_sft_dataset(eval_dataset, text_field=args.dataset_text_field, what="eval_dataset")
    with library_progress_bars_off(), warnings.catch_warnings():
        # Library noise, not our code: PEFT's get_peft_model (called by SFTTrainer) reads
        # model.is_gradient_checkpointing, which transformers 5 renamed is_activation_checkpointing.
        warnings.filterwarnings(
            "ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning
        )
        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=list(callbacks),
        )
    if quiet:
        trainer.remove_callback(PrinterCallback)
    return trainer


def outcome(attempt) -> str:
    """Call ``attempt()`` and say what happened in one line: ``"works"``, or the exception's type
    and the first line of its message (for showing API changes side by side)."""
    try:
        attempt()
    except Exception as exc:  # noqa: BLE001 - we report whatever the library raised
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return f"{type(exc).__name__}: {first_line}"
    return "works"


# ---------------------------------------------------------------------------------- measuring


@torch.no_grad()
def text_loss(
    model,
    tokenizer,
    dataset,
    *,
    batch_size: int = 32,
    max_length: int = DEFAULT_MAX_LENGTH,
    text_field: str = TEXT_FIELD,
) -> float:
    """Mean next-token cross-entropy (nats per token) of ``model`` on ``dataset``'s texts, each
    followed by the end-of-text token and cut to ``max_length`` tokens, as ``SFTTrainer`` trains.

    Computed in fp32 whatever the run's precision (autocast off; 16-bit weights are upcast for
    the evaluation and restored after), so that every run is measured the same way.
    """
    check_sft_dataset(dataset, text_field=text_field, what="dataset")
    device = next(model.parameters()).device
    eos = tokenizer.eos_token or ""
    texts = [t if t.endswith(eos) else t + eos for t in dataset[text_field]]
    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    try:
        with _fp32_weights(model), torch.autocast(device.type, enabled=False):
            for start in range(0, len(texts), batch_size):
                batch = _encode(tokenizer, texts[start : start + batch_size], max_length, device)
                logits = _call_without_trainer_autocast(
                    model, input_ids=batch["input_ids"], attention_mask=batch["mask"]
                ).logits
                targets = batch["input_ids"][:, 1:].masked_fill(batch["mask"][:, 1:] == 0, -100)
                losses = torch.nn.functional.cross_entropy(
                    logits[:, :-1].float().transpose(1, 2), targets, reduction="sum"
                )
                total += losses.item()
                count += int((targets != -100).sum())
    finally:
        model.train(was_training)
    return total / count if count else math.nan


@torch.no_grad()
def generate_answer(model, tokenizer, prompt: str, *, max_new_tokens: int = 32) -> str:
    """The model's greedy continuation of ``prompt`` (fp32, stops at end-of-text), without the
    prompt."""
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a string, got {type(prompt).__name__}")
    if (
        not isinstance(max_new_tokens, int)
        or isinstance(max_new_tokens, bool)
        or max_new_tokens < 1
    ):
        raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
    device = next(model.parameters()).device
    inputs = tokenizer(prompt, return_tensors="pt").to(device)
    was_training = model.training
    model.eval()
    try:
        with _fp32_weights(model), torch.autocast(device.type, enabled=False):
            out = model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
    finally:
        model.train(was_training)
    return tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


def _call_without_trainer_autocast(model, **inputs):
    """Run ``model``'s forward without the autocast wrapper accelerate (inside the Trainer)
    installs on a mixed-precision model: that wrapper would turn autocast back on."""
    original_forward = model.__dict__.get("_original_forward")
    return original_forward(**inputs) if original_forward is not None else model(**inputs)


def _encode(tokenizer, texts: list[str], max_length: int, device) -> dict[str, torch.Tensor]:
    ids = [tokenizer(t)["input_ids"][:max_length] for t in texts]
    width = max(len(i) for i in ids)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, seq in enumerate(ids):
        input_ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    return {"input_ids": input_ids.to(device), "mask": mask.to(device)}


@contextlib.contextmanager
def _fp32_weights(model):
    """Upcast 16-bit parameters to fp32 for the block, then restore them exactly (a bf16 or fp16
    value converts to fp32 and back without change)."""
    low = [(p, p.dtype) for p in model.parameters() if p.dtype in (torch.bfloat16, torch.float16)]
    for p, _ in low:
        p.data = p.data.float()
    try:
        yield
    finally:
        for p, dtype in low:
            p.data = p.data.to(dtype)
