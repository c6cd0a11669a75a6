#!/usr/bin/env bash
# The GPU section of bench/RESULTS.md (issue 11 part 3): a RoBERTa-large-shaped model in bf16, side by side in one
# run: (a_g) the stock HF recipe with group_by_length, (c) the 2020 recipe in this project, (d) throughput mode, and
# the bare PyTorch loop, torch.compile off and on. MFU = real-token model FLOPs / the device's dense bf16 peak.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python}
"$PY" bench/train_throughput.py --size large --bf16 --steps ${STEPS:-120} --warmup 20 --variants a_g,c,d,bare
"$PY" bench/train_throughput.py --size large --bf16 --compile --steps ${STEPS:-120} --warmup 30 --variants a_g,c,d
"$PY" bench/profile_step.py --size large --steps 20
