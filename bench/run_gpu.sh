#!/usr/bin/env bash
# The GPU section of bench/RESULTS.md: a RoBERTa-large-shaped model in bf16, variants (a)/(b)/(c), torch.compile off and on.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python}
"$PY" bench/train_throughput.py --size large --bf16 --steps ${STEPS:-120} --warmup 20
"$PY" bench/train_throughput.py --size large --bf16 --compile --steps ${STEPS:-120} --warmup 30 --variants b,c
