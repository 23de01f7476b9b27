"""Run the course benchmarks (matmul throughput per dtype, training-step time, memory, MFU) and
write them as JSON with their provenance.

    python scripts/bench.py --out results/            # -> results/bench-<device>-<date>.json
    python scripts/bench.py --quick --device cpu --out /tmp/bench.json

On a GPU the defaults measure matmuls from 256 to 8192, GPT-2 shapes ("tiny", "gpt2-small") at
batch 1, 8 and 32 with 1024 tokens, fp32 / bf16 / fp16, and evaluate the course's GPU targets.
On a CPU everything is shrunk to run quickly. Sizes that do not fit in memory are reported in
the file as skipped. A run measured while other processes competed for the CPU says so (the
matmul sweep's ``note``, each training step's ``note``) and carries no MFU: rerun it.

A file written on a real GPU, on an otherwise idle machine, may be committed to
``data/reference_runs/`` for review; never edit the numbers by hand. Notebook 07 does not read
these files: until the course has reviewed GPU runs, it shows published measurements instead.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import shlex
import sys
import time

from course_utils import bench
from course_utils.bench.timing import check_output_folder, write_json
from course_utils.bench.train_step import summarize
from course_utils.precision import MATMUL_FORMATS


def positive_int(text: str) -> int:
    """argparse type: an int >= 1 (``--steps 0`` would leave no timing to take a median of)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=".", help="output folder or .json file (default: .)")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: CUDA if any)")
    p.add_argument("--quick", action="store_true", help="a smoke test: tiny sizes, few steps")
    p.add_argument("--dtypes", nargs="+", choices=MATMUL_FORMATS, default=None)
    p.add_argument(
        "--sizes", nargs="+", type=positive_int, default=None, help="matmul sizes n (n x n)"
    )
    p.add_argument("--models", nargs="+", choices=list(bench.MODEL_PRESETS), default=None)
    p.add_argument("--batch-sizes", nargs="+", type=positive_int, default=None)
    p.add_argument("--precisions", nargs="+", choices=("fp32", "bf16", "fp16"), default=None)
    p.add_argument("--seq-len", type=positive_int, default=None)
    p.add_argument(
        "--steps", type=positive_int, default=None, help="timed training steps per point (>= 1)"
    )
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    args = p.parse_args(argv)
    # Check the output before the (possibly long) benchmarks run, not after.
    out = pathlib.Path(args.out)
    folder = out.parent if out.suffix == ".json" else out
    if out.suffix == ".json" and out.is_dir():
        p.error(f"--out {out}: is a folder, not a .json file")
    try:
        check_output_folder(folder)
    except ValueError as exc:
        p.error(f"--out {args.out}: {exc}")
    return args


def output_path(out: str, data: dict) -> pathlib.Path:
    path = pathlib.Path(out)
    if path.suffix == ".json":
        return path
    prov = data["provenance"]
    slug = re.sub(r"[^a-z0-9]+", "-", prov["device_name"].lower()).strip("-") or "device"
    stamp = prov["date"][:19].replace(":", "").replace("-", "")
    return path / f"bench-{slug}-{stamp}.json"


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    command = shlex.join(["python", "scripts/bench.py", *(sys.argv[1:] if argv is None else argv)])
    data = bench.suite(
        args.device,
        quick=args.quick,
        matmul_dtypes=args.dtypes,
        matmul_sizes=args.sizes,
        models=args.models,
        batch_sizes=args.batch_sizes,
        precisions=args.precisions,
        seq_len=args.seq_len,
        steps=args.steps,
        compile_model=args.compile,
        command=command,
        progress=True,
    )
    data["wall_s"] = round(time.perf_counter() - started, 1)
    path = write_json(data, output_path(args.out, data))
    sweep = bench.MatmulSweep.from_dict(data["matmul"])
    print(sweep.table())
    for row in summarize([bench.StepResult(**r) for r in data["train_step"]]):
        print(row)
    for name, target in data.get("targets", {}).items():
        print(f"target {name}: {target}")
    busy = sweep.note or next((r["note"] for r in data["train_step"] if r.get("note")), "")
    if busy:
        print(f"WARNING: {busy} Do not commit this file.")
    print(f"wrote {path} ({data['wall_s']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
