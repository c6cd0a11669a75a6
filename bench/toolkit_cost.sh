#!/usr/bin/env bash
# Cost per optimizer step of each toolkit technique, side by side: the demo profile's stage 1 (bundled encoder, batch
# 64, length-grouped, seed 2020: every variant trains the same batches) for STEPS steps, the variants interleaved,
# ROUNDS rounds; seconds per step = the Trainer's train_runtime / STEPS (model loading excluded), the median over
# rounds, and its ratio to the baseline's. Run it on an otherwise idle machine.
# Usage: bash bench/toolkit_cost.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-.venv/bin/python}
OUT=${1:-/tmp/bench_toolkit_cost}
STEPS=${STEPS:-40}
ROUNDS=${ROUNDS:-2}
VARIANTS=${VARIANTS:-baseline fgm pgd rdrop msd llrd}
mkdir -p "$OUT"
# the variants' flags: bench/toolkit.sh's
eval "$(sed -n '/^flags_of() {/,/^}/p' bench/toolkit.sh)"
for round in $(seq "$ROUNDS"); do
  for v in $VARIANTS; do
    run="$OUT/${v}_r$round"
    # shellcheck disable=SC2046
    "$PYTHON" code/train.py code/assets/profiles/demo_stage1.json --model_name_or_path code/assets/demo_encoder \
      --data_save_dir "$OUT/cache" --cleaned_dir "$OUT/cache" --output_dir "$run" --overwrite_output_dir \
      --do_train --max_steps "$STEPS" --eval_strategy no --save_strategy no --report_to none --disable_tqdm true \
      --seed 2020 $(flags_of "$v") > "$run.log" 2>&1
  done
done
"$PYTHON" - "$OUT" "$STEPS" "$VARIANTS" <<'PY'
import json, statistics, sys
from pathlib import Path
out, steps, variants = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3].split()
cost = {v: statistics.median(json.loads((r / "train_results.json").read_text())["train_runtime"] / steps
                             for r in out.glob(f"{v}_r*") if r.is_dir()) for v in variants}
print("| variant | s/step (median) | × baseline |\n|---|---|---|")
for v in variants:
    print(f"| {v} | {cost[v]:.3f} | {cost[v] / cost['baseline']:.2f} |")
PY
