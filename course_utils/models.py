"""Load the course's shipped models (offline) the way a learner loads ``gpt2`` from the Hub.

Taught in notebook 00, section "Ten seconds of mixed-precision training" (loading), and notebook
04, section "2. The weights stay fp32, if they were loaded in fp32" (a bf16 checkpoint).

The course ships ``tiny-gpt2``: a small GPT-2 (1,350,400 parameters, saved in fp32) trained on CPU
by ``scripts/build_tiny_model.py`` (``data/models/tiny-gpt2/build_info.json`` says how and how well).

>>> model, tokenizer = load_model_and_tokenizer()                  # doctest: +SKIP
>>> model, tokenizer = load_model_and_tokenizer("gpt2")            # online only  # doctest: +SKIP

Which dtype the weights get: transformers 5's ``from_pretrained`` defaults to ``dtype="auto"``,
the dtype the checkpoint was saved in. ``save_pretrained_as`` writes a copy of a model in another
dtype (e.g. bf16, as many LLM checkpoints are saved) and ``checkpoint_dtype`` reads which dtype a
folder will load in by default; notebook 04 (section 2) uses them to show that a bf16 checkpoint
loads bf16 and then trains with no fp32 master weights unless ``dtype=torch.float32`` is passed.
"""

from __future__ import annotations

import copy
import json
import os
import pathlib
import shutil
import struct
import tempfile

import torch

from course_utils.data import data_dir
from course_utils.env import library_progress_bars_off, pick_device
from course_utils.precision import FORMATS, dtype_name, to_dtype

DEFAULT_MODEL = "tiny-gpt2"


class ModelNotAvailableError(ValueError):
    """A model name that is neither shipped with the course nor loadable from the Hub here."""


def models_dir() -> pathlib.Path:
    """``data/models``: one folder per shipped model."""
    return data_dir() / "models"


def shipped_models() -> list[str]:
    """Names of the models shipped in ``data/models`` (folders with a ``config.json``)."""
    root = models_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "config.json").is_file())


SHIPPED_MODELS: tuple[str, ...] = tuple(shipped_models())


def model_path(name: str = DEFAULT_MODEL) -> pathlib.Path:
    """The folder of a shipped model (what ``from_pretrained`` is given)."""
    _check_name(name)
    if name not in shipped_models():
        raise ModelNotAvailableError(
            f"{name!r} is not a shipped model; shipped models: {_shipped_list()}"
        )
    return models_dir() / name


def load_model_and_tokenizer(
    name: str = DEFAULT_MODEL,
    *,
    dtype: torch.dtype | str | None = None,
    device: str | torch.device | None = None,
):
    """``(model, tokenizer)`` for a shipped model, loaded offline with
    ``AutoModelForCausalLM.from_pretrained(path)`` and ``AutoTokenizer.from_pretrained(path)``.

    Any other ``name`` (``"gpt2"``, a Hub id, a local folder) goes to ``from_pretrained`` as is,
    which needs the internet unless it is cached. ``dtype`` ("fp32", "bf16", "fp16" or a
    ``torch.dtype``) sets the weights' dtype; the default (None) passes no dtype, so transformers
    uses ``dtype="auto"``: the dtype the checkpoint was saved in (fp32 for tiny-gpt2, bf16 for a
    checkpoint saved in bf16, see ``checkpoint_dtype``); ``device`` moves the model
    (default: the CPU, as ``from_pretrained`` leaves it). The model comes back as
    ``from_pretrained`` returns it: in eval mode (call ``model.train()`` before training).
    The tokenizer has a pad token (for gpt2 from the Hub, the eos token is used as pad).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _check_name(name)
    torch_dtype = _resolve_dtype(dtype)
    if device is not None:  # the course's one device resolver, before anything is loaded
        device = pick_device(device)
    source = str(model_path(name)) if name in shipped_models() else name
    kwargs = {} if torch_dtype is None else {"dtype": torch_dtype}
    try:
        with library_progress_bars_off():
            tokenizer = AutoTokenizer.from_pretrained(source)
            model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as exc:  # not found, offline, no connection, not a causal LM
        raise ModelNotAvailableError(_not_available_message(name, exc)) from exc
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    if getattr(model, "loss_type", "") is None:
        # GPT2LMHeadModel's class name matches no loss family, so transformers warns on every
        # first forward and then uses the causal-LM loss anyway; name that loss to stay quiet.
        model.loss_type = "ForCausalLM"
    if device is not None:
        model.to(device)
    return model, tokenizer


_SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "BF16": torch.bfloat16,
    "F16": torch.float16,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
}


def save_pretrained_as(model, tokenizer, folder, dtype) -> pathlib.Path:
    """Save a copy of ``model`` converted to ``dtype`` (and ``tokenizer``, if not None) in
    ``folder`` with ``save_pretrained`` (safetensors), as a checkpoint saved in that dtype looks.
    ``model`` itself is left as it was. Returns the folder. Taught in notebook 04, section 2."""
    from transformers import PreTrainedModel

    if not isinstance(model, PreTrainedModel):
        raise TypeError(f"model must be a transformers PreTrainedModel, got {type(model).__name__}")
    torch_dtype = _resolve_dtype(dtype)
    if torch_dtype is None:
        raise ValueError("dtype is required: the dtype to save the weights in, e.g. 'bf16'")
    if not isinstance(folder, str | os.PathLike):
        raise TypeError(f"folder must be a path, got {folder!r}")
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # Write everything into a fresh folder beside the target, then move the files in: a full
    # disk or Ctrl-C while saving leaves the previous checkpoint in ``folder`` as it was.
    staging = pathlib.Path(
        tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent)
    )
    try:
        with library_progress_bars_off():
            copy.deepcopy(model).to(torch_dtype).save_pretrained(staging, safe_serialization=True)
            if tokenizer is not None:
                tokenizer.save_pretrained(staging)
        for path in sorted(staging.iterdir(), key=lambda p: p.name == "config.json"):
            os.replace(path, folder / path.name)  # each file whole; config.json last
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def checkpoint_dtype(folder) -> torch.dtype | None:
    """The dtype ``from_pretrained(folder)`` loads the weights in by default (``dtype="auto"``),
    following transformers 5's rule: the ``dtype`` (or older ``torch_dtype``) of config.json,
    else the dtype of the first floating-point tensor in model.safetensors; None if neither says.
    """
    if not isinstance(folder, str | os.PathLike):
        raise TypeError(f"folder must be a path, got {folder!r}")
    folder = pathlib.Path(folder)
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"no config.json in {folder}: not a saved model folder")
    config = json.loads(config_file.read_text())
    name = config.get("dtype") or config.get("torch_dtype")
    if isinstance(name, str) and isinstance(getattr(torch, name, None), torch.dtype):
        return getattr(torch, name)
    weights = folder / "model.safetensors"
    if not weights.is_file():
        return None
    with weights.open("rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
    for key, entry in header.items():
        if key != "__metadata__" and entry["dtype"] in _SAFETENSORS_DTYPES:
            return _SAFETENSORS_DTYPES[entry["dtype"]]
    return None


def count_parameters(model: torch.nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (shared tensors counted once), optionally only trainable ones."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _check_name(name) -> None:
    if not isinstance(name, str) or not name.strip():
        raise TypeError(f"model name must be a non-empty string, got {name!r}")


def _resolve_dtype(dtype) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        if dtype is not None and not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating-point dtype, got {dtype}")
        return dtype
    names = [n for f in FORMATS for n in (f, dtype_name(to_dtype(f), long=True))]
    if isinstance(dtype, str) and dtype.lower() in names:
        return to_dtype(dtype.lower())
    raise ValueError(f"unknown dtype {dtype!r}: use one of {', '.join(names)} or a torch.dtype")


def _shipped_list() -> str:
    names = shipped_models()
    return ", ".join(repr(n) for n in names) if names else f"none (no models in {models_dir()})"


def _not_available_message(name: str, exc: Exception) -> str:
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}
    why = "HF_HUB_OFFLINE is set, so the Hub was not asked" if offline else f"{exc}".splitlines()[0]
    return (
        f"cannot load model {name!r}: it is not shipped with the course and the Hugging Face Hub "
        f"could not provide it ({why}).\n"
        f"Shipped models (work offline): {_shipped_list()}.\n"
        "To load a Hub model such as 'gpt2', you need internet access and HF_HUB_OFFLINE unset "
        "(in Python: os.environ.pop('HF_HUB_OFFLINE', None) before importing transformers)."
    )
