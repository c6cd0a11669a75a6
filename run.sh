#!/usr/bin/env bash
# End to end: preprocess -> (PRETRAIN_EPOCHS: MLM pretraining) -> stage 1 -> stage 2 -> test B prediction -> prediction_result/.
# Every setting is an environment variable; docs/training.md ("run.sh settings") lists them. Examples:
#   bash run.sh                                   # auto: baseline on a CUDA machine with the model reachable, else demo
#   PROFILE=baseline MODEL=/models/chinese-roberta-wwm-ext-large bash run.sh
#   PROFILE=demo STAGE1_EPOCHS=1 OUTPUT_DIR=/tmp/run bash run.sh
#   PRETRAIN_EPOCHS=0.3 bash run.sh               # demo with an encoder pretrained from scratch instead of the bundled one
#   NPROC=4 bash run.sh                           # data-parallel over 4 processes (default: one per GPU; gloo on a CPU machine)
#   FOLDS=5 bash run.sh                           # 5 fold models (stages 1 and 2 each), their ensemble's test B submission
#   BF16=0 bash run.sh                            # fp32 (default auto: the demo in bf16 on a CPU with native bf16)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

PYTHON=${PYTHON:-python}
OUTPUT_DIR=${OUTPUT_DIR:-user_data}
PREDICTION_DIR=${PREDICTION_DIR:-prediction_result}
DATA_DIR=${DATA_DIR:-tcdata}
EXTRA_ARGS=${EXTRA_ARGS:-}   # appended to both training stages, after run.sh's own flags, e.g. "--report_to tensorboard"
FOLDS=${FOLDS:-}  # K >= 2: K-fold training (--num_folds K --fold k) into $OUTPUT_DIR/fold{k}/, then code/ensemble.py
ENSEMBLE_WEIGHTS=${ENSEMBLE_WEIGHTS:-equal}  # with FOLDS: equal, or oof (each fold weighted by its validation score)
if [ -n "$FOLDS" ] && ! { [[ "$FOLDS" =~ ^[0-9]+$ ]] && [ "$FOLDS" -ge 2 ]; }; then
  echo "run.sh: error: FOLDS=$FOLDS: give a number of folds of 2 or more (or leave FOLDS unset for one model)" >&2
  exit 1
fi
# Processes per node for training and prediction (torchrun): by default one per visible GPU (train.py refuses
# several GPUs in one process, which would be nn.DataParallel), 1 without CUDA. Each process takes the profile's
# per-device batch, so N GPUs train with N times the global batch.
NPROC=${NPROC:-$("$PYTHON" -c "import torch; print(max(1, torch.cuda.device_count()))")}
TORCHRUN_ARGS=${TORCHRUN_ARGS:---standalone}  # multi-node: "--nnodes 2 --node_rank R --rdzv_backend c10d --rdzv_endpoint HOST:PORT"
if [ "$NPROC" -gt 1 ]; then
  # shellcheck disable=SC2206
  train=("$PYTHON" -m torch.distributed.run $TORCHRUN_ARGS --nproc_per_node "$NPROC" code/train.py)
else
  train=("$PYTHON" code/train.py)
fi
start=$SECONDS

# The profile, and its precision: BF16=auto (default) trains the demo in bf16 autocast on a CPU with native bf16
# (AVX512-BF16, AMX), 1.2x faster at the same scores; BF16=1 / BF16=0 force --bf16 true / false in both stages.
choice=$(PROFILE=${PROFILE:-auto} BF16=${BF16:-auto} BASELINE_MODEL=${MODEL:-hfl/chinese-roberta-wwm-ext-large} \
    "$PYTHON" code/choose_profile.py)
IFS=$'\t' read -r profile reason bf16 <<< "$choice"
precision=(${bf16:+--bf16 "$bf16"})
echo "run.sh: profile '$profile': $reason"

# The profile's hyperparameters live in JSON argument files that train.py reads (flags after them override).
PROFILE_DIR=${PROFILE_DIR:-code/assets/profiles}
STAGE1_ARGS=$PROFILE_DIR/${profile}_stage1.json
STAGE2_ARGS=$PROFILE_DIR/${profile}_stage2.json
case "$profile" in
  demo)
    # By default the demo fine-tunes the bundled encoder (code/assets/demo_encoder/: hidden 256 x 4 layers, MLM-pretrained
    # on the bundled task texts by code/pretrain.py; its README.md has the command). PRETRAIN_EPOCHS=N pretrains one
    # from scratch instead (DEMO_CONFIG's size, N epochs, into $OUTPUT_DIR/demo_model), as run.sh did before.
    if [ -n "${PRETRAIN_EPOCHS:-}" ]; then
      MODEL=${MODEL:-$OUTPUT_DIR/demo_model}
      DEMO_CONFIG=${DEMO_CONFIG:-code/assets/configs/demo.json}
    else
      MODEL=${MODEL:-code/assets/demo_encoder}
    fi
    ;;
  baseline)
    MODEL=${MODEL:-hfl/chinese-roberta-wwm-ext-large}
    ;;
esac
# Settings given in the environment override the profile files.
stage1=(${STAGE1_EPOCHS:+--num_train_epochs "$STAGE1_EPOCHS"})
stage2=(${STAGE2_EPOCHS:+--num_train_epochs "$STAGE2_EPOCHS"})
# --test_b everywhere: the one cache that preprocessing builds and both stages read holds test B, which stage 2's
# final model predicts
data=(--data_dir "$DATA_DIR" --data_save_dir "$OUTPUT_DIR" --cleaned_dir "$OUTPUT_DIR" --test_b
      ${MAX_SEQ_LENGTH:+--max_seq_length "$MAX_SEQ_LENGTH"})

if [ -n "$FOLDS" ]; then
  # each fold has caches of its own ($OUTPUT_DIR/fold{k}/: a later --data_save_dir overrides data's)
  echo "run.sh: [1/5] preprocess: each fold's stage 1 builds its caches"
else
  echo "run.sh: [1/5] preprocess"
  "$PYTHON" code/preprocess.py "$STAGE1_ARGS" "${data[@]}"  # the profile's data arguments (max_seq_length)
fi

if [ "$profile" = demo ] && [ -n "${PRETRAIN_EPOCHS:-}" ]; then
  if [ -f "$MODEL/model.safetensors" ]; then
    echo "run.sh: [2/5] reusing the pretrained demo model $MODEL"
  else
    echo "run.sh: [2/5] pretraining the demo model from scratch (MLM, whole-word masking, $PRETRAIN_EPOCHS epochs) -> $MODEL"
    "$PYTHON" code/pretrain.py --config_name "$DEMO_CONFIG" --data_dir "$DATA_DIR" \
      --output_dir "$MODEL" --num_train_epochs "$PRETRAIN_EPOCHS" --train_sampling_strategy group_by_length
  fi
else
  echo "run.sh: [2/5] $profile: fine-tuning the pretrained encoder $MODEL"
fi

if [ -n "$FOLDS" ]; then
  for ((k = 0; k < FOLDS; k++)); do
    dir=$OUTPUT_DIR/fold$k
    fold=(--num_folds "$FOLDS" --fold "$k" --data_save_dir "$dir")
    echo "run.sh: [3/5] fold $k of $FOLDS, stage 1: full fine-tuning -> $dir/stage1"
    # shellcheck disable=SC2086
    "${train[@]}" "$STAGE1_ARGS" --model_name_or_path "$MODEL" "${data[@]}" "${fold[@]}" --output_dir "$dir/stage1" \
      --do_train --do_eval "${stage1[@]}" "${precision[@]}" $EXTRA_ARGS
    # The final model's out-of-fold predictions (--do_eval) and test B probabilities (--do_predict) in its own folder,
    # where code/ensemble.py finds both.
    echo "run.sh: [4/5] fold $k of $FOLDS, stage 2: encoder frozen, heads trained; test B -> $dir/stage2"
    # shellcheck disable=SC2086
    "${train[@]}" "$STAGE2_ARGS" --model_name_or_path "$dir/stage1" "${data[@]}" "${fold[@]}" \
      --output_dir "$dir/stage2" --do_train --do_eval "${stage2[@]}" "${precision[@]}" $EXTRA_ARGS \
      --do_predict --prediction_dir "$dir/stage2"
  done
  echo "run.sh: [5/5] the $FOLDS fold models' ensemble ($ENSEMBLE_WEIGHTS weights) -> $PREDICTION_DIR"
  fold_dirs=()
  for ((k = 0; k < FOLDS; k++)); do fold_dirs+=("$OUTPUT_DIR/fold$k/stage2"); done
  scores=$("$PYTHON" code/ensemble.py "${fold_dirs[@]}" --output_dir "$PREDICTION_DIR" --weights "$ENSEMBLE_WEIGHTS")
  echo
  echo "run.sh: done in $((SECONDS - start)) s, profile '$profile', $FOLDS folds, $NPROC process(es). Each fold's score on its"
  echo "        validation fold, and the ensemble's out-of-fold score (every train row scored by the fold that held it out):"
  echo "$scores"
  echo "run.sh: wrote $PREDICTION_DIR/{ocnli,ocemotion,tnews}_predict.json, $PREDICTION_DIR/submit.zip (the ensemble's),"
  echo "        fold models in $OUTPUT_DIR/fold{0..$((FOLDS - 1))}/stage{1,2}, their out-of-fold predictions in .../stage2/oof"
  exit 0
fi

echo "run.sh: [3/5] stage 1: full fine-tuning"
# shellcheck disable=SC2086
"${train[@]}" "$STAGE1_ARGS" --model_name_or_path "$MODEL" "${data[@]}" --output_dir "$OUTPUT_DIR/stage1" \
  --do_train --do_eval "${stage1[@]}" "${precision[@]}" $EXTRA_ARGS

echo "run.sh: [4/5] stage 2: encoder frozen, heads trained"
echo "run.sh: [5/5] (in stage 2's process) test B prediction with the final model"
# train.py's standard output ends with the final model's scores table (3 lines), printed again at the end
# shellcheck disable=SC2086
"${train[@]}" "$STAGE2_ARGS" --model_name_or_path "$OUTPUT_DIR/stage1" "${data[@]}" \
  --output_dir "$OUTPUT_DIR/stage2" --do_train --do_eval "${stage2[@]}" "${precision[@]}" $EXTRA_ARGS \
  --do_predict --prediction_dir "$PREDICTION_DIR" | tee "$OUTPUT_DIR/stage2.stdout"
scores=$(tail -n 3 "$OUTPUT_DIR/stage2.stdout")

echo
echo "run.sh: done in $((SECONDS - start)) s, profile '$profile', $NPROC process(es). Validation scores of the final model:"
echo "$scores"
echo "run.sh: wrote $PREDICTION_DIR/{ocnli,ocemotion,tnews}_predict.json, $PREDICTION_DIR/submit.zip,"
echo "        models in $OUTPUT_DIR/stage1 and $OUTPUT_DIR/stage2, pseudo-labels in $OUTPUT_DIR/stage2/pseudo"
echo "        curves (loss, scores at each evaluation): $OUTPUT_DIR/stage1/curves.png, $OUTPUT_DIR/stage2/curves.png"
