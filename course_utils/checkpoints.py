"""Checkpoints that survive a crash: atomic writes, checksums, and corrupt files skipped.

A checkpoint is written in three moves, so that a run killed at any moment never loses the last
good one:

1. the bytes go to a temporary file in the same folder (``.step_000120.ckpt.tmp-<pid>``);
2. ``os.fsync`` pushes them to the disk;
3. ``os.replace`` renames the temporary file to its final name, in one atomic operation (POSIX
   ``rename``; on Windows ``MoveFileEx`` with replace), then the folder itself is fsynced.

Until step 3 the final name does not exist; after it, the file is complete. A reader never sees
half a checkpoint under a final name, however the writer died.

On disk, a checkpoint is one line of header, ``course-checkpoint v1 sha256=<hex> bytes=<n>``,
followed by the ``torch.save`` payload. Loading checks the length and the SHA-256 digest before
``torch.load(..., weights_only=True)`` (which refuses to unpickle arbitrary objects), so a
truncated or corrupted file is reported as such (``CorruptCheckpointError``), never loaded.

    store = CheckpointStore("checkpoints", keep_last=3)
    store.save(step, model, optimizer)
    step = store.restore(model, optimizer)        # the newest checkpoint that loads
"""

from __future__ import annotations

import copy
import hashlib
import io
import logging
import os
import pathlib
import re
from collections.abc import Callable
from typing import Any

import torch

logger = logging.getLogger(__name__)

MAGIC = b"course-checkpoint v1"
SUFFIX = ".ckpt"
NAME_PATTERN = re.compile(r"^step_(\d{6,})\.ckpt$")


class CorruptCheckpointError(ValueError):
    """A checkpoint file that is truncated, corrupted or not a course checkpoint."""


# ----------------------------------------------------------------------------- one file


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> pathlib.Path:
    """Write ``payload`` (tensors, numbers, strings, lists and dicts of them) to ``path``
    atomically: temporary file, fsync, rename. Returns the path."""
    if not isinstance(payload, dict):
        raise TypeError(f"payload must be a dict, got {type(payload).__name__}")
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    body = buffer.getvalue()
    header = MAGIC + f" sha256={hashlib.sha256(body).hexdigest()} bytes={len(body)}\n".encode()
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as file:
            file.write(header)
            file.write(body)
            file.flush()
            os.fsync(file.fileno())  # the bytes are on the disk before the name points at them
        os.replace(temporary, path)  # atomic: the old file or the new one, never half of one
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)  # make the rename itself durable
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint``; check its length and SHA-256 first.

    Raises ``FileNotFoundError`` if there is no such file and ``CorruptCheckpointError`` (a
    ValueError) if it is truncated, corrupted or not a course checkpoint.
    """
    path = pathlib.Path(path)
    data = path.read_bytes()
    newline = data.find(b"\n")
    header = data[:newline] if newline >= 0 else b""
    match = re.fullmatch(rb"course-checkpoint v1 sha256=([0-9a-f]{64}) bytes=(\d+)", header)
    if match is None:
        raise CorruptCheckpointError(
            f"{path.name}: not a course checkpoint (its first line is not "
            f"'{MAGIC.decode()} sha256=... bytes=...'); the file may be truncated or overwritten"
        )
    body = data[newline + 1 :]
    expected_bytes = int(match.group(2))
    if len(body) != expected_bytes:
        raise CorruptCheckpointError(
            f"{path.name}: truncated: its payload is shorter than its header says "
            f"({len(body)} of {expected_bytes} bytes): a copy or a write that did not finish?"
        )
    if hashlib.sha256(body).hexdigest() != match.group(1).decode():
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


def _fsync_folder(folder: pathlib.Path) -> None:
    """fsync a folder so that a rename in it survives a power cut (a no-op where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
    scaler's state, the step, the CPU random generator and ``extra`` (plain values)."""
    state: dict[str, Any] = {
        "step": int(step),
        "model": model.state_dict(),  # serialized at once by save_checkpoint: no copy needed
        "rng_cpu": torch.get_rng_state(),
        "extra": dict(extra or {}),
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
    """Load ``state`` (from ``training_state``) into the objects given; return its step."""
    try:
        model.load_state_dict(state["model"])
        if optimizer is not None and "optimizer" in state:
            # a copy: load_state_dict keeps the very tensors it is given (same dtype and device),
            # and training then updates them in place, which would change ``state`` too
            optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        if scaler is not None and "scaler" in state:
            scaler.load_state_dict(state["scaler"])
    except (KeyError, RuntimeError) as exc:
        raise ValueError(
            f"this checkpoint does not fit the model/optimizer given (another architecture or "
            f"parameter list?): {str(exc).splitlines()[0]}"
        ) from exc
    if "rng_cpu" in state:
        torch.set_rng_state(state["rng_cpu"])
    return int(state["step"])


def nonfinite_tensors(tensors: dict[str, Any]) -> list[str]:
    """Names of the floating-point tensors in ``tensors`` that hold a NaN or an inf."""
    return [
        name
        for name, tensor in tensors.items()
        if isinstance(tensor, torch.Tensor)
        and tensor.is_floating_point()
        and not bool(torch.isfinite(tensor).all())
    ]


# ----------------------------------------------------------------------------- a folder of them


class CheckpointStore:
    """A folder of checkpoints ``step_000120.ckpt``, newest kept, corrupt ones skipped.

    ``save(step, model, optimizer, scaler)`` writes one atomically and deletes all but the
    ``keep_last`` newest. ``restore(model, optimizer, scaler)`` loads the newest one that passes
    its checks, says which ones it skipped and why (``on_message``, default: the logger), and
    returns its step. ``discard(step)`` removes one (e.g. a checkpoint that led to NaN again).
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        keep_last: int | None = 3,
        on_message: Callable[[str], None] | None = None,
    ) -> None:
        if keep_last is not None and (
            isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1
        ):
            raise ValueError(f"keep_last must be None or an int >= 1, got {keep_last!r}")
        self.directory = pathlib.Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.keep_last = keep_last
        self.on_message = on_message or logger.warning

    def path(self, step: int) -> pathlib.Path:
        return self.directory / f"step_{int(step):06d}{SUFFIX}"

    def steps(self) -> list[int]:
        """Steps of the checkpoints in the folder (by file name, oldest first; not verified)."""
        found = (NAME_PATTERN.match(p.name) for p in self.directory.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def save(
        self,
        step: int,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        scaler: Any = None,
        extra: dict | None = None,
    ) -> pathlib.Path:
        """Write the checkpoint of ``step`` atomically, then prune old ones and stale temp files."""
        path = save_checkpoint(
            self.path(step), training_state(model, optimizer, scaler, step=step, extra=extra)
        )
        self._prune()
        return path

    def load(self, step: int) -> dict[str, Any]:
        """The checkpoint of ``step`` (raises ``CorruptCheckpointError`` if it is damaged)."""
        return load_checkpoint(self.path(step))

    def latest_good(
        self, before: int | None = None, require_finite: bool = True
    ) -> dict[str, Any] | None:
        """The newest checkpoint (with a step < ``before`` if given) that loads and, with
        ``require_finite``, whose weights are all finite; the others on the way are reported
        (``on_message``) and skipped. None if there is none."""
        for step in reversed(self.steps()):
            if before is not None and step >= before:
                continue
            name = self.path(step).name
            try:
                state = self.load(step)
            except CorruptCheckpointError as exc:
                self.on_message(f"checkpoint skipped: {exc}")
                continue
            except OSError as exc:  # deleted meanwhile, unreadable
                self.on_message(f"checkpoint skipped: {name}: {exc}")
                continue
            weights = state.get("model", {})
            damaged = nonfinite_tensors(weights)
            if require_finite and damaged:
                self.on_message(
                    f"checkpoint skipped: {name}: {len(damaged)} of its {len(weights)} weight "
                    f"tensors hold NaN/inf (e.g. {damaged[0]!r}): it was saved after the run broke"
                )
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
                f"no loadable checkpoint in {self.directory}"
                + (f" before step {before}" if before is not None else "")
            )
        return apply_training_state(state, model, optimizer, scaler)

    def discard(self, step: int) -> None:
        """Delete the checkpoint of ``step`` (no error if it is not there)."""
        self.path(step).unlink(missing_ok=True)

    def _prune(self) -> None:
        for stale in self.directory.glob(f".step_*{SUFFIX}.tmp-*"):
            if not _written_by_live_process(stale):
                stale.unlink(missing_ok=True)
        if self.keep_last is not None:
            for step in self.steps()[: -self.keep_last]:
                self.discard(step)

    def __repr__(self) -> str:
        return f"CheckpointStore({str(self.directory)!r}, steps={self.steps()})"


def _written_by_live_process(temporary: pathlib.Path) -> bool:
    """A temp file of another live process may still be being written: leave it alone."""
    pid = temporary.name.rsplit("-", 1)[-1]
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
    except PermissionError:  # it exists, under another user
        return True
    except OSError:  # ProcessLookupError: it is gone, and so is any writer of this file
        return False
    return True


class Checkpointer:
    """A ``course_utils.train`` callback that saves a checkpoint every ``every`` steps, whatever
    the run's health (what a plain training script does): ``train(..., callbacks=[Checkpointer(
    store, every=20)])``. ``course_utils.recovery.NanGuard`` saves only healthy steps."""

    def __init__(self, store: CheckpointStore, every: int = 20) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be an int >= 1, got {every!r}")
        self.store, self.every = store, every

    def on_step_end(self, state) -> None:
        if state.step % self.every == 0:
            self.store.save(state.step, state.model, state.optimizer, state.scaler)


__all__ = [
    "CheckpointStore",
    "Checkpointer",
    "CorruptCheckpointError",
    "apply_training_state",
    "load_checkpoint",
    "nonfinite_tensors",
    "save_checkpoint",
    "training_state",
]
