#!/usr/bin/env bash
# The course's GPU check: one script for a machine with a CUDA GPU and no internet.
#
#   scripts/gpu_check.sh [OUT_DIR] [--dry-run] [--steps env,wheels,unit,notebooks,bench,reference,distributed]
#
# Runs, in order, each step under its own time limit and all of them under TOTAL_BUDGET_S
# (default 450 s, so the whole check ends within 8 minutes):
#   env        nvidia-smi, Python/torch/CUDA versions, which optional packages are missing
#   wheels     installs missing packages from ./wheels (or $WHEELS), if that folder exists
#   unit       the unit tests (pytest tests/, browser test excluded)
#   notebooks  every notebook executed on CUDA (nbval --nbval-lax: runs, does not compare)
#   bench      scripts/bench.py: matmul throughput per dtype, training steps, MFU, GPU targets
#   reference  scripts/record_reference_run.py, if the repository has it
#   distributed  notebook 08's DDP worker with one rank per GPU, so NCCL (the tests use gloo):
#              torchrun --standalone --nproc_per_node=<GPUs> -m course_utils.distributed.ddp
# Everything lands in OUT_DIR (default: $OUT, else gpu_check_out/): one log per step,
# summary.txt (status and seconds per step), distributed/rank<N>.json, bench/*.json, reference_runs/.
# The exit code is 0 only if every step that ran passed (2 for bad arguments, e.g. an empty
# --steps). --dry-run prints the plan and the commands without running or writing anything,
# not even OUT_DIR (no GPU needed).
#
# Bringing packages to an offline machine. The machine's Python needs torch (with CUDA) and
# transformers; trl, peft, nbval, ipykernel, ipywidgets may be missing. On an online machine
# with the same Python version and OS/CPU architecture, in this repository:
#     pip download -d wheels -r requirements.txt
# (from another platform add: --only-binary=:all: --platform manylinux2014_x86_64
#  --python-version 3.11, matching the GPU machine's Python). Copy wheels/ beside this
# repository's requirements.txt on the GPU machine; the `wheels` step then runs
#     python -m pip install --no-index --find-links wheels <the missing packages, pinned>
# It never installs torch from the wheels (that would replace the machine's CUDA build).
#
# Committing the results. Read summary.txt and the logs first. A bench JSON measured on a real
# GPU may be committed as a reference run, unedited, with its provenance (GPU, driver, torch,
# date, command are inside):
#     cp OUT_DIR/bench/bench-*.json data/reference_runs/
#     git add data/reference_runs/bench-*.json && git commit -m "reference run: bench on <GPU>"
# Notebook 07 then shows it to learners without a GPU. Never edit the numbers by hand.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)
PY=${PYTHON:-python3}
TOTAL_BUDGET_S=${TOTAL_BUDGET_S:-450}
ALL_STEPS="env,wheels,unit,notebooks,bench,reference,distributed"
STEPS=$ALL_STEPS
DRY_RUN=0
OUT_DIR=""

while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --steps)
      [ $# -ge 2 ] || { echo "gpu_check: --steps needs a comma-separated list" >&2; exit 2; }
      shift; STEPS=$1 ;;
    --steps=*) STEPS=${1#--steps=} ;;
    -h|--help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    -*) echo "gpu_check: unknown option $1 (try --help)" >&2; exit 2 ;;
    *) OUT_DIR=$1 ;;
  esac
  shift
done
OUT_DIR=${OUT_DIR:-${OUT:-gpu_check_out}}
N_STEPS=0
for s in ${STEPS//,/ }; do
  case ",$ALL_STEPS," in *",$s,"*) ;; *) echo "gpu_check: unknown step '$s' (steps: $ALL_STEPS)" >&2; exit 2 ;; esac
  N_STEPS=$((N_STEPS + 1))
done
if [ "$N_STEPS" = 0 ]; then
  echo "gpu_check: --steps needs at least one step, got '$STEPS' (steps: $ALL_STEPS)" >&2; exit 2
fi

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

START=$(date +%s)
FAILED=0
if [ "$DRY_RUN" = 1 ]; then  # a dry run writes nothing, not even OUT_DIR
  case $OUT_DIR in /*) ;; *) OUT_DIR="$ROOT/$OUT_DIR" ;; esac
else
  mkdir -p "$OUT_DIR" || exit 2
  OUT_DIR=$(cd "$OUT_DIR" && pwd)
fi
SUMMARY="$OUT_DIR/summary.txt"
[ "$DRY_RUN" = 1 ] || : > "$SUMMARY"

note() { echo "gpu_check: $*"; [ "$DRY_RUN" = 1 ] || echo "$*" >> "$SUMMARY"; }

# run_step NAME LIMIT_S COMMAND...: log to $OUT_DIR/NAME.log, record status and seconds.
run_step() {
  local name=$1 limit=$2; shift 2
  case ",$STEPS," in *",$name,"*) ;; *) return 0 ;; esac
  local left=$(( TOTAL_BUDGET_S - ($(date +%s) - START) ))
  (( limit > left )) && limit=$left
  if [ "$DRY_RUN" = 1 ]; then
    echo "[dry-run] $name (limit ${limit}s): $*"
    return 0
  fi
  if (( limit < 10 )); then
    note "$name: SKIPPED (total budget of ${TOTAL_BUDGET_S}s used up)"; FAILED=1; return 0
  fi
  local t0=$(date +%s) rc
  echo "gpu_check: $name (limit ${limit}s) ..."
  # bash -c so that the exported shell functions below can be steps too
  timeout --kill-after=10 "$limit" bash -c '"$@"' "$name" "$@" > "$OUT_DIR/$name.log" 2>&1
  rc=$?
  local took=$(( $(date +%s) - t0 ))
  if [ $rc -eq 0 ]; then
    note "$name: ok (${took}s)"
  elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    note "$name: TIMEOUT after ${took}s (see $name.log)"; FAILED=1
  else
    note "$name: FAILED rc=$rc (${took}s, see $name.log)"; FAILED=1
  fi
  tail -n 3 "$OUT_DIR/$name.log" | sed 's/^/    /'
}

# Packages the notebooks and tests import, as "module:distribution".
OPTIONAL="nbval:nbval ipykernel:ipykernel ipywidgets:ipywidgets trl:trl peft:peft datasets:datasets accelerate:accelerate hypothesis:hypothesis ml_dtypes:ml_dtypes matplotlib:matplotlib pandas:pandas"
missing_dists() {
  "$PY" - $OPTIONAL <<'EOF'
import importlib.util, sys
print(" ".join(d for m, d in (a.split(":") for a in sys.argv[1:]) if importlib.util.find_spec(m) is None))
EOF
}

env_report() {
  nvidia-smi || echo "nvidia-smi: not available"
  "$PY" - <<'EOF'
import platform, torch
print("python", platform.python_version(), "| torch", torch.__version__, "| cuda", torch.version.cuda)
print("cuda available:", torch.cuda.is_available())
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"gpu {i}: {p.name} | capability {p.major}.{p.minor} | {p.total_memory / 2**30:.1f} GiB")
if not torch.cuda.is_available():
    raise SystemExit("no CUDA GPU visible: this check is for GPU machines (use --dry-run to see the plan)")
EOF
  local rc=$?
  echo "missing optional packages: $(missing_dists)"
  return $rc
}

install_wheels() {
  local wheels=${WHEELS:-$ROOT/wheels} missing req
  missing=$(missing_dists)
  if [ -z "$missing" ]; then echo "nothing missing"; return 0; fi
  if [ ! -d "$wheels" ]; then
    echo "missing: $missing; no wheels folder at $wheels (see the top of this script)"; return 0
  fi
  req="$OUT_DIR/requirements-missing.txt"
  : > "$req"
  for d in $missing; do
    grep -iE "^${d}(==|>=|$)" requirements.txt >> "$req" || echo "$d" >> "$req"
  done
  echo "installing from $wheels:"; cat "$req"
  "$PY" -m pip install --no-index --find-links "$wheels" -r "$req"
}

reference_run() {
  if [ ! -f scripts/record_reference_run.py ]; then
    echo "scripts/record_reference_run.py is not in this repository: nothing to record"; return 0
  fi
  "$PY" scripts/record_reference_run.py --out "$OUT_DIR/reference_runs"
}

ddp_on_gpus() {  # notebook 08's DDP worker, one rank per GPU: NCCL (the course's tests use gloo)
  local gpus
  gpus=$("$PY" -c "import torch; print(max(torch.cuda.device_count(), 1))") || return 1
  mkdir -p "$OUT_DIR/distributed" || return 1
  COURSE_DIST_OUT="$OUT_DIR/distributed" "$PY" -m torch.distributed.run --standalone \
    --nproc_per_node="$gpus" -m course_utils.distributed.ddp --model mini --precision bf16
}

export -f missing_dists env_report install_wheels reference_run ddp_on_gpus
export PY OPTIONAL OUT_DIR ROOT
note "gpu_check $(date -u +%Y-%m-%dT%H:%M:%SZ) | commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown) | out $OUT_DIR"
run_step env 30 env_report
[ "$DRY_RUN" = 1 ] || grep -q "^env: ok" "$SUMMARY" || { case ",$STEPS," in *",env,"*) note "no usable GPU: stopping"; exit 1 ;; esac; }
run_step wheels 120 install_wheels
run_step unit 180 "$PY" -m pytest -o addopts="" -p no:cacheprovider -q -m "not browser" \
  --ignore=tests/test_browser.py --junitxml="$OUT_DIR/unit.xml" tests
run_step notebooks 240 "$PY" -m pytest -o addopts="" -p no:cacheprovider -p nbval --nbval-lax \
  --nbval-current-env --nbval-cell-timeout=300 -q --junitxml="$OUT_DIR/notebooks.xml" notebooks
run_step bench 150 "$PY" scripts/bench.py --out "$OUT_DIR/bench/"
run_step reference 120 reference_run
run_step distributed 60 ddp_on_gpus

if [ "$DRY_RUN" = 1 ]; then echo "gpu_check: dry run, nothing was run"; exit 0; fi
note "total: $(( $(date +%s) - START ))s | $([ $FAILED = 0 ] && echo 'all steps passed' || echo 'SOME STEPS FAILED')"
exit $FAILED
