#!/usr/bin/env bash
# One process against two (torchrun, gloo) on this CPU: the demo-size BERT (random init), the --debug subset
# (1000 rows per file), one whole epoch at the same per-device batch, then a one-process evaluation and
# prediction of the two-process model to compare with the run's own. Prints the numbers bench/RESULTS.md quotes.
# Usage: bash bench/ddp_cpu.sh [OUT_DIR]   (PYTHON defaults to .venv/bin/python)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-.venv/bin/python}
OUT=${1:-/tmp/bench_ddp_cpu}
rm -rf "$OUT"; mkdir -p "$OUT"
common=(--config_name code/assets/configs/demo.json --debug --max_seq_length 128 --per_device_train_batch_size 32
        --learning_rate 3e-4 --num_train_epochs 1 --eval_strategy epoch --save_strategy epoch
        --train_sampling_strategy group_by_length --data_save_dir "$OUT/cache" --cleaned_dir "$OUT/cache"
        --report_to none --disable_tqdm true)
"$PYTHON" code/preprocess.py --debug --max_seq_length 128 --data_save_dir "$OUT/cache" --cleaned_dir "$OUT/cache" >/dev/null 2>&1
for n in 1 2; do
  start=$(date +%s.%N)
  if [ "$n" = 1 ]; then
    "$PYTHON" code/train.py "${common[@]}" --do_train --do_eval --do_predict --output_dir "$OUT/np1" \
      --prediction_dir "$OUT/pred_np1" > "$OUT/np1.log" 2>&1
  else
    OMP_NUM_THREADS=1 "$PYTHON" -m torch.distributed.run --standalone --nproc_per_node 2 code/train.py "${common[@]}" \
      --do_train --do_eval --do_predict --output_dir "$OUT/np2" --prediction_dir "$OUT/pred_np2" > "$OUT/np2.log" 2>&1
  fi
  end=$(date +%s.%N)
  "$PYTHON" - "$OUT/np$n" "$start" "$end" "$n" <<'PY'
import json, sys
out, start, end, n = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
state = json.load(open(f"{out}/trainer_state.json")); train = json.load(open(f"{out}/train_results.json"))
ev = json.load(open(f"{out}/eval_results.json"))
print(f"processes={n} steps_per_epoch={state['global_step']} wall_s={end - start:.1f} "
      f"train_runtime_s={train['train_runtime']:.1f} train_samples_per_s={train['train_samples_per_second']:.1f} "
      f"eval_avg={ev['eval_avg']:.4f}")
PY
done
"$PYTHON" code/train.py "${common[@]}" --model_name_or_path "$OUT/np2" --do_eval --do_predict --output_dir "$OUT/np2_eval1" \
  --prediction_dir "$OUT/pred_np2_eval1" > "$OUT/np2_eval1.log" 2>&1
"$PYTHON" - "$OUT" <<'PY'
import filecmp, json, sys
out = sys.argv[1]
a, b = json.load(open(f"{out}/np2/eval_results.json")), json.load(open(f"{out}/np2_eval1/eval_results.json"))
keys = [k for k in a if k.startswith("eval_") and not k.endswith(("runtime", "per_second"))]
same = all(a[k] == b[k] for k in keys)
files = all(filecmp.cmp(f"{out}/pred_np2/{t}_predict.json", f"{out}/pred_np2_eval1/{t}_predict.json", shallow=False)
            for t in ("ocnli", "ocemotion", "tnews"))
print(f"two-process metrics == one-process evaluation of its model: {same} ({', '.join(keys)}); "
      f"prediction files byte-identical: {files}")
PY
