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

_SHORT = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}
_NAMES = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}


def _from_config_file(path: pathlib.Path) -> str | None:
    config = json.loads(path.read_text(encoding="utf-8"))
    name = config.get("dtype") or config.get("torch_dtype")
    return _NAMES.get(name) if isinstance(name, str) else None


def saved_dtype(ident: str, search: Iterable[pathlib.Path] = ()) -> str | None:
    """ "bf16", "fp16", "fp32" for the checkpoint ``ident`` names, or None when it cannot be found
    on this machine (or says nothing). Relative folders are looked up in ``search``, then in the
    current directory. Never raises, never downloads."""
    from course_utils import models

    try:
        if ident in models.shipped_models():
            return _SHORT.get(models.checkpoint_dtype(models.model_path(ident)))
        path = pathlib.Path(ident).expanduser()
        bases = [pathlib.Path()] if path.is_absolute() else [*search, pathlib.Path.cwd()]
        for base in bases:
            folder = path if path.is_absolute() else base / path
            if (folder / "config.json").is_file():
                return _SHORT.get(models.checkpoint_dtype(folder))
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(ident, "config.json")
        if isinstance(cached, str):
            return _from_config_file(pathlib.Path(cached))
    except Exception:  # noqa: BLE001 -- a name that is no checkpoint is simply unknown
        return None
    return None
