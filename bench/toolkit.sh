#!/usr/bin/env bash
# The competition toolkit's techniques (docs/toolkit.md), each against the demo profile's stage 1 on the same budget:
# the bundled demo encoder fine-tuned with code/assets/profiles/demo_stage1.json, limited to BUDGET (default: 8,000
# rows of each task's train split, one epoch = 375 optimizer steps of 64 rows; the full stage 1 is 1.25 epochs of
# all rows, 12 minutes here), evaluated once at the end on each task's whole validation split. Each variant adds one
# technique to that recipe; SEEDS seeds each (--seed: heads' initialisation, dropout, batch order).
# Writes OUT/<variant>_s<seed>/ and prints the table (mean and spread over seeds, seconds per optimizer step).
# Usage: bash bench/toolkit.sh [OUT_DIR]      (SEEDS="2020 2021" VARIANTS="baseline fgm" to choose)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-.venv/bin/python}
MODEL=${MODEL:-code/assets/demo_encoder}
OUT=${1:-/tmp/bench_toolkit}
SEEDS=${SEEDS:-2020 2021}
BUDGET=${BUDGET:---max_train_samples 8000 --num_train_epochs 1}
VARIANTS=${VARIANTS:-baseline fgm pgd rdrop msd llrd}
mkdir -p "$OUT"
flags_of() {
  case $1 in
    baseline) echo "" ;;
    fgm) echo "--adversarial fgm --adversarial_epsilon 1.0" ;;
    pgd) echo "--adversarial pgd --adversarial_epsilon 1.0 --adversarial_steps 3" ;;
    # the profile trains without dropout (it underfits in 1.25 epochs); R-Drop needs some, multi-sample dropout
    # brings its own in the heads
    rdrop) echo "--rdrop_alpha 1.0 --config_overrides hidden_dropout_prob=0.1,attention_probs_dropout_prob=0" ;;
    dropout) echo "--config_overrides hidden_dropout_prob=0.1,attention_probs_dropout_prob=0" ;;
    msd) echo "--multi_sample_dropout 5 --config_overrides hidden_dropout_prob=0,attention_probs_dropout_prob=0,classifier_dropout=0.3" ;;
    llrd) echo "--layerwise_lr_decay 0.9" ;;
    *) echo "unknown variant $1" >&2; exit 2 ;;
  esac
}
for seed in $SEEDS; do
  for v in $VARIANTS; do
    run="$OUT/${v}_s$seed"
    [ -f "$run/eval_results.json" ] && continue
    echo "toolkit: $v seed $seed" >&2
    # shellcheck disable=SC2046,SC2086
    "$PYTHON" code/train.py code/assets/profiles/demo_stage1.json --model_name_or_path "$MODEL" \
      --data_save_dir "$OUT/cache" --cleaned_dir "$OUT/cache" --output_dir "$run" --overwrite_output_dir \
      --do_train --do_eval --eval_strategy no --save_strategy no --report_to none --disable_tqdm true \
      --seed "$seed" $BUDGET $(flags_of "$v") > "$run.log" 2>&1
  done
done
"$PYTHON" bench/toolkit_table.py "$OUT"
