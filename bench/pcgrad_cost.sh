#!/usr/bin/env bash
# What --pcgrad costs per optimizer step on this machine: the demo-size BERT (random init), the --debug subset,
# 60 steps at per-device batch 32, length-grouped, no evaluation or saving; plain and PCGrad alternating twice.
# A PCGrad step reads one batch of each of the 3 tasks, so the per-row cost is the per-step cost / 3.
# Usage: bash bench/pcgrad_cost.sh [OUT_DIR]   (PYTHON defaults to .venv/bin/python)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-.venv/bin/python}
OUT=${1:-/tmp/bench_pcgrad_cost}
mkdir -p "$OUT"
for v in plain pcgrad plain pcgrad; do
  flag=(); [ "$v" = pcgrad ] && flag=(--pcgrad true)
  rm -rf "${OUT:?}/$v"
  "$PYTHON" code/train.py --config_name code/assets/configs/demo.json --debug --do_train --max_steps 60 \
    --max_seq_length 128 --per_device_train_batch_size 32 --eval_strategy no --load_best_model_at_end false \
    --save_strategy no --train_sampling_strategy group_by_length --output_dir "$OUT/$v" --data_save_dir "$OUT/cache" \
    --cleaned_dir "$OUT/cache" --report_to none --disable_tqdm true "${flag[@]}" > "$OUT/$v.log" 2>&1
  "$PYTHON" -c "import json,sys; t=json.load(open('$OUT/$v/train_results.json'))['train_runtime']; print(f'$v: {t:.2f} s for 60 steps, {1000*t/60:.0f} ms/step')"
done
