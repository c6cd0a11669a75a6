#!/usr/bin/env bash
# Multi-task strategies on the demo profile's stage 1: the same pretrained demo encoder fine-tuned with the demo
# profile (code/assets/profiles/demo_stage1.json) under (a) proportional mixing and equal task weights (the demo
# default), (b) the 2020 task loss weights ocnli=1.0,ocemotion=1.5,tnews=1.5, (c) temperature sampling T=2,
# (d) uniform sampling, (e) PCGrad (one batch of each task per step), (f) PCGrad with the EMA decay 0.997 = 0.999^3
# (a PCGrad step reads three batches: the same averaging horizon in rows). Validation macro-F1 per task at the end of stage 1 (EMA weights) and the wall time.
# Usage: MODEL=user_data/demo_model bash bench/task_strategies.sh [OUT_DIR]   (measured with the model PRETRAIN_EPOCHS=0.3 bash run.sh pretrains; MODEL=code/assets/demo_encoder for the bundled one)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-.venv/bin/python}
MODEL=${MODEL:-user_data/demo_model}
OUT=${1:-/tmp/bench_task_strategies}
mkdir -p "$OUT"
variants=("a_proportional|"
          "b_2020_weights|--task_loss_weights ocnli=1.0,ocemotion=1.5,tnews=1.5"
          "c_temperature_2|--task_sampling temperature --task_sampling_temperature 2"
          "d_uniform|--task_sampling uniform"
          "e_pcgrad|--pcgrad true"
          "f_pcgrad_ema_0.997|--pcgrad true --ema_decay 0.997")
for v in "${variants[@]}"; do
  name=${v%%|*}; flags=${v#*|}
  [ -f "$OUT/$name/eval_results.json" ] && continue
  start=$(date +%s)
  # shellcheck disable=SC2086
  "$PYTHON" code/train.py code/assets/profiles/demo_stage1.json --model_name_or_path "$MODEL" \
    --data_save_dir "$OUT/cache" --cleaned_dir "$OUT/cache" --output_dir "$OUT/$name" --overwrite_output_dir \
    --do_train --do_eval --report_to none --disable_tqdm true $flags > "$OUT/$name.log" 2>&1
  echo $(( $(date +%s) - start )) > "$OUT/$name/wall_s"
done
"$PYTHON" - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print("| variant | ocnli | ocemotion | tnews | avg | wall s |\n|---|---|---|---|---|---|")
for d in sorted(p for p in out.iterdir() if (p / "eval_results.json").exists()):
    e = json.loads((d / "eval_results.json").read_text())
    print(f"| {d.name} | {e['eval_ocnli']:.4f} | {e['eval_ocemotion']:.4f} | {e['eval_tnews']:.4f} | "
          f"{e['eval_avg']:.4f} | {(d / 'wall_s').read_text().strip()} |")
PY
