#!/usr/bin/env bash
# Reproduce the CPU tables of bench/RESULTS.md, then assemble it. `bash bench/run_all.sh --smoke` runs every
# benchmark at tiny sizes in about a minute (CI does, so they cannot silently rot) and leaves the results alone.
# The GPU section: `bash bench/run_gpu.sh` on a CUDA machine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python}
smoke=${1:-}
"$PY" bench/preprocess_speed.py $smoke
"$PY" bench/padding_efficiency.py $smoke
"$PY" bench/ema_overhead.py $smoke
"$PY" bench/train_throughput.py $smoke
"$PY" bench/predict_speed.py $smoke
"$PY" bench/serve_load.py $smoke
"$PY" bench/profile_step.py $smoke
"$PY" bench/single_vs_multi.py $smoke
if [ -z "$smoke" ]; then
  # not in the smoke run (CI): its two ONNX exports alone take ~30 s; `python bench/onnx_speed.py --smoke` runs it small
  "$PY" bench/onnx_speed.py
  "$PY" bench/make_results.py
fi
