#!/usr/bin/env bash
# On a machine with a CUDA GPU: the GPU-marked tests, then the throughput benchmark, in about 5 minutes.
#
#   bash benchmarks/device_check.sh                 # log in ./device_check-<time>/ unless $OUT is set
#   OUT=/some/folder bash benchmarks/device_check.sh
#
# Needs a Python with torch built for CUDA and nasforge's dependencies ($PYTHON, default python3);
# runs this checkout's source (PYTHONPATH=src), so nothing needs installing. Every line goes to the
# terminal and to $OUT/device_check.log; the benchmark's figures also to $OUT/gpu_throughput.json.
# Exit status: 0 when the tests passed and the benchmark ran, else the first failure's.
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-./device_check-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
LOG="$OUT/device_check.log"
PYTHON="${PYTHON:-python3}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
status=0
{
  echo "== nasforge device check, $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "(no nvidia-smi)"
  "$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available(), 'devices', torch.cuda.device_count())"
  if ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "no CUDA device visible to torch: nothing to check"; exit 3
  fi

  echo "== GPU-marked tests (limit 150 s)"
  timeout 150 "$PYTHON" -m pytest -q -m gpu -p no:cacheprovider tests || status=$?

  echo "== benchmarks/performance/gpu_throughput.py (limit 130 s)"
  timeout 130 "$PYTHON" benchmarks/performance/gpu_throughput.py --json "$OUT/gpu_throughput.json" || { rc=$?; [ "$status" = 0 ] && status=$rc; }

  echo "== done: status $status"
  exit "$status"
} 2>&1 | tee "$LOG"
status=${PIPESTATUS[0]}
echo "log: $LOG"
exit "$status"
