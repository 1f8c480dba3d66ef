#!/usr/bin/env bash
# Correctness on the GPU machine in one call: the GPU tests while the bytecode fuzzer runs
# in parallel processes, then compute-sanitizer memcheck and racecheck over GPU tests and
# fuzz cases. Carry .whl (../shared/device/carry-wheels.sh). Four logs go to $OUT (the
# device tool returns at most 8 files).
#   bash tools/gpu_validate.sh [FUZZ_PROCESSES] [FUZZ_CASES_EACH] [FUZZ_SEED]
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
procs=${1:-8}; per=${2:-2500}; seed=${3:-0}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python3 -c "import torch, numba, numba_cuda, numpy; print('torch', torch.__version__, 'numba', numba.__version__, 'numba-cuda', numba_cuda.__version__, 'numpy', numpy.__version__)"
mkdir -p /tmp/fuzz
for i in $(seq 0 $((procs - 1))); do
  OMP_NUM_THREADS=1 timeout 330 python3 -m gint.fuzz --cases "$per" --seed $((seed + i * per)) > /tmp/fuzz/$i.log 2>&1 &
done
timeout 330 python3 -m pytest -m gpu -q -p no:cacheprovider -n 6 > "$OUT/pytest-gpu.log" 2>&1
echo "== pytest -m gpu (exit $?)"; grep -E "passed|failed|^FAILED|^ERROR" "$OUT/pytest-gpu.log" | tail -25
wait
for i in $(seq 0 $((procs - 1))); do echo "-- process $i, seeds from $((seed + i * per))"; cat /tmp/fuzz/$i.log; done > "$OUT/fuzz.log"
echo "== fuzz ($procs processes x $per cases)"; grep -E "cases:.* in |FAIL" "$OUT/fuzz.log" | grep -v "^  [0-9]" | head -30
for tool in memcheck racecheck; do
  {
    echo "== $tool: GPU tests of the executor, access modes and row programs"
    timeout 70 compute-sanitizer --tool $tool --error-exitcode 9 python3 -m pytest -m gpu -q -x -p no:cacheprovider \
      tests/test_executor.py tests/test_access_modes.py tests/test_rows.py -k "not training" 2>&1 | tail -8
    echo "exit ${PIPESTATUS[0]}"
    echo "== $tool: fuzz cases"
    timeout 45 compute-sanitizer --tool $tool --error-exitcode 9 python3 -m gint.fuzz --cases 150 --seed 900000 2>&1 | tail -6
    echo "exit ${PIPESTATUS[0]}"
  } > "$OUT/sanitize-$tool.log" 2>&1
  grep -E "^==|ERROR SUMMARY|exit|passed|failed|cases:" "$OUT/sanitize-$tool.log" | tail -8
done
