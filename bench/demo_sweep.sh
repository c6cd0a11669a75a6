#!/usr/bin/env bash
# Quality of the demo recipe: run.sh's demo profile for several variants side by side (meant for a GPU machine,
# where these small models leave the device mostly idle; the recipe and seeds are the CPU run's).
#   demo_grouped  - the CPU defaults (length-grouped task batches)
#   demo_random   - the same without length grouping (does grouping cost accuracy?)
#   h256_p3_e3    - hidden 256, pretraining 3 epochs, stage 1 3 epochs (what would beat the TF-IDF peer?)
# Usage: bash bench/demo_sweep.sh OUT_DIR   (each variant's log lands in OUT_DIR/<variant>.log)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${1:?output directory}
mkdir -p "$out"
run() {  # name, then VAR=value settings for run.sh
  local name=$1; shift
  env PROFILE=demo OUTPUT_DIR="/tmp/sweep/$name" PREDICTION_DIR="/tmp/sweep/$name/pred" "$@" bash run.sh \
    > "$out/$name.log" 2>&1 || echo "$name failed" >> "$out/$name.log"
}
run demo_grouped &
run demo_random EXTRA_ARGS="--train_sampling_strategy random" &
run h256_p3_e3 PRETRAIN_EPOCHS=3 STAGE1_EPOCHS=3 DEMO_CONFIG=bench/configs/h256_l4.json &
wait
for f in "$out"/*.log; do echo "== $f"; grep -A2 "^| macro-F1" "$f" | tail -3; grep -E "held-out MLM|run.sh: done" "$f"; done
