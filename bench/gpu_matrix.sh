#!/usr/bin/env bash
# The support matrix's GPU cells (docs/support-matrix.md): fp16 with its scaler (PCGrad too), bf16/fp16
# evaluation-only and *_full_eval, torch.compile (inductor), and with 2+ GPUs DataParallel's refusal and DDP over
# NCCL. Under 8 minutes on one H100/H200; writes bench/results/gpu_matrix.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
"${PYTHON:-python}" bench/gpu_matrix.py "$@"
