#!/usr/bin/env bash
# Correctness on the GPU machine, in one or two calls: the GPU tests, the bytecode fuzzer
# in parallel processes, compute-sanitizer memcheck/racecheck over GPU tests and fuzz
# cases. Carry .whl (../shared/device/carry-wheels.sh). Logs go to $OUT.
#   bash tools/gpu_validate.sh tests [FUZZ_CASES [PROCESSES]]   # pytest -m gpu, and the fuzzer
#   bash tools/gpu_validate.sh sanitize [FUZZ_CASES]            # memcheck + racecheck
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
mode=${1:-tests}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python3 -c "import torch, numba, numba_cuda, numpy; print('torch', torch.__version__, 'numba', numba.__version__, 'numba-cuda', numba_cuda.__version__, 'numpy', numpy.__version__)"
if [ "$mode" = tests ]; then
  cases=${2:-100000}; procs=${3:-10}; per=$(( (cases + procs - 1) / procs ))
  for i in $(seq 0 $((procs - 1))); do
    OMP_NUM_THREADS=1 python3 -m gint.fuzz --cases "$per" --seed $((i * per)) > "$OUT/fuzz-$i.log" 2>&1 &
  done
  python3 -m pytest -m gpu -q -p no:cacheprovider -n 4 2>&1 | tee "$OUT/pytest-gpu.log" | tail -15
  wait
  echo "== fuzz ($procs processes x $per cases)"
  for i in $(seq 0 $((procs - 1))); do grep -E "cases:|FAIL" "$OUT/fuzz-$i.log" | grep -v "^  [0-9]" | tail -4; done
elif [ "$mode" = sanitize ]; then
  cases=${2:-2000}
  for tool in memcheck racecheck; do
    echo "== $tool: GPU tests of the executor, row programs, access modes and regressions"
    compute-sanitizer --tool $tool --error-exitcode 9 python3 -m pytest -m gpu -q -x -p no:cacheprovider \
      tests/test_executor.py tests/test_rows.py tests/test_access_modes.py tests/test_wrong_results.py \
      -k "not attention and not transformer" > "$OUT/sanitize-$tool-tests.log" 2>&1
    echo "exit $?"; grep -E "ERROR SUMMARY|passed|failed" "$OUT/sanitize-$tool-tests.log" | tail -3
    echo "== $tool: $cases fuzz cases"
    compute-sanitizer --tool $tool --error-exitcode 9 python3 -m gint.fuzz --cases "$cases" --seed 900000 \
      > "$OUT/sanitize-$tool-fuzz.log" 2>&1
    echo "exit $?"; grep -E "ERROR SUMMARY|cases:" "$OUT/sanitize-$tool-fuzz.log" | grep -v "^  [0-9]" | tail -3
  done
fi
