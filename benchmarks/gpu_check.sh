#!/usr/bin/env bash
# GPU acceptance run of hrops on any NVIDIA GPU, from the repository root:
#
#   bash benchmarks/gpu_check.sh [--dry-run] [--out DIR] [--deadline SECONDS]
#                                [--bench-budget SECONDS] [--bench-ops haar,...] [--skip STEP,...]
#
# Steps, in priority order, each under its own time cap within the deadline
# (default 480 s, the build included; 900 s in a dry run):
#   env            the machine (GPU, torch, Triton, nvcc, compute-sanitizer)
#   build          hrops in place against this torch, for this GPU's architecture, all cores
#   tests          every test that uses the GPU (-k "cuda and not large"; pytest-xdist if present)
#   large          index safety past 2**31 elements (tests/test_large_index.py, -m large)
#   memcheck       compute-sanitizer memcheck over benchmarks/gpu_check/sanitize_driver.py
#   racecheck      compute-sanitizer racecheck over the kernels with shared memory
#   memcheck-triton  compute-sanitizer memcheck over the driver's Triton kernels
#   models         the models end to end against the same models on reference layers
#   bench          benchmarks/run.py --full --device cuda, every op and model case, no torch.compile
#   bench-compile  the same with the torch.compile baselines, for the time left
# Results go to DIR ($OUT, else ./gpu_check_out): report.md, gpu_check.json
# and the logs (7 files), rewritten after every step so that a step that
# runs out of time leaves the earlier ones' results; a summary table is
# printed last. Exit status 1 if a step failed or timed out.
#
# --dry-run (or GPU_CHECK_DRY_RUN=1) runs without a GPU: the build against the
# local torch (CPU kernels; skipped when hrops._C imports already, from the
# checkout or an installed hrops), the step logic, time caps, report and
# summary; the GPU steps are recorded as "skipped: no GPU" after a CPU
# stand-in of each where there is one (test collection, the sanitizer driver,
# the models and the benchmark on the CPU kernels, small sizes). --skip drops
# steps (e.g. models,bench in a quick dry run); PYTHON picks the interpreter
# (default python3).
set -u
CALLER_DIR=$PWD
PY=${PYTHON:-python3}
case "$PY" in */*) PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY") ;; esac
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
HERE=$ROOT/benchmarks/gpu_check
DRY=${GPU_CHECK_DRY_RUN:-0}
OUT_DIR=${OUT:-$ROOT/gpu_check_out}
DEADLINE_S=""
BENCH_BUDGET=0.05
BENCH_OPS=""
SKIP=","

usage() { sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --out) OUT_DIR=${2:?$1 needs a folder}; shift ;;
    --deadline) DEADLINE_S=${2:?$1 needs seconds}; shift ;;
    --bench-budget) BENCH_BUDGET=${2:?$1 needs seconds}; shift ;;
    --bench-ops) BENCH_OPS=${2:?$1 needs op families}; shift ;;
    --skip) SKIP=",${2:?$1 needs step names},"; shift ;;
    -h|--help) usage ;;
    *) echo "gpu_check: unknown argument $1" >&2; usage 2 ;;
  esac
  shift
done

ALL_STEPS=",env,build,tests,large,memcheck,racecheck,memcheck-triton,models,bench,bench-compile,"
for name in ${SKIP//,/ }; do
  case "$ALL_STEPS" in *",$name,"*) ;; *) echo "gpu_check: --skip: no step $name" >&2; exit 2 ;; esac
done
if [ -z "$DEADLINE_S" ]; then
  if [ "$DRY" = 1 ]; then DEADLINE_S=900; else DEADLINE_S=480; fi
fi
case "$DEADLINE_S" in ''|*[!0-9]*) echo "gpu_check: --deadline needs whole seconds" >&2; exit 2 ;; esac
case "$OUT_DIR" in /*) ;; *) OUT_DIR=$CALLER_DIR/$OUT_DIR ;; esac
mkdir -p "$OUT_DIR" && OUT_DIR=$(cd "$OUT_DIR" && pwd) || exit 1
rm -f "$OUT_DIR"/{report.md,gpu_check.json,build.log,tests.log,large.log,sanitizer.log,bench.log}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
STEPS=$WORK/steps.tsv
: > "$STEPS"
T0=$(date +%s)
DEADLINE=$((T0 + DEADLINE_S))
export PYTHONUNBUFFERED=1

report() {
  "$PY" "$HERE/report.py" --out "$OUT_DIR" --work "$WORK" --deadline "$DEADLINE_S" \
    --elapsed $(( $(date +%s) - T0 )) --dry-run "$DRY" "$@"
}

# record NAME STATUS SECONDS LOG [NOTE]: one step's result; the report is rewritten.
record() {
  printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "${5:-}" >> "$STEPS"
  report
}

# run_step NAME WANT RESERVE LOG -- COMMAND...: COMMAND, its output appended to
# LOG in the output folder, under a cap of WANT seconds that leaves RESERVE
# percent of the deadline to the steps after it.
run_step() {
  local name=$1 want=$2 reserve=$3 log=$4 cap start rc status
  shift 5
  case "$SKIP" in *",$name,"*) record "$name" "skipped: --skip" 0 ""; return ;; esac
  cap=$((DEADLINE - $(date +%s) - DEADLINE_S * reserve / 100))
  [ "$cap" -gt "$want" ] && cap=$want
  if [ "$cap" -lt 10 ]; then record "$name" "skipped: out of time" 0 ""; return; fi
  printf '===== %s =====\n$ %s\n' "$name" "$*" >> "$OUT_DIR/$log"
  echo "[t+$(( $(date +%s) - T0 ))s] $name (cap ${cap}s)"
  start=$(date +%s)
  timeout --kill-after=5 "$cap" "$@" >> "$OUT_DIR/$log" 2>&1
  rc=$?
  if [ "$rc" -eq 0 ]; then status=ok
  elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then status="timeout (${cap}s)"
  else status="FAILED (rc $rc)"
  fi
  local note=""
  if [ "$DRY" = 1 ] && [ -n "${GPU_STEP:-}" ]; then
    note="cpu stand-in"
    [ "$rc" -eq 0 ] && status="skipped: no GPU" || status="FAILED (cpu stand-in: $status)"
  fi
  record "$name" "$status" $(( $(date +%s) - start )) "$log" "$note"
}

# gpu_step: the steps after it need a GPU (in a dry run: their CPU stand-ins).
gpu_step() { GPU_STEP=1; }
no_gpu() { record "$1" "skipped: no GPU" 0 ""; }

HAS_GPU=0
"$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())" 2>/dev/null && HAS_GPU=1
if [ "$HAS_GPU" = 0 ] && [ "$DRY" != 1 ]; then
  echo "gpu_check: no CUDA device visible to $PY; use --dry-run to check the script without one" >&2
  exit 2
fi
[ -z "${CUDA_HOME:-}" ] && [ -d /usr/local/cuda ] && export CUDA_HOME=/usr/local/cuda
[ -n "${CUDA_HOME:-}" ] && export PATH=$PATH:$CUDA_HOME/bin

run_step env 60 0 build.log -- "$PY" "$HERE/env.py" --json "$WORK/env.json"

# build. A dry run uses the hrops it finds with kernels: the checkout's
# (editable install, in-place build) or an installed one, which the
# checkout must then not shadow (PYTHONSAFEPATH: no cwd on sys.path).
JOBS=$(nproc)
hrops_c() { env "$@" "$PY" -c "import hrops._C, os; print(os.path.dirname(hrops._C.__file__))" 2>/dev/null; }
if [ "$DRY" = 1 ] && where=$(hrops_c PYTHONPATH="$ROOT"); then
  record build "skipped: hrops._C imports from $where (dry run: not rebuilt)" 0 ""
  export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
elif [ "$DRY" = 1 ] && where=$(cd / && hrops_c PYTHONSAFEPATH=1); then
  record build "skipped: hrops._C imports from $where (dry run: installed, not rebuilt)" 0 ""
  export PYTHONSAFEPATH=1
else
  if [ "$DRY" = 1 ]; then
    run_step build 600 10 build.log -- env HROPS_CUDA=0 MAX_JOBS="$JOBS" \
      "$PY" setup.py build_ext --inplace
  else
    ARCH=$("$PY" "$HERE/env.py" --arch)
    run_step build 300 30 build.log -- env HROPS_CUDA=1 TORCH_CUDA_ARCH_LIST="$ARCH" \
      MAX_JOBS="$JOBS" "$PY" setup.py build_ext --inplace
  fi
  export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
fi
if ! info=$("$PY" -c "import hrops, json; print('build_info', json.dumps(hrops.build_info()))" \
    2>> "$OUT_DIR/build.log"); then
  for name in tests large memcheck racecheck memcheck-triton models bench bench-compile; do
    record "$name" "skipped: hrops does not import (build.log)" 0 ""
  done
  report --print-summary
  exit 1
fi
echo "$info" | tee -a "$OUT_DIR/build.log"

gpu_step
XDIST=""
"$PY" -c "import xdist" 2>/dev/null && XDIST="-n $(( JOBS < 8 ? JOBS : 8 ))"
PYTEST=("$PY" -m pytest -p no:cacheprovider -rfE --continue-on-collection-errors)
if [ "$DRY" = 1 ]; then
  run_step tests 120 25 tests.log -- "${PYTEST[@]}" tests -q --collect-only -k "cuda and not large"
  run_step large 60 20 large.log -- "${PYTEST[@]}" tests/test_large_index.py -q --collect-only \
    -m large
else
  # shellcheck disable=SC2086  # XDIST is empty or two words
  run_step tests 180 30 tests.log -- "${PYTEST[@]}" tests -v -k "cuda and not large" $XDIST
  run_step large 120 25 large.log -- "${PYTEST[@]}" tests/test_large_index.py -v -m large
fi

DRIVER=("$PY" "$HERE/sanitize_driver.py")
SHARED_MEMORY_OPS=region,modulated_idwt,ace  # grep __shared__ csrc/cuda
if [ "$DRY" = 1 ]; then
  run_step memcheck 60 15 sanitizer.log -- "${DRIVER[@]}" --device cpu
  run_step racecheck 60 12 sanitizer.log -- "${DRIVER[@]}" --device cpu --ops "$SHARED_MEMORY_OPS"
  run_step memcheck-triton 60 10 sanitizer.log -- "${DRIVER[@]}" --device cpu --ops triton
elif ! command -v compute-sanitizer > /dev/null; then
  record memcheck "skipped: compute-sanitizer not found" 0 ""
  record racecheck "skipped: compute-sanitizer not found" 0 ""
  record memcheck-triton "skipped: compute-sanitizer not found" 0 ""
else
  # Without the caching allocator every tensor is its own allocation, so an
  # access past its end is outside memory the process owns.
  SANITIZER=(env PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --error-exitcode 9
             --print-limit 100)
  run_step memcheck 120 18 sanitizer.log -- "${SANITIZER[@]}" --tool memcheck "${DRIVER[@]}"
  run_step racecheck 90 15 sanitizer.log -- "${SANITIZER[@]}" --tool racecheck "${DRIVER[@]}" \
    --ops "$SHARED_MEMORY_OPS"
  # (Triton compiles each kernel variant on first use: a step of its own, so
  # that its time cannot cost the CUDA kernels' memcheck its result.)
  run_step memcheck-triton 90 12 sanitizer.log -- "${SANITIZER[@]}" --tool memcheck \
    "${DRIVER[@]}" --ops triton
fi

OPS=()  # expanded as ${OPS[@]+...}: bash < 4.4 takes an empty array for unset
[ -n "$BENCH_OPS" ] && OPS=(--ops "$BENCH_OPS")
if [ "$DRY" = 1 ]; then
  run_step models 300 5 bench.log -- "$PY" "$HERE/models.py" --device cpu --quick \
    --budget "$BENCH_BUDGET" --json "$WORK/models.json"
  run_step bench 300 0 bench.log -- "$PY" "$ROOT/benchmarks/run.py" --full --device cpu --quick --no-compile \
    --threads 1 --budget "$BENCH_BUDGET" --json "$WORK/bench.json" ${OPS[@]+"${OPS[@]}"}
  no_gpu bench-compile
else
  run_step models 90 10 bench.log -- "$PY" "$HERE/models.py" --device cuda --budget 0.2 \
    --json "$WORK/models.json"
  run_step bench 150 2 bench.log -- "$PY" "$ROOT/benchmarks/run.py" --full --device cuda --no-compile \
    --budget "$BENCH_BUDGET" --json "$WORK/bench.json" ${OPS[@]+"${OPS[@]}"}
  run_step bench-compile "$DEADLINE_S" 2 bench.log -- "$PY" "$ROOT/benchmarks/run.py" --full --device cuda \
    --budget "$BENCH_BUDGET" --json "$WORK/bench-compile.json" ${OPS[@]+"${OPS[@]}"}
fi

report --print-summary
