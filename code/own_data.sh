#!/usr/bin/env bash
# Your own classification tasks, from spec files to a model predict.py loads, in one command:
#   bash code/own_data.sh SPEC[,SPEC...] OUTPUT_DIR
#   bash code/own_data.sh data/extra/shopping_cat.json,data/extra/shopping_sentiment.json,data/extra/waimai_sentiment.json /tmp/reviews
# [1/3] with TAPT_STEPS=N: task-adaptive pretraining, the encoder's MLM pretraining continued on the tasks' train and
#       test texts (never a validation row's text) -> OUTPUT_DIR/encoder. Off by default: on the review specs 500 steps
#       (20 min) moved no score beyond the seed-to-seed spread.
# [2/3] fine-tuning all the tasks in one model with code/assets/profiles/own_data.json -> OUTPUT_DIR/model
# [3/3] the validation scores beside the TF-IDF + logistic-regression peer's on the same rows
# The recipe and its measurements: docs/tasks.md ("One command for your own tasks") and bench/RESULTS.md ("Own data").
# Settings (environment): PYTHON, MODEL (the encoder to start from; default the bundled demo encoder), TAPT_STEPS
# (pretraining steps; default 0, none; 500 take ~20 min on a 2-core CPU), PROFILE_FILE, BF16 (auto, 1 or 0), SEED,
# PEER=0 (skip step 3), EXTRA_ARGS (appended to train.py's flags). Run again after a stop: a finished step is kept,
# an unfinished one continues from its last checkpoint.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ $# -ne 2 ] || [ -z "$1" ] || [ -z "$2" ]; then
  echo "own_data.sh: error: usage: bash code/own_data.sh SPEC[,SPEC...] OUTPUT_DIR (task spec files, comma-separated; docs/tasks.md)" >&2
  exit 1
fi
SPECS=$1
OUT=$2
PYTHON=${PYTHON:-python}
MODEL=${MODEL:-code/assets/demo_encoder}
TAPT_STEPS=${TAPT_STEPS:-0}
PROFILE_FILE=${PROFILE_FILE:-code/assets/profiles/own_data.json}
SEED=${SEED:-2020}
PEER=${PEER:-1}
EXTRA_ARGS=${EXTRA_ARGS:-}
if ! [[ "$TAPT_STEPS" =~ ^[0-9]+$ ]]; then
  echo "own_data.sh: error: TAPT_STEPS=$TAPT_STEPS: give a number of steps (0 skips task-adaptive pretraining)" >&2
  exit 1
fi
# BF16=auto (default): bf16 autocast on a CPU that computes bf16 natively (AVX512-BF16, AMX), where the two epochs
# of own_data.json take ~1.4x one epoch in fp32; BF16=1 / BF16=0 force --bf16 true / false. Decided before anything
# is written, so a wrong BF16 is one line and no folder.
choice=$(BF16=${BF16:-auto} "$PYTHON" code/choose_profile.py --precision_only)
IFS=$'\t' read -r precision_why bf16 <<< "$choice"
precision=(${bf16:+--bf16 "$bf16"})
start=$SECONDS
mkdir -p "$OUT"  # tee writes OUT/train.stdout before train.py makes OUT/model
# Every path below is under OUT, and the caches keep the tasks' splits apart from run.sh's.
cache=(--data_save_dir "$OUT/cache" --cleaned_dir "$OUT/cache")

# Pretraining writes into encoder.partial/ and renames it when complete, so encoder/ is never half-written.
if [ "$TAPT_STEPS" -eq 0 ]; then
  echo "own_data.sh: [1/3] no task-adaptive pretraining (TAPT_STEPS=N to add it): fine-tuning $MODEL"
  encoder=$MODEL
elif [ -f "$OUT/encoder/model.safetensors" ]; then
  echo "own_data.sh: [1/3] reusing the task-adapted encoder $OUT/encoder"
  encoder=$OUT/encoder
else
  resume=()
  last=$(ls -d "$OUT/encoder.partial"/checkpoint-* 2>/dev/null | sort -t- -k2 -n | tail -n 1 || true)
  if [ -n "$last" ]; then resume=(--resume_from_checkpoint "$last"); fi
  echo "own_data.sh: [1/3] task-adaptive pretraining of $MODEL on the tasks' texts, $TAPT_STEPS steps -> $OUT/encoder${last:+ (continuing from $last)}"
  "$PYTHON" code/pretrain.py --tasks "$SPECS" --model_name_or_path "$MODEL" --output_dir "$OUT/encoder.partial" \
    --max_steps "$TAPT_STEPS" --seed "$SEED" --save_strategy steps --save_steps 100 --save_total_limit 1 \
    --logging_steps 50 --disable_tqdm false "${resume[@]}"
  rm -rf "$OUT/encoder.partial"/checkpoint-*
  mv "$OUT/encoder.partial" "$OUT/encoder"
  encoder=$OUT/encoder
fi

echo "own_data.sh: [2/3] fine-tuning ($PROFILE_FILE; $precision_why) -> $OUT/model"
# shellcheck disable=SC2086
"$PYTHON" code/train.py "$PROFILE_FILE" --tasks "$SPECS" --model_name_or_path "$encoder" "${cache[@]}" \
  --output_dir "$OUT/model" --seed "$SEED" --do_train --do_eval "${precision[@]}" $EXTRA_ARGS | tee "$OUT/train.stdout"
scores=$(tail -n 3 "$OUT/train.stdout")

if [ "$PEER" != 0 ]; then
  echo "own_data.sh: [3/3] the TF-IDF + logistic-regression peer on the same split"
  "$PYTHON" code/classical_peer.py --tasks "$SPECS" "${cache[@]}" | tee "$OUT/peer.stdout"
  peer=$(grep '^| tfidf_lr' "$OUT/peer.stdout")
else
  echo "own_data.sh: [3/3] skipped (PEER=0)"
  peer=""
fi

echo
echo "own_data.sh: done in $((SECONDS - start)) s. Validation scores of $OUT/model${peer:+, and the TF-IDF peer on the same rows}:"
echo "$scores"
if [ -n "$peer" ]; then echo "$peer"; fi
# the model's task names (a spec's "name"), as predict.py's --tasks takes them
names=$("$PYTHON" -c 'import json, sys; print(",".join(t["name"] for t in json.load(open(sys.argv[1]))["tasks"]))' "$OUT/model/config.json")
echo "own_data.sh: label new texts with: $PYTHON code/predict.py --model_name_or_path $OUT/model --tasks $names --text '...'"
