#!/usr/bin/env bash
# Correctness on the GPU machine: the GPU tests while the bytecode fuzzer runs in parallel
# processes, then compute-sanitizer memcheck and racecheck over GPU tests and fuzz cases.
# Carry .whl (../shared/device/carry-wheels.sh). Logs go to $OUT (at most 8 files come back).
#   [SANITIZE="memcheck-tests racecheck-fuzz ..."] bash tools/gpu_validate.sh [FUZZ_PROCESSES] [FUZZ_SECONDS] [FUZZ_SEED] [all|fuzz]
# Each fuzz process runs seeds SEED + i * 10^6 onwards until FUZZ_SECONDS have passed, so
# processes never repeat a case and one call fills its time; `fuzz` skips tests and sanitizers.
# SANITIZE picks sanitizer runs (TOOL-tests, TOOL-fuzz; default all four).
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
procs=${1:-8}; seconds=${2:-280}; seed=${3:-0}; mode=${4:-all}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python3 -c "import torch, numba, numba_cuda, numpy, gint.kernel.codegen as c; print('kernel', c.source_digest(), 'torch', torch.__version__, 'numba', numba.__version__, 'numba-cuda', numba_cuda.__version__, 'numpy', numpy.__version__)"
mkdir -p /tmp/fuzz
for i in $(seq 0 $((procs - 1))); do
  OMP_NUM_THREADS=1 timeout $((seconds + 60)) python3 -m gint.fuzz --cases 1000000 --seconds "$seconds" \
    --seed $((seed + i * 1000000)) > /tmp/fuzz/$i.log 2>&1 &
done
if [ "$mode" = all ]; then
  OMP_NUM_THREADS=2 timeout $((seconds + 30)) python3 -m pytest -m gpu -q -p no:cacheprovider -n 4 > "$OUT/pytest-gpu.log" 2>&1
  echo "== pytest -m gpu (exit $?)"; grep -E "passed|failed|^FAILED|^ERROR" "$OUT/pytest-gpu.log" | tail -25
fi
wait
for i in $(seq 0 $((procs - 1))); do echo "-- process $i, seeds from $((seed + i * 1000000))"; cat /tmp/fuzz/$i.log; done > "$OUT/fuzz.log"
echo "== fuzz ($procs processes x ${seconds} s)"; grep -E "cases:.* in |FAIL" "$OUT/fuzz.log" | grep -v "^  [0-9]" | head -30
python3 - "$OUT/fuzz.log" <<'PY'
import re, sys
done = [l for l in open(sys.argv[1]) if re.match(r"\d+ cases: .* in [\d.]+ s$", l)]
n = lambda pat: sum(int(m.group(1)) for l in done for m in [re.search(pat, l)] if m)
print(f"== fuzz total: {n(r'^(\d+) cases')} cases, {n(r'(\d+) ran')} ran, {n(r'(\d+) failures')} failures, {len(done)} processes reported")
PY
[ "$mode" = all ] || exit 0
SANITIZE=${SANITIZE:-memcheck-tests memcheck-fuzz racecheck-tests racecheck-fuzz}
for run in $SANITIZE; do
  tool=${run%-*}
  {
    if [ "${run#*-}" = tests ]; then
      echo "== $tool: GPU tests of the executor, access modes and row programs"
      timeout 70 compute-sanitizer --tool $tool --error-exitcode 9 python3 -m pytest -m gpu -q -x -p no:cacheprovider \
        tests/test_executor.py tests/test_access_modes.py tests/test_rows.py -k "not training" 2>&1 | tail -8
    else
      echo "== $tool: fuzz cases"
      budget=${SANITIZE_FUZZ_SECONDS:-40}  # the fuzzer stops itself 25 s before the timeout
      timeout $budget compute-sanitizer --tool $tool --error-exitcode 9 \
        python3 -m gint.fuzz --cases 100000 --seconds $((budget - 25)) --seed 900000 2>&1 | tail -6
    fi
    echo "exit ${PIPESTATUS[0]}"
  } > "$OUT/sanitize-$run.log" 2>&1
  grep -E "^==|ERROR SUMMARY|exit|passed|failed|cases:" "$OUT/sanitize-$run.log" | tail -8
done
