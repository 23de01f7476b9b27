"""The dtype a checkpoint was saved in, found without downloading anything: a model the course
ships (``"tiny-gpt2"``), a local folder with a ``config.json``, or a Hub id already in the local
Hugging Face cache. transformers 5 loads a checkpoint in that dtype by default (``dtype="auto"``).

Taught in notebook 09.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterable

import torch

from course_utils.precision import dtype_name, to_dtype


def short_name(value) -> str | None:
    """The course's name of a dtype: ``torch.bfloat16``, ``"bfloat16"``, ``"torch.bfloat16"``,
    ``"bf16"`` -> ``"bf16"``; ``torch.half`` / ``"half"`` -> ``"fp16"``. None for anything that
    names no dtype."""
    if isinstance(value, str):
        text = value.strip().lower().removeprefix("torch.")
        dtype = getattr(torch, text, None) if text.isidentifier() else None
        if not isinstance(dtype, torch.dtype):
            try:
                dtype = to_dtype(text)
            except ValueError:
                return None
        value = dtype
    return dtype_name(value) if isinstance(value, torch.dtype) else None


def _from_config_file(path: pathlib.Path) -> str | None:
    config = json.loads(path.read_text(encoding="utf-8"))
    return short_name(config.get("dtype") or config.get("torch_dtype"))


def saved_dtype(ident: str, search: Iterable[pathlib.Path] = ()) -> str | None:
    """ "bf16", "fp16", "fp32" for the checkpoint ``ident`` names, or None when it cannot be found
    on this machine (or says nothing). Relative folders are looked up in ``search``, then in the
    current directory. Never raises, never downloads."""
    from course_utils import models

    try:
        if ident in models.shipped_models():
            return short_name(models.checkpoint_dtype(models.model_path(ident)))
        path = pathlib.Path(ident).expanduser()
        bases = [pathlib.Path()] if path.is_absolute() else [*search, pathlib.Path.cwd()]
        for base in bases:
            folder = path if path.is_absolute() else base / path
            if (folder / "config.json").is_file():
                return short_name(models.checkpoint_dtype(folder))
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(ident, "config.json")
        if isinstance(cached, str):
            return _from_config_file(pathlib.Path(cached))
    except Exception:  # noqa: BLE001 -- a name that is no checkpoint is simply unknown
        return None
    return None
