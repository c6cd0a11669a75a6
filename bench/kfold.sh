#!/usr/bin/env bash
# K-fold ensemble against the single model, on the demo profile's stage 1 with bench/toolkit.sh's budget (8,000 rows
# of each task's training rows, one epoch): K fold models of the train rows outside train.py's default validation
# split, their equal-weight ensemble (code/ensemble.py), each scored on that validation split, which none of them
# trained on (bench/kfold_holdout.py holds it out as the test A files). The single model is bench/toolkit.sh's
# baseline: the same recipe trained on those same train rows, validated on the same rows.
# The folds are not evaluated on their own validation folds (--do_eval: a third of the train rows each), which the
# held-out score does not need; the ensemble's weights are equal.
# Usage: bash bench/kfold.sh [OUT_DIR]     (K=3 SEED=2020 by default)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-.venv/bin/python}
MODEL=${MODEL:-code/assets/demo_encoder}
OUT=${1:-/tmp/bench_kfold}
K=${K:-3}
SEED=${SEED:-2020}
BUDGET=${BUDGET:---max_train_samples 8000 --num_train_epochs 1}
mkdir -p "$OUT"
[ -f "$OUT/data/heldout_labels.json" ] || "$PYTHON" bench/kfold_holdout.py prepare tcdata "$OUT/data"
folds=()
for ((k = 0; k < K; k++)); do
  run="$OUT/fold${k}_s$SEED"
  folds+=("$run")
  [ -f "$run/tnews_probs.csv" ] && continue
  echo "kfold: fold $k of $K, seed $SEED" >&2
  # shellcheck disable=SC2086
  "$PYTHON" code/train.py code/assets/profiles/demo_stage1.json --model_name_or_path "$MODEL" --data_dir "$OUT/data" \
    --data_save_dir "$run" --cleaned_dir "$run" --output_dir "$run" --prediction_dir "$run" --overwrite_output_dir \
    --num_folds "$K" --fold "$k" --do_train --do_predict --pseudo false --eval_strategy no \
    --save_strategy no --report_to none --disable_tqdm true --seed "$SEED" $BUDGET > "$run.log" 2>&1
done
"$PYTHON" code/ensemble.py "${folds[@]}" --output_dir "$OUT/ensemble_s$SEED" > "$OUT/ensemble_s$SEED.log" 2>&1
"$PYTHON" bench/kfold_holdout.py score "$OUT/data" "${folds[@]}" "$OUT/ensemble_s$SEED"
