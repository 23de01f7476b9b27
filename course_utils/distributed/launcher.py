"""Run ``torchrun`` from a notebook or a test, and collect what each rank printed and saved.

Taught in notebook 08, section "Running `torchrun` from a notebook" (and used by every section
after it):

    run = launch("ddp", ["--precision", "bf16"], nproc=2)
    run.show()            # each rank's output, one block per rank
    run.results[0]        # rank 0's rank0.json, as a dict

``launch`` starts ``python -m torch.distributed.run --standalone --nproc_per_node=N`` (the
``torchrun`` command) with ``--redirects 3``, so each rank's stdout and stderr land in their own
files, which are read back. The course's workers are modules of this package, run with
torchrun's ``-m``: ``ddp``, ``fsdp`` and ``with_accelerate`` (``WORKERS``); a path to a ``.py``
file runs that script instead.

``simulate_reduction`` shows, in one process, what reducing gradients across N ranks in bf16
does to them (the world sizes a laptop cannot launch).
"""

from __future__ import annotations

import json
import os
import pathlib
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from course_utils.distributed.worker import RESULT_DIR_ENV

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
WORKERS = {
    name: f"course_utils.distributed.{name}" for name in ("ddp", "fsdp", "with_accelerate")
}  # what ``launch("ddp")`` runs: ``torchrun ... -m course_utils.distributed.ddp``


def worker_target(worker: str | os.PathLike) -> list[str]:
    """What follows torchrun's own options: ``["-m", "course_utils.distributed.ddp"]`` for a
    course worker's name (``"ddp"``, ``"fsdp"``, ``"with_accelerate"``), or the path of a ``.py``
    file (shown relative to the current folder when it is inside it)."""
    if isinstance(worker, str) and worker in WORKERS:
        return ["-m", WORKERS[worker]]
    if not isinstance(worker, (str, os.PathLike)):
        raise TypeError(f"worker must be a name or a path, got {type(worker).__name__}")
    path = pathlib.Path(worker)
    if path.suffix != ".py":
        raise ValueError(
            f"unknown worker {str(worker)!r}: the course's workers are {', '.join(WORKERS)} "
            "(or give the path of a .py file)"
        )
    if not path.is_file():
        raise FileNotFoundError(f"no worker script at {path}")
    path = path.resolve()
    try:
        return [str(path.relative_to(pathlib.Path.cwd()))]
    except ValueError:
        return [str(path)]


@dataclass
class RankOutput:
    """What one rank printed (stdout, stderr) and saved (``result``, from rank<N>.json)."""

    rank: int
    stdout: str
    stderr: str
    result: dict[str, Any] | None = None


@dataclass
class LaunchResult:
    """The outcome of one ``torchrun`` job."""

    command: str
    returncode: int
    wall_s: float
    ranks: list[RankOutput] = field(default_factory=list)
    launcher_output: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def results(self) -> list[dict[str, Any] | None]:
        """Each rank's saved result dict, by rank."""
        return [r.result for r in self.ranks]

    def show(self, stderr: bool | None = None) -> None:
        """Print each rank's output under a header; stderr too if ``stderr`` (default: only
        when the job failed)."""
        stderr = (not self.ok) if stderr is None else stderr
        print(f"$ {self.command}")
        for r in self.ranks:
            print(f"--- rank {r.rank} ---")
            print(r.stdout.rstrip() or "(no output)")
            if stderr and r.stderr.strip():
                print(f"--- rank {r.rank} stderr ---")
                print(r.stderr.rstrip())
        if stderr and self.launcher_output.strip():
            print("--- torchrun ---")
            print(self.launcher_output.rstrip())
        print(f"exit code {self.returncode} | wall: {self.wall_s:.1f} s")

    def check(self) -> LaunchResult:
        """Raise RuntimeError (with each rank's last stderr lines) if the job failed."""
        if self.ok:
            return self
        tails = []
        for r in self.ranks:
            tail = "\n".join(r.stderr.strip().splitlines()[-15:])
            tails.append(f"--- rank {r.rank} stderr (last lines) ---\n{tail or '(empty)'}")
        launcher = "\n".join(self.launcher_output.strip().splitlines()[-10:])
        raise RuntimeError(
            f"torchrun job failed with exit code {self.returncode}: {self.command}\n"
            + "\n".join(tails)
            + (f"\n--- torchrun ---\n{launcher}" if launcher else "")
        )


def torchrun_command(
    worker: str | os.PathLike, args: Sequence[str] = (), nproc: int = 2
) -> list[str]:
    """The command ``launch`` runs, without its log options (what you would type), e.g.
    ``torchrun --standalone --nproc_per_node=2 -m course_utils.distributed.ddp --precision bf16``.
    """
    return [
        "torchrun", "--standalone", f"--nproc_per_node={nproc}", *worker_target(worker),
        *map(str, args),
    ]  # fmt: skip


def launch(
    worker: str | os.PathLike,
    args: Sequence[str] = (),
    *,
    nproc: int = 2,
    timeout: float = 300,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    progress: bool = True,
) -> LaunchResult:
    """Run ``worker`` (a name in ``WORKERS``, or a ``.py`` path) under ``torchrun --standalone
    --nproc_per_node=nproc`` and collect each rank's stdout, stderr and saved results.

    Each rank gets one CPU thread (OMP_NUM_THREADS=1, as torchrun's default) unless ``env`` says
    otherwise. ``check``: raise RuntimeError if a rank failed. A job that runs past ``timeout``
    seconds is killed and raises TimeoutError. ``progress``: while the job runs, a tqdm bar
    counts the lines rank 0 has printed and shows the last one."""
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"nproc must be a positive int, got {nproc!r}")
    if isinstance(args, str):
        raise TypeError("args must be a list of strings, e.g. ['--precision', 'bf16']")
    target = worker_target(worker)
    shown = shlex.join(torchrun_command(worker, args, nproc))
    with tempfile.TemporaryDirectory(prefix="course-torchrun-") as tmp:
        log_dir, out_dir = pathlib.Path(tmp, "logs"), pathlib.Path(tmp, "results")
        out_dir.mkdir()
        cmd = [
            sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={nproc}", "--redirects", "3", "--log-dir", str(log_dir),
            *target, *map(str, args),
        ]  # fmt: skip
        child_env = dict(os.environ)
        child_env.setdefault("OMP_NUM_THREADS", "1")
        child_env.update({"PYTHONUNBUFFERED": "1", RESULT_DIR_ENV: str(out_dir)})
        child_env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO_ROOT), *filter(None, [child_env.get("PYTHONPATH")])]
        )
        child_env.update(env or {})
        launcher_log = pathlib.Path(tmp, "torchrun.log")
        started = time.perf_counter()
        with open(launcher_log, "w", encoding="utf-8") as log:  # a file: a pipe could fill up
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=child_env, start_new_session=True
            )
            name = target[-1].rsplit(".", 1)[-1] if target[0] == "-m" else target[0]
            bar = tqdm(desc=f"torchrun {name}", unit=" lines", disable=not progress)
            try:
                while proc.poll() is None:
                    if time.perf_counter() - started > timeout:
                        os.killpg(proc.pid, signal.SIGKILL)
                        proc.wait()
                        ranks = _collect(log_dir, out_dir, nproc)
                        partial = "\n".join(f"[rank {r.rank}] {r.stdout[-500:]}" for r in ranks)
                        raise TimeoutError(
                            f"torchrun job ran past {timeout:g} s and was stopped: {shown}\n"
                            f"{partial}"
                        )
                    _show_rank0(bar, log_dir)
                    time.sleep(0.2)
                _show_rank0(bar, log_dir)
            finally:
                bar.close()
        result = LaunchResult(
            shown, proc.returncode, time.perf_counter() - started, _collect(log_dir, out_dir, nproc),
            _read(launcher_log),
        )  # fmt: skip
    return result.check() if check else result


def _show_rank0(bar, log_dir: pathlib.Path) -> None:
    """Move ``bar`` to the number of lines rank 0 has printed so far; show the last one."""
    if bar.disable:
        return
    logs = sorted(log_dir.glob("*/attempt_*/0/stdout.log"), key=lambda p: p.stat().st_mtime)
    lines = _read(logs[-1]).splitlines() if logs else []
    if len(lines) > bar.n:
        bar.update(len(lines) - bar.n)
        bar.set_postfix_str(lines[-1].split("] ", 1)[-1][:60], refresh=True)


def _collect(log_dir: pathlib.Path, out_dir: pathlib.Path, nproc: int) -> list[RankOutput]:
    """Read ``<log_dir>/<run>/attempt_<k>/<rank>/std{out,err}.log`` (the last attempt) and
    ``rank<N>.json``."""
    ranks = []
    attempts = sorted(log_dir.glob("*/attempt_*"), key=lambda p: p.stat().st_mtime)
    attempt = attempts[-1] if attempts else None
    for rank in range(nproc):
        stdout = stderr = ""
        if attempt is not None:
            stdout = _read(attempt / str(rank) / "stdout.log")
            stderr = _read(attempt / str(rank) / "stderr.log")
        result_file = out_dir / f"rank{rank}.json"
        result = json.loads(_read(result_file)) if result_file.is_file() else None
        ranks.append(RankOutput(rank, stdout, stderr, result))
    return ranks


def _read(path: pathlib.Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


# ------------------------------------------------------------------------- reduction numerics
@dataclass(frozen=True)
class ReductionError:
    """Relative L2 error of the averaged gradient over ``world_size`` ranks, per reduce dtype."""

    world_size: int
    bf16_reduce: float
    fp32_reduce: float


def simulate_reduction(
    world_sizes: Sequence[int] = (2, 8, 64, 512),
    numel: int = 100_000,
    *,
    seed: int = 0,
) -> list[ReductionError]:
    """Average ``world_size`` bf16 gradients the way a ring reduction does, hop by hop, with the
    running sum kept in bf16 (``reduce_dtype=torch.bfloat16``) or in fp32 (``torch.float32``),
    and compare with the exact average (float64) of the same bf16 inputs.

    Each rank's gradient is a shared signal plus its own noise of the same size (ranks see
    different data). Every bf16 addition is computed exactly and rounded once to nearest-even,
    as hardware does, so the result is the same on every machine."""
    if isinstance(numel, bool) or not isinstance(numel, int) or numel < 1:
        raise ValueError(f"numel must be a positive int, got {numel!r}")
    generator = torch.Generator().manual_seed(seed)
    signal_ = torch.randn(numel, generator=generator)
    rows = []
    for n in world_sizes:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"world sizes must be positive ints, got {n!r}")
        exact = torch.zeros(numel, dtype=torch.float64)
        acc16 = torch.zeros(numel, dtype=torch.bfloat16)
        acc32 = torch.zeros(numel, dtype=torch.float32)
        for _ in range(n):
            grad = (signal_ + torch.randn(numel, generator=generator)).to(torch.bfloat16)
            exact += grad.double()
            acc16 = (acc16.float() + grad.float()).to(torch.bfloat16)  # one rounding per hop
            acc32 += grad.float()
        exact /= n
        rows.append(
            ReductionError(
                n,
                ((acc16.double() / n - exact).norm() / exact.norm()).item(),
                ((acc32.double() / n - exact).norm() / exact.norm()).item(),
            )
        )
    return rows


__all__ = [
    "LaunchResult",
    "RankOutput",
    "ReductionError",
    "WORKERS",
    "launch",
    "simulate_reduction",
    "torchrun_command",
    "worker_target",
]
