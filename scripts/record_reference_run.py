"""Record notebook 05's fine-tuning comparison on a GPU: ``data/reference_runs/<gpu>.json``.

The same LoRA fine-tuning (TRL ``SFTTrainer``, the course's dataset) in fp32, bf16 and fp16, plus a
run with the base model loaded in bf16, for two models: the shipped ``tiny-gpt2`` and a
GPT-2-small-sized model (12 layers, 768 wide, randomly initialised: this machine may be offline,
and time and memory do not depend on the weights' values). Every figure in the output file is
measured by this script; the file also records the GPU, driver, library versions, date and the
command. Notebook 05 plots these runs beside the learner's own.

Usage, from the repository root in the course venv:
    python scripts/record_reference_run.py                 # on a GPU: writes data/reference_runs/
    python scripts/record_reference_run.py --smoke --out /tmp/ref   # a few seconds on a CPU (tests)

A GPU without bf16 (V100, T4) records the bf16 runs as skipped, with the reason.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import pathlib
import platform
import shlex
import subprocess
import sys
import tempfile

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SMALL_MODEL = "gpt2-small-sized (random init)"
# (label, requested precision, base dtype)
RUNS = [
    ("fp32", "fp32", torch.float32),
    ("bf16", "bf16", torch.float32),
    ("fp16", "fp16", torch.float32),
    ("bf16 base (no autocast)", "fp32", torch.bfloat16),
]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--smoke", "--tiny", action="store_true", help="tiny CPU run for tests; needs --out"
    )
    p.add_argument("--out", type=pathlib.Path, help="output folder (default data/reference_runs)")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--eval-every", type=int, default=25)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--tiny-batch-size", type=int, default=16)
    p.add_argument("--small-batch-size", type=int, default=32)
    p.add_argument("--models", default="tiny-gpt2,gpt2-small-sized", help="comma-separated")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.smoke:
        if args.out is None:
            p.error("--smoke writes a CPU test file: give --out (data/reference_runs is for GPUs)")
        args.steps, args.eval_every, args.max_length = 2, 2, 64
        args.tiny_batch_size = args.small_batch_size = 2
    elif not torch.cuda.is_available():
        p.error(
            "no CUDA GPU here: reference runs are GPU runs (use --smoke --out DIR for a CPU test)"
        )
    # Check the output folder now, before any training: a run is not lost to a bad --out.
    from course_utils.bench.timing import check_output_folder
    from course_utils.finetune.reference_runs import reference_runs_dir

    try:
        check_output_folder(args.out if args.out is not None else reference_runs_dir())
    except ValueError as exc:
        p.error(f"--out: {exc}")
    return args


def gpu_description() -> dict:
    """Name, driver, CUDA and compute capability of GPU 0 (or of the CPU, for a smoke run)."""
    if not torch.cuda.is_available():
        return {
            "gpu": f"none (CPU smoke test: {platform.processor() or platform.machine()})",
            "driver": "n/a",
            "cuda": None,
            "capability": None,
        }
    name = torch.cuda.get_device_name(0)
    try:
        driver = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader", "-i", "0"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        driver = "unknown (nvidia-smi not available)"
    return {
        "gpu": name,
        "driver": driver,
        "cuda": torch.version.cuda or torch.version.hip,
        "capability": list(torch.cuda.get_device_capability(0)),
    }


def library_versions() -> dict[str, str]:
    import accelerate
    import datasets
    import peft
    import transformers
    import trl

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
        "peft": peft.__version__,
        "accelerate": accelerate.__version__,
        "datasets": datasets.__version__,
    }


def build_small_model(folder: pathlib.Path, smoke: bool, seed: int) -> str:
    """A randomly initialised GPT-2-small-sized model with the course tokenizer, saved in
    ``folder`` (a 1-layer, 64-wide one for a smoke run)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from course_utils.models import load_model_and_tokenizer

    _, tokenizer = load_model_and_tokenizer("tiny-gpt2")
    size = (
        dict(n_layer=1, n_head=2, n_embd=64) if smoke else dict(n_layer=12, n_head=12, n_embd=768)
    )
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **size,
    )
    torch.manual_seed(seed)
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def bf16_supported() -> tuple[bool, str]:
    if not torch.cuda.is_available():
        return True, ""
    if torch.cuda.is_bf16_supported(including_emulation=False):
        return True, ""
    return False, "this GPU has no native bf16 (compute capability < 8.0)"


def record(args) -> pathlib.Path:
    from course_utils.finetune import load_finetune_dataset
    from course_utils.finetune.reference_runs import gpu_file_name, reference_runs_dir
    from course_utils.finetune.runs import EXPERIMENT, run_finetune

    limit_train, limit_eval = (16, 8) if args.smoke else (None, None)
    train = load_finetune_dataset("train", limit=limit_train)
    heldout = load_finetune_dataset("heldout", limit=limit_eval)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    has_bf16, why_not = bf16_supported()
    runs, skipped = [], []
    with tempfile.TemporaryDirectory(prefix="course-ref-") as tmp:
        models = []
        for name in args.models.split(","):
            if name == "tiny-gpt2":
                models.append(("tiny-gpt2", "tiny-gpt2", args.tiny_batch_size))
            elif name == "gpt2-small-sized":
                path = build_small_model(pathlib.Path(tmp) / "small", args.smoke, args.seed)
                models.append((SMALL_MODEL, path, args.small_batch_size))
            else:
                raise SystemExit(f"unknown model {name!r}: use tiny-gpt2 and/or gpt2-small-sized")
        for model_label, model_name, batch_size in models:
            for label, precision, base_dtype in RUNS:
                uses_bf16 = precision == "bf16" or base_dtype == torch.bfloat16
                if uses_bf16 and not has_bf16:
                    skipped.append({"model": model_label, "label": label, "reason": why_not})
                    continue
                print(f"{model_label}: {label} ...", flush=True)
                result = run_finetune(
                    precision,
                    model_name=model_name,
                    base_dtype=base_dtype,
                    steps=args.steps,
                    batch_size=batch_size,
                    max_length=args.max_length,
                    eval_every=args.eval_every,
                    seed=args.seed,
                    device=device,
                    train_dataset=train,
                    eval_dataset=heldout,
                    label=label,
                )
                runs.append(dataclasses.replace(result, model=model_label))
                print(f"  {result.audit['verdict']}", flush=True)
    hardware = gpu_description()
    payload = {
        "experiment": EXPERIMENT,
        "note": "Written by scripts/record_reference_run.py. Every figure is measured; do not edit.",
        **hardware,
        "versions": library_versions(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python scripts/record_reference_run.py " + shlex.join(sys.argv[1:]),
        "smoke": args.smoke,
        "settings": {
            "steps": args.steps,
            "eval_every": args.eval_every,
            "max_length": args.max_length,
            "seed": args.seed,
            "train_examples": len(train),
            "heldout_examples": len(heldout),
        },
        "skipped": skipped,
        "runs": [dataclasses.asdict(run) for run in runs],
    }
    name = "cpu-smoke.json" if args.smoke else gpu_file_name(hardware["gpu"])
    path = save_payload(payload, args.out or reference_runs_dir(), name)
    print(f"wrote {path}")
    return path


def save_payload(payload: dict, out_dir: pathlib.Path, name: str) -> pathlib.Path:
    """Write ``payload`` to ``out_dir / name`` atomically (``course_utils.atomic``): a full disk or
    an interrupted write leaves the previous file, if any, as it was."""
    from course_utils.atomic import write_json_atomic

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return write_json_atomic(out_dir / name, payload, indent=1)


def main(argv=None) -> pathlib.Path:
    return record(parse_args(argv))


if __name__ == "__main__":
    main()
