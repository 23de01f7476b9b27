"""The course's shipped text: where ``data/`` is, the corpus splits, token batches, held-out loss.

Taught in notebook 00, section "Ten seconds of mixed-precision training" (``token_batches``);
notebooks 02-04 and 08 use it too.

The corpus is English prose from the docstrings of Python's standard library (see
``data/README.md``). Documents are separated by ``<|endoftext|>`` lines.

>>> text = load_corpus("heldout")                                            # doctest: +SKIP
>>> for batch in token_batches(tok, "train", batch_size=8, seq_len=128, seed=0, num_batches=10):
...     loss = model(**batch).loss                                           # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import pathlib
import weakref
from collections.abc import Iterator

import torch

from course_utils.env import pick_device

SPLITS = ("train", "heldout")
CORPUS_NAME = "python_stdlib_docstrings"
DOC_SEPARATOR = "<|endoftext|>"

# Token ids of each (tokenizer, split), so repeated calls don't re-tokenize the corpus.
_TOKEN_CACHE: dict[tuple[int, pathlib.Path], tuple[weakref.ref, torch.Tensor]] = {}


def data_dir() -> pathlib.Path:
    """The course's ``data/`` folder: ``$COURSE_DATA_DIR`` if set, else ``data/`` beside the
    ``course_utils`` package (an editable install or a clone of the repository)."""
    override = os.environ.get("COURSE_DATA_DIR")
    if override:
        path = pathlib.Path(override).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"COURSE_DATA_DIR={override!r} is not a folder")
        return path
    return pathlib.Path(__file__).resolve().parents[1] / "data"


def corpus_path(split: str = "train") -> pathlib.Path:
    """Path of one split of the shipped corpus."""
    _check_split(split)
    return data_dir() / "corpus" / f"{CORPUS_NAME}.{split}.txt"


def load_corpus(split: str = "train") -> str:
    """The text of one split ("train" or "heldout") of the shipped corpus."""
    path = corpus_path(split)
    if not path.is_file():
        raise FileNotFoundError(f"corpus file {path} is missing: is data/ complete?")
    return path.read_text(encoding="utf-8")


def corpus_documents(split: str = "train") -> list[str]:
    """The documents of one split (the text between ``<|endoftext|>`` lines)."""
    docs = load_corpus(split).split(DOC_SEPARATOR)
    return [doc.strip() for doc in docs if doc.strip()]


def token_ids(tokenizer, split: str = "train") -> torch.Tensor:
    """All token ids of one split as a 1-D int64 tensor, each document preceded by the
    tokenizer's end-of-text token (GPT-2's document separator). Cached per tokenizer and file."""
    _check_split(split)
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is None:
        raise ValueError("the tokenizer has no eos_token_id: it is needed to separate documents")
    key = (id(tokenizer), corpus_path(split))
    cached = _TOKEN_CACHE.get(key)
    if cached is not None and cached[0]() is tokenizer:
        return cached[1]
    docs = corpus_documents(split)
    encoded = tokenizer(docs, add_special_tokens=False, verbose=False)["input_ids"]
    ids: list[int] = []
    for doc_ids in encoded:
        ids.append(eos)
        ids.extend(doc_ids)
    tensor = torch.tensor(ids, dtype=torch.long)
    _TOKEN_CACHE[key] = (weakref.ref(tokenizer), tensor)
    return tensor


def token_batches(
    tokenizer,
    split: str = "train",
    batch_size: int = 8,
    seq_len: int = 128,
    *,
    seed: int = 0,
    num_batches: int | None = None,
    device: str | torch.device | None = None,
) -> Iterator[dict[str, torch.Tensor]]:
    """Yield causal-LM batches ``{"input_ids", "attention_mask", "labels"}`` of shape
    ``(batch_size, seq_len)`` cut from one split of the corpus.

    The split is cut into non-overlapping windows of ``seq_len`` tokens, shuffled with ``seed``.
    ``num_batches=None`` gives one pass (the last incomplete batch is dropped); a number gives
    exactly that many batches, starting new passes as needed (each new pass reshuffles and
    shifts the windows by a random offset). Same arguments, same batches. ``labels`` equal
    ``input_ids``: Hugging Face causal-LM models shift them inside.
    """
    _check_positive_int("batch_size", batch_size)
    _check_positive_int("seq_len", seq_len)
    if seq_len < 2:
        raise ValueError(f"seq_len must be at least 2 (one input and one target), got {seq_len}")
    if num_batches is not None:
        _check_positive_int("num_batches", num_batches)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {seed!r}")
    if device is not None:  # checked here, at the call, not at the first batch
        device = pick_device(device)
    max_len = _tokenizer_max_length(tokenizer)
    if max_len is not None and seq_len > max_len:
        raise ValueError(
            f"seq_len={seq_len} is longer than the model's context ({max_len} positions, "
            "tokenizer.model_max_length): use a shorter seq_len"
        )
    ids = token_ids(tokenizer, split)
    windows_per_pass = (len(ids) - seq_len) // seq_len  # leaves room for a shifted pass
    batches_per_pass = windows_per_pass // batch_size
    if batches_per_pass < 1:
        raise ValueError(
            f"the {split!r} split ({len(ids)} tokens) is too small for one batch of "
            f"{batch_size} x {seq_len} tokens: use a smaller batch_size or seq_len"
        )
    return _batches(ids, batch_size, seq_len, seed, num_batches, batches_per_pass, device)


def _batches(ids, batch_size, seq_len, seed, num_batches, batches_per_pass, device):
    generator = torch.Generator().manual_seed(seed)
    total = batches_per_pass if num_batches is None else num_batches
    windows_per_pass = batches_per_pass * batch_size
    produced, pass_index = 0, 0
    while produced < total:
        offset = 0 if pass_index == 0 else int(torch.randint(seq_len, (1,), generator=generator))
        order = torch.randperm(windows_per_pass, generator=generator)
        for start in range(0, windows_per_pass, batch_size):
            if produced == total:
                return
            starts = offset + order[start : start + batch_size] * seq_len
            rows = starts[:, None] + torch.arange(seq_len)
            input_ids = ids[rows].to(device) if device is not None else ids[rows]
            yield {
                "input_ids": input_ids,
                "attention_mask": torch.ones_like(input_ids),
                "labels": input_ids.clone(),
            }
            produced += 1
        pass_index += 1


@torch.no_grad()
def heldout_loss(
    model,
    tokenizer,
    *,
    batch_size: int = 8,
    seq_len: int | None = None,
    num_batches: int | None = None,
    seed: int = 0,
) -> float:
    """Mean next-token cross-entropy (nats) of ``model`` on the held-out split.

    ``seq_len`` defaults to the model's context (at most 256); ``num_batches=None`` uses the
    whole split once. Runs in eval mode without gradients and restores the model's mode.
    """
    n_positions = getattr(model.config, "n_positions", None) or getattr(
        model.config, "max_position_embeddings", None
    )
    if seq_len is None:
        seq_len = min(256, n_positions or 256)
    if n_positions is not None and isinstance(seq_len, int) and seq_len > n_positions:
        raise ValueError(
            f"seq_len={seq_len} is longer than the model's context ({n_positions} positions)"
        )
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        losses = [
            model(**batch).loss.float().item()
            for batch in token_batches(
                tokenizer,
                "heldout",
                batch_size,
                seq_len,
                seed=seed,
                num_batches=num_batches,
                device=device,
            )
        ]
    finally:
        model.train(was_training)
    return math.fsum(losses) / len(losses)


def _check_split(split) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")


def _check_positive_int(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")


def _tokenizer_max_length(tokenizer) -> int | None:
    """``tokenizer.model_max_length`` when it is a real limit (HF uses ~1e30 for "none")."""
    value = getattr(tokenizer, "model_max_length", None)
    if isinstance(value, int) and 0 < value < 1_000_000:
        return value
    return None
