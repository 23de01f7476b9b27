"""Checkpoints that survive a crash, and never mix runs: atomic writes, checksums, run ids.

A checkpoint is written in three moves, so that a run killed at any moment never loses the last
good one (``course_utils.atomic.write_bytes_atomic``):

1. the bytes go to a new temporary file in the same folder, created with ``tempfile.mkstemp``
   (``O_CREAT | O_EXCL``: a name planted there, a symlink included, is never written through);
2. ``os.fsync`` pushes them to the disk;
3. ``os.replace`` renames the temporary file to its final name, in one atomic operation (POSIX
   ``rename``; on Windows ``MoveFileEx`` with replace), then the folder itself is fsynced.

Until step 3 the final name does not exist; after it, the file is complete. A reader never sees
half a checkpoint under a final name, however the writer died.

On disk, a checkpoint is one line of header,
``course-checkpoint v2 sha256=<hex> bytes=<n> run=<run id> finite=<1|0>``, followed by the
``torch.save`` payload. Loading checks the length and the SHA-256 digest before
``torch.load(..., weights_only=True)`` (which refuses to unpickle arbitrary objects), so a
truncated or corrupted file is reported as such (``CorruptCheckpointError``), never loaded. A
payload that ``weights_only=True`` could not load back (a ``Path``, a ``datetime``, numpy
values...) is refused when it is saved, not discovered at the restore.

    store = CheckpointStore("checkpoints", keep_last=3)
    store.save(step, model, optimizer)
    step = store.restore(model, optimizer)        # the newest good checkpoint of this run

**One folder, one run.** Every ``CheckpointStore`` is a run with its own id, written into the
header of each of its checkpoints. A store restores, lists, prunes and overwrites only the
checkpoints of its own run. Of the three ways to keep runs apart (a run id in the header, a
fresh folder per run, a refusal), the store does the first and the third:

- a new store refuses (``FileExistsError``, with what to do) a folder that already holds
  checkpoints of another run: running a ``NanGuard("ck")`` cell a second time would otherwise
  restore the first run's weights at the first NaN, or prune the new run's saves. The folder is
  left untouched. Pass a fresh folder, or ``resume=True`` to continue the run whose checkpoint
  is newest there (a script restarted after a crash), or delete the old checkpoints yourself.
- the run id guards the rest: a file of another run that appears later (a second process on the
  same folder) is never restored, pruned or overwritten (saving over it raises
  ``FileExistsError``).

A fresh sub-folder per run was not chosen: it would move the checkpoints away from the folder
the learner named, and resuming would mean finding the right sub-folder by hand.

**Never poisoned.** ``save()`` refuses weights that hold NaN/inf (``NonFiniteWeightsError``,
nothing written) unless ``allow_nonfinite=True`` (what ``Checkpointer`` passes, to show what a
plain training script does). Pruning to ``keep_last`` never deletes the newest checkpoint whose
weights are finite: a run that keeps saving NaN weights cannot push out its last good one.

Taught in notebook 06, sections "1. A run that is stable for 100 steps, then NaN"
(``Checkpointer``), "3. Fixes compared on the same run" (resuming) and "Checkpoints that survive
a crash"; tested in ``tests/nan/test_checkpoints.py``, ``tests/nan/test_checkpoint_items.py``
and ``tests/nan/test_checkpoint_faults.py``.
"""

from __future__ import annotations

import copy
import hashlib
import io
import itertools
import logging
import math
import os
import pathlib
import re
import stat
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import torch

from course_utils.atomic import write_bytes_atomic

logger = logging.getLogger(__name__)

MAGIC = b"course-checkpoint v2"
SUFFIX = ".ckpt"
NAME_PATTERN = re.compile(r"^step_(\d{6,})\.ckpt$")
HEADER_PATTERN = re.compile(
    rb"course-checkpoint (?:v1 sha256=([0-9a-f]{64}) bytes=(\d+)"
    rb"|v2 sha256=([0-9a-f]{64}) bytes=(\d+) run=([0-9A-Za-z_.-]+) finite=([01]))"
)
RUN_ID_PATTERN = re.compile(r"[0-9A-Za-z_.-]{1,64}")
# Temporary files: course_utils.atomic's (".step_000120.ckpt.<random>.tmp") and, from older
# versions of this module, ".step_000120.ckpt.tmp-<pid>".
TEMP_GLOBS = (f".step_*{SUFFIX}.*.tmp", f".step_*{SUFFIX}.tmp-*")
STALE_TEMP_SECONDS = 3600  # a temp file untouched this long has no writer left
MAX_HEADER = 256


class CorruptCheckpointError(ValueError):
    """A checkpoint file that is truncated, corrupted or not a course checkpoint."""


class NonFiniteWeightsError(ValueError):
    """Weights holding NaN/inf were about to be saved (``allow_nonfinite=False``)."""


# ----------------------------------------------------------------------------- one file


def save_checkpoint(
    path: str | os.PathLike, payload: dict[str, Any], *, run_id: str = "-"
) -> pathlib.Path:
    """Write ``payload`` (tensors, numbers, strings, lists and dicts of them) to ``path``
    atomically (``course_utils.atomic``: temporary file, fsync, rename). Returns the path.

    Raises ``TypeError``, before anything is written, for a payload that
    ``torch.load(weights_only=True)`` could not read back (a ``Path``, a ``datetime``, numpy
    values...). The header records ``run_id`` and whether the weights (``payload["model"]``)
    are all finite."""
    if not isinstance(payload, dict):
        raise TypeError(f"payload must be a dict, got {type(payload).__name__}")
    if not isinstance(run_id, str) or not (run_id == "-" or RUN_ID_PATTERN.fullmatch(run_id)):
        raise ValueError(f"run_id must be 1-64 letters, digits, '_', '.' or '-', got {run_id!r}")
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    buffer.seek(0)
    unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(buffer)
    if unsafe:
        raise TypeError(
            f"{path.name}: not saved: torch.load(weights_only=True) could not load it back, "
            f"because the payload holds {', '.join(sorted(set(unsafe)))}; convert those values "
            "to plain Python ones (numbers, str, lists, dicts) or tensors first"
        )
    body = buffer.getvalue()
    weights = payload.get("model")
    finite = not nonfinite_tensors(weights) if isinstance(weights, Mapping) else True
    header = (
        MAGIC
        + f" sha256={hashlib.sha256(body).hexdigest()} bytes={len(body)} "
        f"run={run_id} finite={int(finite)}\n".encode()
    )
    return write_bytes_atomic(path, header + body)


def read_header(path: str | os.PathLike) -> dict[str, Any] | None:
    """The header of a checkpoint file: ``{"run": ..., "finite": ..., "sha256": ..., "bytes":
    ...}`` (``run`` is None for a v1 file, which has none), or None if the first line is not
    a course checkpoint header. Reads only the first line; raises ``OSError`` if unreadable."""
    with open(path, "rb") as file:
        first = file.read(MAX_HEADER)
    newline = first.find(b"\n")
    match = HEADER_PATTERN.fullmatch(first[:newline]) if newline >= 0 else None
    if match is None:
        return None
    if match.group(1) is not None:  # v1
        return {"sha256": match.group(1).decode(), "bytes": int(match.group(2)), "run": None,
                "finite": None, "length": newline + 1}  # fmt: skip
    return {
        "sha256": match.group(3).decode(),
        "bytes": int(match.group(4)),
        "run": match.group(5).decode(),
        "finite": match.group(6) == b"1",
        "length": newline + 1,
    }


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint``; check its length and SHA-256 first.

    Raises ``FileNotFoundError`` if there is no such file and ``CorruptCheckpointError`` (a
    ValueError) if it is truncated, corrupted or not a course checkpoint.
    """
    path = pathlib.Path(path)
    data = path.read_bytes()
    newline = data.find(b"\n", 0, MAX_HEADER)
    match = HEADER_PATTERN.fullmatch(data[:newline]) if newline >= 0 else None
    if match is None:
        raise CorruptCheckpointError(
            f"{path.name}: not a course checkpoint (its first line is not "
            f"'{MAGIC.decode()} sha256=... bytes=...'); the file may be truncated or overwritten"
        )
    digest = (match.group(1) or match.group(3)).decode()
    expected_bytes = int(match.group(2) or match.group(4))
    body = data[newline + 1 :]
    if len(body) != expected_bytes:
        raise CorruptCheckpointError(
            f"{path.name}: truncated: its payload is shorter than its header says "
            f"({len(body)} of {expected_bytes} bytes): a copy or a write that did not finish?"
        )
    if hashlib.sha256(body).hexdigest() != digest:
        raise CorruptCheckpointError(
            f"{path.name}: corrupted: the SHA-256 of its payload does not match the header "
            "(bytes changed on disk or in transit)"
        )
    try:
        payload = torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)
    except Exception as exc:  # a valid digest over bytes torch cannot read: written by a bug
        raise CorruptCheckpointError(f"{path.name}: torch.load failed: {exc}") from exc
    if not isinstance(payload, dict):
        raise CorruptCheckpointError(f"{path.name}: payload is not a dict")
    return payload


# ----------------------------------------------------------------------------- training state


def training_state(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scaler: Any = None,
    *,
    step: int,
    extra: dict | None = None,
) -> dict[str, Any]:
    """What a checkpoint holds: the weights, the optimizer state (AdamW's moments...), the loss
    scaler's state, the step, the CPU random generator and ``extra``: plain JSON-like values
    (None, bool, int, float, str, lists, dicts with str keys), checked here so that a value
    ``weights_only=True`` cannot load back is refused now (``TypeError`` naming it)."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if extra is not None and not isinstance(extra, Mapping):
        raise TypeError(f"extra must be a dict of plain values, got {type(extra).__name__}")
    state: dict[str, Any] = {
        "step": _check_step(step),
        "model": model.state_dict(),  # serialized at once by save_checkpoint: no copy needed
        "rng_cpu": torch.get_rng_state(),
        "extra": _plain(dict(extra or {}), "extra"),
    }
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    if scaler is not None and hasattr(scaler, "state_dict"):
        state["scaler"] = scaler.state_dict()
    return state


def apply_training_state(
    state: dict[str, Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scaler: Any = None,
) -> int:
    """Load ``state`` (from ``training_state``) into the objects given; return its step.

    All or nothing: everything is checked against the model and the optimizer first (names,
    shapes, parameter groups), so a checkpoint that does not fit raises ``ValueError`` and
    changes nothing."""
    if not isinstance(state, Mapping) or not isinstance(state.get("model"), Mapping):
        raise ValueError("not a training state: expected a dict with 'step' and 'model'")
    step = _check_step(state.get("step"))
    _check_fits_model(state["model"], model)
    if optimizer is not None and "optimizer" in state:
        _check_fits_optimizer(state["optimizer"], optimizer)
    rng = state.get("rng_cpu")
    if rng is not None and not (isinstance(rng, torch.Tensor) and rng.dtype == torch.uint8):
        raise ValueError("this checkpoint's rng_cpu is not a random generator state")
    scaler_state = state.get("scaler") if scaler is not None else None
    if scaler_state is not None and hasattr(scaler, "load_state_dict"):
        scaler_copy = copy.deepcopy(scaler)  # try the scaler's own checks on a copy first
        try:
            scaler_copy.load_state_dict(scaler_state)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f"this checkpoint's loss-scaler state does not load: {exc}") from exc
    try:
        model.load_state_dict(state["model"])
        if optimizer is not None and "optimizer" in state:
            # a copy: load_state_dict keeps the very tensors it is given (same dtype and device),
            # and training then updates them in place, which would change ``state`` too
            optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        if scaler_state is not None:
            scaler.load_state_dict(scaler_state)
    except (KeyError, RuntimeError) as exc:  # pragma: no cover - checked above
        raise ValueError(
            f"this checkpoint does not fit the model/optimizer given (another architecture or "
            f"parameter list?): {str(exc).splitlines()[0]}"
        ) from exc
    if rng is not None:
        torch.set_rng_state(rng)
    return step


def nonfinite_tensors(tensors: Mapping[str, Any]) -> list[str]:
    """Names of the floating-point tensors in ``tensors`` that hold a NaN or an inf."""
    return [
        name
        for name, tensor in tensors.items()
        if isinstance(tensor, torch.Tensor)
        and (tensor.is_floating_point() or tensor.is_complex())
        and not bool(torch.isfinite(tensor).all())
    ]


def _check_fits_model(weights: Mapping[str, Any], model: torch.nn.Module) -> None:
    own = model.state_dict()
    missing = [name for name in own if name not in weights]
    unexpected = [name for name in weights if name not in own]
    misfit = [
        f"{name}: {tuple(weights[name].shape)} in the checkpoint, {tuple(tensor.shape)} here"
        for name, tensor in own.items()
        if name in weights
        and isinstance(tensor, torch.Tensor)
        and (not isinstance(weights[name], torch.Tensor) or weights[name].shape != tensor.shape)
    ]
    if missing or unexpected or misfit:
        details = (
            ([f"missing {missing[:3]}"] if missing else [])
            + ([f"unexpected {unexpected[:3]}"] if unexpected else [])
            + misfit[:3]
        )
        raise ValueError(
            "this checkpoint does not fit the model given (another architecture?): "
            + "; ".join(details)
        )


def _check_fits_optimizer(saved: Any, optimizer: torch.optim.Optimizer) -> None:
    groups = saved.get("param_groups") if isinstance(saved, Mapping) else None
    if not isinstance(groups, list) or not isinstance(saved.get("state"), Mapping):
        raise ValueError("this checkpoint's optimizer state is not an optimizer state_dict")
    sizes = [len(g.get("params", ())) if isinstance(g, Mapping) else -1 for g in groups]
    own = [len(group["params"]) for group in optimizer.param_groups]
    if sizes != own:
        raise ValueError(
            "this checkpoint does not fit the optimizer given (another parameter list?): "
            f"parameter groups of sizes {sizes} in the checkpoint, {own} here"
        )


def _check_step(step: Any) -> int:
    if isinstance(step, bool) or not isinstance(step, int):
        raise TypeError(f"step must be an int >= 0, got {step!r}")
    if step < 0:
        raise ValueError(f"step must be an int >= 0, got {step}")
    return int(step)


def _plain(value: Any, where: str) -> Any:
    """``value`` as plain JSON-like Python values, or ``TypeError`` naming where it is not."""
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, bool):  # numpy.bool_ is not a bool subclass; a bool subclass is odd
        return bool(value)
    if isinstance(value, float):  # numpy.float64 is a float subclass: keep its value
        return float(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, list):
        return [_plain(item, f"{where}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where} has the key {key!r} ({type(key).__name__}): use str keys")
            out[str.__str__(key)] = _plain(item, f"{where}[{key!r}]")
        return out
    kind = type(value).__name__
    hint = {
        "tuple": "pass a list",
        "Path": "pass str(path)",
        "PosixPath": "pass str(path)",
        "WindowsPath": "pass str(path)",
        "datetime": "pass value.isoformat()",
        "date": "pass value.isoformat()",
        "ndarray": "pass value.tolist()",
    }.get(kind, "pass a plain number (value.item()), a str, a list or a dict")
    raise TypeError(
        f"{where} is a {kind} ({type(value).__module__}.{kind}): a checkpoint's extra holds "
        f"only None, bool, int, float, str, lists and dicts with str keys, the values "
        f"torch.load(weights_only=True) reads back; {hint}"
    )


# ----------------------------------------------------------------------------- a folder of them


class CheckpointStore:
    """A folder of checkpoints ``step_000120.ckpt`` of ONE run, newest kept, corrupt ones skipped.

    ``save(step, model, optimizer, scaler)`` writes one atomically and deletes all but the
    ``keep_last`` newest of this run (never the newest one with finite weights).
    ``restore(model, optimizer, scaler)`` loads the newest of this run that passes its checks,
    says which ones it skipped and why (``on_message``, default: the logger), and returns its
    step. ``discard(step)`` removes one (e.g. a checkpoint that led to NaN again).

    A new store refuses a folder that holds another run's checkpoints (``FileExistsError``);
    ``resume=True`` continues the run of the newest checkpoint there (see the module docstring).
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        keep_last: int | None = 3,
        on_message: Callable[[str], None] | None = None,
        *,
        resume: bool = False,
    ) -> None:
        if keep_last is not None and (
            isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1
        ):
            raise ValueError(f"keep_last must be None or an int >= 1, got {keep_last!r}")
        if not isinstance(directory, str | os.PathLike):
            raise TypeError(f"directory must be a str or a path, got {type(directory).__name__}")
        if not isinstance(resume, bool):
            raise TypeError(f"resume must be True or False, got {resume!r}")
        self.directory = pathlib.Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.keep_last = keep_last
        self.on_message = on_message or logger.warning
        found = self._headers()
        if resume:
            newest = next((h["run"] for _, h in reversed(found) if h and h["run"]), None)
            self.run_id = newest or _new_run_id()
        else:
            self.run_id = _new_run_id()
            if found:
                steps = [step for step, _ in found]
                runs = sorted({h["run"] for _, h in found if h and h["run"]})
                raise FileExistsError(
                    f"{self.directory} already holds checkpoints of another run (steps "
                    f"{_span(steps)}{', run ' + ', '.join(runs) if runs else ''}): a new run "
                    "there would restore that run's weights or prune its own saves. Use a fresh "
                    "folder for this run, pass resume=True to continue that run, or delete "
                    "those step_*.ckpt files first."
                )

    def path(self, step: int) -> pathlib.Path:
        return self.directory / f"step_{_check_step(step):06d}{SUFFIX}"

    def steps(self) -> list[int]:
        """Steps of this run's checkpoints in the folder (oldest first; read from the file
        names and headers, not verified: ``latest_good`` does that)."""
        return [step for step, header in self._headers() if self._ours(header)]

    def save(
        self,
        step: int,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        scaler: Any = None,
        extra: dict | None = None,
        *,
        allow_nonfinite: bool = False,
    ) -> pathlib.Path:
        """Write the checkpoint of ``step`` atomically, then prune old ones and stale temp files.

        Raises ``NonFiniteWeightsError`` (nothing written) if the weights hold NaN/inf, unless
        ``allow_nonfinite``; ``FileExistsError`` if ``step``'s file belongs to another run;
        ``TypeError`` for an ``extra`` that could not be loaded back."""
        state = training_state(model, optimizer, scaler, step=step, extra=extra)
        damaged = nonfinite_tensors(state["model"])
        if damaged and not allow_nonfinite:
            raise NonFiniteWeightsError(
                f"step {state['step']} not saved: {_damage(damaged, state['model'])}; the "
                "checkpoints already saved are kept (allow_nonfinite=True saves it anyway)"
            )
        path = self.path(step)
        self._check_not_foreign(path)
        path = save_checkpoint(path, state, run_id=self.run_id)
        keep = {
            state["step"]
        }  # steps need not grow (a resumed run): never prune the file just saved
        if damaged:  # and never the newest good one
            keep.add(self._newest_finite(before=state["step"]))
        self._prune(keep)
        return path

    def load(self, step: int) -> dict[str, Any]:
        """The checkpoint of ``step`` (raises ``CorruptCheckpointError`` if it is damaged, and
        ``FileExistsError`` if another run wrote it)."""
        path = self.path(step)
        self._check_not_foreign(path)
        return load_checkpoint(path)

    def latest_good(
        self, before: int | None = None, require_finite: bool = True
    ) -> dict[str, Any] | None:
        """The newest checkpoint of this run (with a step < ``before`` if given) that loads and,
        with ``require_finite``, whose weights are all finite; the others on the way are
        reported (``on_message``) and skipped. None if there is none."""
        for step in reversed(self.steps()):
            if before is not None and step >= before:
                continue
            name = self.path(step).name
            try:
                state = self.load(step)
            except CorruptCheckpointError as exc:
                self._skip(name, str(exc).removeprefix(f"{name}: "))
                continue
            except OSError as exc:  # deleted meanwhile, unreadable, rewritten by another run
                self._skip(name, str(exc))
                continue
            weights = state.get("model", {})
            damaged = nonfinite_tensors(weights)
            if require_finite and damaged:
                self._skip(name, f"saved with non-finite weights: {_damage(damaged, weights)}")
                continue
            return state
        return None

    def restore(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        scaler: Any = None,
        before: int | None = None,
    ) -> int:
        """Load the newest good checkpoint (intact, finite weights) into the objects given;
        return its step. Raises ``FileNotFoundError`` if there is none in the folder."""
        state = self.latest_good(before=before)
        if state is None:
            raise FileNotFoundError(
                f"no loadable checkpoint of this run in {self.directory}"
                + (f" before step {before}" if before is not None else "")
            )
        return apply_training_state(state, model, optimizer, scaler)

    def discard(self, step: int, *, damaged_too: bool = True) -> None:
        """Delete this run's checkpoint of ``step`` (no error if it is not there; another run's
        file is left alone). ``damaged_too=False``: only a file whose header names this run
        (pruning never deletes a file it cannot attribute)."""
        path = self.path(step)
        try:
            header = read_header(path)
        except FileNotFoundError:
            return
        except OSError:
            header = None
        if header is None and not damaged_too:
            return
        if self._ours(header):
            path.unlink(missing_ok=True)

    # -- machinery

    def _skip(self, name: str, why: str) -> None:
        """Say that a checkpoint was skipped and why (one line; overridden by NanGuard)."""
        self.on_message(f"checkpoint skipped: {name}: {why}")

    def _headers(self) -> list[tuple[int, dict[str, Any] | None]]:
        """(step, header) of every step_*.ckpt in the folder, oldest first; header None when
        unreadable or not a course checkpoint."""
        found = []
        for entry in self.directory.iterdir():
            match = NAME_PATTERN.match(entry.name)
            if match is None:
                continue
            try:
                header = read_header(entry)
            except OSError:
                header = None
            found.append((int(match.group(1)), header))
        return sorted(found, key=lambda item: item[0])

    def _ours(self, header: dict[str, Any] | None) -> bool:
        """A file of this run, or a damaged one that no run can claim (skipped with a message
        when loaded)."""
        return header is None or header["run"] == self.run_id

    def _check_not_foreign(self, path: pathlib.Path) -> None:
        try:
            header = read_header(path)
        except OSError:
            return
        if not self._ours(header):
            owner = header["run"] or "an older course version (no run id)"
            raise FileExistsError(
                f"{path.name} belongs to another run ({owner}), not to this one "
                f"({self.run_id}): it is left alone; give each run its own folder"
            )

    def _newest_finite(self, before: int) -> int | None:
        """The newest step < ``before`` of this run whose header says its weights are finite
        and whose bytes match their digest (read only when a non-finite save is pruning)."""
        for step, header in reversed(self._headers()):
            if step >= before or header is None or header["run"] != self.run_id:
                continue
            if header["finite"]:
                try:
                    load_checkpoint(self.path(step))
                except (OSError, CorruptCheckpointError):
                    continue
                return step
        return None

    def _prune(self, keep: set[int | None]) -> None:
        _remove_stale_temporaries(self.directory)
        if self.keep_last is None:
            return
        for step in self.steps()[: -self.keep_last]:
            if step not in keep:
                try:
                    self.discard(step, damaged_too=False)
                except OSError as exc:  # the save itself succeeded: say so, do not fail it
                    self.on_message(f"old checkpoint not deleted: {self.path(step).name}: {exc}")

    def __repr__(self) -> str:
        return f"CheckpointStore({str(self.directory)!r}, run={self.run_id}, steps={self.steps()})"


def _new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8]


def _span(steps: list[int]) -> str:
    return str(steps[0]) if len(steps) == 1 else f"{steps[0]}..{steps[-1]}"


def _damage(names: list[str], weights: Mapping[str, Any]) -> str:
    return f"{len(names)} of its {len(weights)} weight tensors hold NaN/inf (e.g. {names[0]!r})"


def _remove_stale_temporaries(folder: pathlib.Path) -> None:
    """Delete temp files left by writers that died (a symlink is removed, never followed)."""
    now = time.time()
    for pattern in TEMP_GLOBS:
        for temporary in folder.glob(pattern):
            try:
                info = temporary.lstat()
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                continue
            if ".tmp-" in temporary.name:  # old style: the writer's pid is in the name
                if _written_by_live_process(temporary):
                    continue
            elif not math.isfinite(info.st_mtime) or now - info.st_mtime < STALE_TEMP_SECONDS:
                continue  # maybe being written right now by another process
            try:
                temporary.unlink(missing_ok=True)
            except OSError:  # not ours to delete after all (permissions): leave it
                continue


def _written_by_live_process(temporary: pathlib.Path) -> bool:
    """A temp file of another live process may still be being written: leave it alone."""
    pid = temporary.name.rsplit("-", 1)[-1]
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
    except PermissionError:  # it exists, under another user
        return True
    except (OSError, OverflowError):  # ProcessLookupError: it is gone, and so is any writer
        return False
    return True


class Checkpointer:
    """A ``course_utils.train`` callback that saves a checkpoint every ``every`` steps, whatever
    the run's health (what a plain training script does, NaN weights included; the store still
    keeps the newest good one): ``train(..., callbacks=[Checkpointer(store, every=20)])``.
    ``course_utils.nan.recovery.NanGuard`` saves only healthy steps."""

    def __init__(self, store: CheckpointStore, every: int = 20) -> None:
        if not isinstance(store, CheckpointStore):
            raise TypeError(f"store must be a CheckpointStore, got {type(store).__name__}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be an int >= 1, got {every!r}")
        self.store, self.every = store, every

    def on_step_end(self, state) -> None:
        if state.step % self.every == 0:
            self.store.save(state.step, state.model, state.optimizer, state.scaler,
                            allow_nonfinite=True)  # fmt: skip


def new_run_folder(parent: str | os.PathLike, name: str) -> pathlib.Path:
    """A folder for a new run: ``parent/name``, or ``name-2``, ``name-3``... if that one exists.

    Notebooks use it so that running a cell twice starts a second run in a folder of its own,
    instead of meeting the first run's checkpoints (which a store refuses)."""
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        raise ValueError(f"name must be a plain folder name like 'guarded', got {name!r}")
    parent = pathlib.Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    for n in itertools.count(1):
        folder = parent / (name if n == 1 else f"{name}-{n}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise AssertionError("unreachable")


__all__ = [
    "CheckpointStore",
    "Checkpointer",
    "CorruptCheckpointError",
    "NonFiniteWeightsError",
    "apply_training_state",
    "load_checkpoint",
    "new_run_folder",
    "nonfinite_tensors",
    "read_header",
    "save_checkpoint",
    "training_state",
]
