#!/usr/bin/env bash
# One device call for the open issues' GPU checks (carry .whl and .gint-cache):
#   bash tools/gpu_session.sh A   GPU tests of threads/streams/norms/tiles, the threads
#                                 stress (issue 31), layouts with and without multi-row tiles (29)
#   bash tools/gpu_session.sh B   transformers' models, gint's choice on (issue 30)
#   bash tools/gpu_session.sh C   tile choice, composites and choice GPU tests; layouts; Llama and BERT
#   bash tools/gpu_session.sh D   after a kernel change: the dtype/instruction GPU tests, layouts, all three models
#   bash tools/gpu_session.sh E   all three models with graph_balance as a contender (--balance), then kernel tables
#   bash tools/gpu_session.sh F   training's kernel tables (eager, graph_eager, gint) for BERT and Llama
#   bash tools/gpu_session.sh G   host profiles (cProfile) of BERT's training step and bf16 forward
#   bash tools/gpu_session.sh H   BERT and Llama with graph_balance as a contender, then BERT training's host profile
#   bash tools/gpu_session.sh I   after new instruction rows: their GPU tests, then all three models with --balance
#   bash tools/gpu_session.sh J   after a dispatch change: the kernel A/B against the previous build
#                                 (.gint-cache/old-default.ptx/.cubin; checks results too), all three models,
#                                 then the GPU tests of instructions and rows
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 GINT_CACHE_DIR=$PWD/.gint-cache
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv,noheader
python3 -c "import torch, numba, numba_cuda, numpy, gint.kernel.codegen as c; print('kernel', c.source_digest(), 'torch', torch.__version__, 'numba', numba.__version__, 'numba-cuda', numba_cuda.__version__)"
case "${1:-A}" in
A)
  # the threads stress runs beside the tests (more traffic, not less); timings come after both
  timeout 330 python3 -m gint.conductor.stress --backends gint --scenarios first,shapes,reduce,cached \
    --threads 4,8 --iterations ${ITER:-200} > "$OUT/stress.log" 2>&1 &
  timeout 170 python3 -m pytest -m gpu -q -p no:cacheprovider tests/test_threads.py tests/test_gpu_streams.py \
    tests/test_norms_two_sizes.py tests/test_tiles.py > "$OUT/pytest-gpu.log" 2>&1
  echo "== pytest (exit $?)"; grep -E "passed|failed|^FAILED|^ERROR" "$OUT/pytest-gpu.log" | tail -15
  timeout 150 python3 -m gint.conductor.stress --backends gint --scenarios first,shapes,reduce \
    --threads 8 --iterations ${ITER:-200} --streams > "$OUT/stress-streams.log" 2>&1
  echo "== stress --streams (exit $?)"; grep -v "after .* rounds" "$OUT/stress-streams.log" | tail -6
  wait
  echo "== stress"; grep -v "after .* rounds" "$OUT/stress.log" | tail -12
  timeout 60 python3 -m gint.bench --layouts --out "$OUT" > "$OUT/layouts.log" 2>&1
  echo "== layouts (exit $?)"; tail -16 "$OUT/layouts.log"
  timeout 80 python3 -m gint.bench --layouts --multi-row-tiles --out "$OUT" > "$OUT/layouts-rows.log" 2>&1
  echo "== layouts, multi-row tiles (exit $?)"; tail -16 "$OUT/layouts-rows.log"
  ;;
B)
  timeout 90 python3 tools/sdpa_probe.py cuda > "$OUT/sdpa.log" 2>&1; echo "== sdpa probe (exit $?)"; tail -8 "$OUT/sdpa.log"
  timeout 420 python3 -m gint.bench --models ${MODELS:-gpt2,llama,bert} --out "$OUT" > "$OUT/models.log" 2>&1
  echo "== models (exit $?)"; tail -40 "$OUT/models.log"
  ;;
C)
  timeout 120 python3 -m pytest -m gpu -q -p no:cacheprovider -n 4 tests/test_tile_choice.py tests/test_composites.py \
    tests/test_choice.py > "$OUT/pytest-gpu.log" 2>&1
  echo "== pytest (exit $?)"; grep -E "passed|failed|^FAILED|^ERROR" "$OUT/pytest-gpu.log" | tail -15
  timeout 40 python3 -m gint.bench --layouts --out "$OUT" > "$OUT/layouts.log" 2>&1
  echo "== layouts (exit $?)"; tail -9 "$OUT/layouts.log"
  timeout 170 python3 -m gint.bench --models ${MODELS:-llama,bert} --out "$OUT" > "$OUT/models.log" 2>&1
  echo "== models (exit $?)"; tail -30 "$OUT/models.log"
  ;;
D)
  timeout 150 python3 -m pytest -m gpu -q -p no:cacheprovider -n 4 tests/test_dtypes_layouts.py tests/test_instructions.py \
    tests/test_composites.py tests/test_tile_choice.py tests/test_choice.py > "$OUT/pytest-gpu.log" 2>&1
  echo "== pytest (exit $?)"; grep -E "passed|failed|^FAILED|^ERROR" "$OUT/pytest-gpu.log" | tail -15
  timeout 40 python3 -m gint.bench --layouts --out "$OUT" > "$OUT/layouts.log" 2>&1
  echo "== layouts (exit $?)"; tail -12 "$OUT/layouts.log"
  timeout 330 python3 -m gint.bench --models ${MODELS:-gpt2,llama,bert} --out "$OUT" > "$OUT/models.log" 2>&1
  echo "== models (exit $?)"; tail -45 "$OUT/models.log"
  ;;
E)
  timeout 420 python3 -m gint.bench --models ${MODELS:-gpt2,llama,bert} --balance --out "$OUT" > "$OUT/models.log" 2>&1
  echo "== models (exit $?)"; tail -45 "$OUT/models.log"
  python3 -c "import json,glob; d=json.load(open(sorted(glob.glob('$OUT/bench-models-*.json'))[-1])); [print(n, m, r.get('gint_balanced_speedup_vs_eager'), r.get('speedup_vs_eager'), r.get('kernel_speedup_vs_eager')) for n, x in d['models'].items() for m, r in x.items() if isinstance(r, dict)]"
  timeout 120 python3 tools/profile_floor.py bert > "$OUT/floor.log" 2>&1; echo "== floor (exit $?)"; grep "==" "$OUT/floor.log"
  ;;
F)
  timeout 300 python3 tools/profile_floor.py --train ${MODELS:-bert llama} > "$OUT/floor-train.log" 2>&1
  echo "== floor, training (exit $?)"; cat "$OUT/floor-train.log" | grep -v Warning | tail -150
  ;;
G)
  timeout 150 python3 tools/profile_host.py bert --train eager graph_eager gint > "$OUT/host-train.log" 2>&1
  echo "== host, training (exit $?)"; grep "==" "$OUT/host-train.log"
  timeout 100 python3 tools/profile_host.py bert gint > "$OUT/host-bf16.log" 2>&1
  echo "== host, bf16 (exit $?)"; grep "==" "$OUT/host-bf16.log"
  ;;
H)
  timeout 300 python3 -m gint.bench --models ${MODELS:-bert,llama} --balance --out "$OUT" > "$OUT/models.log" 2>&1
  echo "== models (exit $?)"; tail -32 "$OUT/models.log"
  timeout 100 python3 tools/profile_host.py bert --train gint > "$OUT/host-train.log" 2>&1
  echo "== host, training (exit $?)"; grep "==" "$OUT/host-train.log"
  ;;
J)
  timeout 170 python3 tools/kernel_ab.py .gint-cache/old-default.ptx .gint-cache/old-default.cubin > "$OUT/ab.log" 2>&1
  echo "== kernel A/B, A = this build, B = the previous (exit $?)"; tail -40 "$OUT/ab.log"
  timeout 200 python3 -m gint.bench --models ${MODELS:-gpt2,llama,bert} --out "$OUT" > "$OUT/models.log" 2>&1
  echo "== models (exit $?)"; tail -45 "$OUT/models.log"
  timeout 150 python3 -m pytest -m gpu -q -p no:cacheprovider -n 8 tests/test_instructions.py tests/test_rows.py \
    > "$OUT/pytest-gpu.log" 2>&1
  echo "== pytest (exit $?)"; grep -E "passed|failed|^FAILED|^ERROR" "$OUT/pytest-gpu.log" | tail -15
  ;;
I)
  timeout 90 python3 -m pytest -m gpu -q -p no:cacheprovider -n 4 tests/test_instructions.py \
    -k "${ROWS:-TANH or GELU or tanh or gelu}" > "$OUT/pytest-gpu.log" 2>&1
  echo "== pytest (exit $?)"; grep -E "passed|failed|^FAILED|^ERROR" "$OUT/pytest-gpu.log" | tail -15
  timeout 420 python3 -m gint.bench --models ${MODELS:-gpt2,llama,bert} --balance --out "$OUT" > "$OUT/models.log" 2>&1
  echo "== models (exit $?)"; tail -45 "$OUT/models.log"
  ;;
esac
