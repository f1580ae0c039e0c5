#!/usr/bin/env bash
# The GPU check, in one go, within 5 minutes: the gpu-marked tests, then the NumPy-vs-CuPy benchmark.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]        (from anywhere; OUT_DIR defaults to $OUT, else benchmarks/results/gpu)
#
# Made for a bare GPU machine (here: an H200 with Python 3.12, numpy and cupy-cuda13x preinstalled, no pip):
# minitl runs from this source tree with PYTHONPATH set to it.  Uses pytest if it is importable there, and
# otherwise runs tests/test_gpu.py as a plain script.  Writes into OUT_DIR:
#   env.txt           nvidia-smi, versions, minitl's GPU status, which runner was used
#   gpu_tests.txt     the test output (ends with "N passed, N failed ...")
#   bench_models.*    ResNet-50 then ResNet-18, forward and training step at batch 64, 224x224 (.json/.txt/.png)
#   bench_ops.*       per op (matmul, conv2d fwd/bwd, max-pool, BatchNorm, copies) over batch sweeps
#   summary.txt       exit codes and wall times of each part
# Time boxes (seconds): tests 80, models benchmark 110, ops benchmark 65 -- about 4.5 minutes in all.  A
# benchmark round that would overrun its box is not started (the JSON says how many rounds ran).
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
OUT_DIR="${1:-${OUT:-$ROOT/benchmarks/results/gpu}}"
mkdir -p "$OUT_DIR"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export MINITL_HYPOTHESIS_PROFILE=gpu
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
PY="${PYTHON:-python3}"
SUMMARY="$OUT_DIR/summary.txt"
: > "$SUMMARY"
T0=$SECONDS

part() {  # part NAME SECONDS COMMAND... : run with a time box, log exit code and wall time
  local name=$1 limit=$2; shift 2
  local start=$SECONDS
  timeout --kill-after=5 "$limit" "$@"
  local rc=$?
  echo "$name: exit $rc, $((SECONDS - start)) s (box $limit s)" | tee -a "$SUMMARY"
  return 0
}

{
  echo "date: $(date -u +%FT%TZ)"
  nvidia-smi 2>&1 || echo "nvidia-smi not available"
  "$PY" -c "import sys, numpy; print('python', sys.version.split()[0], 'numpy', numpy.__version__)"
  "$PY" -c "import cupy; print('cupy', cupy.__version__)" 2>&1
  "$PY" -c "import json, minitl.backend as b; print(json.dumps(b.gpu_status(), indent=1))" 2>&1
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" 2>&1 | tail -1
} > "$OUT_DIR/env.txt" 2>&1

if "$PY" -c "import pytest" 2>/dev/null; then
  echo "tests: pytest -m gpu (every op test's cupy case, plus tests/test_gpu.py)" >> "$OUT_DIR/env.txt"
  part gpu_tests 80 "$PY" -m pytest -m gpu -q -p no:cacheprovider -p no:randomly --continue-on-collection-errors \
    -o addopts="" tests/ > "$OUT_DIR/gpu_tests.txt" 2>&1
else
  echo "tests: pytest absent, plain runner: python tests/test_gpu.py" >> "$OUT_DIR/env.txt"
  part gpu_tests 80 "$PY" tests/test_gpu.py > "$OUT_DIR/gpu_tests.txt" 2>&1
fi
tail -3 "$OUT_DIR/gpu_tests.txt"

# the headline first: ResNet-50 training step at batch 64 (then forward, then ResNet-18)
part bench_models 110 "$PY" -m minitl bench --preset full --no-ops --models resnet50,resnet18 --model-batches 64 \
  --rounds 5 --time-limit 100 --out "$OUT_DIR" --name bench_models 2>&1 | tee "$OUT_DIR/bench_models.log" | tail -12

part bench_ops 65 "$PY" -m minitl bench --preset full --no-models --rounds 5 --time-limit 55 \
  --out "$OUT_DIR" --name bench_ops 2>&1 | tee "$OUT_DIR/bench_ops.log" | tail -25

echo "total: $((SECONDS - T0)) s" | tee -a "$SUMMARY"
ls -la "$OUT_DIR"
