"""Issue 13 item 8: a rank's result file is written atomically: a failed write (here: a file
size limit, as a full disk would do) leaves the previous ``rank<N>.json`` whole."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

from course_utils.distributed import worker as dist_worker

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]

WRITE_UNDER_A_SIZE_LIMIT = """
import resource, signal, sys
from course_utils.distributed import worker as dist_worker
ctx = dist_worker.Context(0, 2, 0, None, "gloo")
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    dist_worker.write_result(ctx, {"losses": [0.123456789] * 2000})
except OSError as exc:
    print("failed:", exc.errno)
    sys.exit(3)
"""


def test_a_failed_result_write_keeps_the_previous_file(tmp_path):
    old = {"rank": 0, "world_size": 2, "backend": "gloo", "losses": [1.0, 2.0]}
    target = tmp_path / "rank0.json"
    target.write_text(json.dumps(old), encoding="utf-8")
    env = dict(os.environ, **{dist_worker.RESULT_DIR_ENV: str(tmp_path)}, OMP_WAIT_POLICY="PASSIVE")
    done = subprocess.run(
        [sys.executable, "-c", WRITE_UNDER_A_SIZE_LIMIT],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 3, (done.stdout, done.stderr[-2000:])
    assert json.loads(target.read_text(encoding="utf-8")) == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rank0.json"]  # no temp file left


def test_result_file_round_trips(tmp_path, monkeypatch):
    monkeypatch.setenv(dist_worker.RESULT_DIR_ENV, str(tmp_path))
    ctx = dist_worker.Context(1, 2, 1, None, "gloo")
    dist_worker.write_result(ctx, {"dtype": pathlib.Path("x"), "loss": 0.5})
    saved = json.loads((tmp_path / "rank1.json").read_text(encoding="utf-8"))
    assert saved == {"rank": 1, "world_size": 2, "backend": "gloo", "dtype": "x", "loss": 0.5}
