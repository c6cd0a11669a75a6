"""The support matrix's GPU cells (docs/support-matrix.md), run for real on a CUDA machine: fp16 with its loss scaler
(with and without PCGrad), bf16 and fp16 evaluation-only runs against the training run's own evaluation,
--bf16_full_eval / --fp16_full_eval, torch.compile with inductor, and, with two or more GPUs, DDP over NCCL and the
refusal of several GPUs in one process. Writes bench/results/gpu_matrix.md (a table: cell, result, numbers).

Each cell is a few dozen steps of the bundled demo encoder on the --debug subset; the whole script is sized to end in
under 8 minutes on one H100/H200 (`bash bench/gpu_matrix.sh`).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRAIN = str(REPO / "code" / "train.py")
MODEL = str(REPO / "code" / "assets" / "demo_encoder")


def run(cmd: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=600)


def common(out: Path, name: str) -> list[str]:
    return ["--debug", "--data_dir", str(REPO / "tcdata"), "--cleaned_dir", str(out / "data"),
            "--data_save_dir", str(out / "data"), "--output_dir", str(out / name), "--prediction_dir",
            str(out / f"pred_{name}"), "--max_seq_length", "128", "--report_to", "none", "--disable_tqdm", "true"]


def train_cell(out: Path, name: str, *flags: str) -> tuple[bool, dict, str]:
    cmd = [sys.executable, TRAIN, "--model_name_or_path", MODEL, "--do_train", "--do_eval", "--max_steps", "40",
           "--per_device_train_batch_size", "32", "--learning_rate", "3e-4", "--logging_steps", "5",
           "--eval_strategy", "no", "--save_strategy", "no", *common(out, name), *flags]
    result = run(cmd)
    if result.returncode != 0:
        return False, {}, result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "exit status != 0"
    state = json.loads((out / name / "trainer_state.json").read_text())
    losses = [h["loss"] for h in state["log_history"] if "loss" in h]
    metrics = json.loads((out / name / "eval_results.json").read_text())
    return all(map(math.isfinite, losses)), {"first loss": losses[0], "last loss": losses[-1], **metrics}, ""


def eval_only(out: Path, trained: str, name: str, *flags: str) -> dict:
    result = run([sys.executable, TRAIN, "--model_name_or_path", str(out / trained), "--do_eval", *common(out, name),
                  *flags])
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return json.loads((out / name / "eval_results.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="/tmp/gpu_matrix")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        sys.exit("gpu_matrix.py: error: no CUDA device is visible; this script runs the GPU cells on a GPU machine")
    gpus = torch.cuda.device_count()
    out = Path(args.out)
    rows: list[tuple[str, str, str]] = []
    one_gpu = {"CUDA_VISIBLE_DEVICES": "0"}
    os.environ.update(one_gpu)  # every cell below runs on one GPU unless it says otherwise
    start = time.time()

    ok, fp32, err = train_cell(out, "fp32")
    rows.append(("fp32 reference (40 steps)", "ok" if ok else f"FAILED {err}", f"loss {fp32.get('first loss', 0):.3f} -> {fp32.get('last loss', 0):.3f}, eval_avg {fp32.get('eval_avg', 0):.4f}"))
    for name, flags in (("fp16", ["--fp16", "true"]), ("fp16 + PCGrad", ["--fp16", "true", "--pcgrad", "true"]),
                        ("fp32 + PCGrad", ["--pcgrad", "true"]), ("bf16", ["--bf16", "true"]),
                        ("bf16 + torch.compile (inductor)", ["--bf16", "true", "--torch_compile", "true",
                                                             "--pad_to_multiple_of", "64"])):
        ok, m, err = train_cell(out, name.replace(" ", "").replace("+", "_").replace(".", "").replace("(", "").replace(")", ""), *flags)
        # A stalled fp16 run (gradients divided by the loss scale) keeps its first loss; a working one learns as fp32.
        learned = ok and m["last loss"] < m["first loss"] - 0.05
        rows.append((name, "ok" if learned else (f"FAILED {err}" if not ok else "FAILED: did not learn"),
                     f"loss {m.get('first loss', 0):.3f} -> {m.get('last loss', 0):.3f}, eval_avg {m.get('eval_avg', 0):.4f}" if m else ""))

    for precision in ("bf16", "fp16"):
        trained = precision
        own = json.loads((out / trained / "eval_results.json").read_text()) if (out / trained).exists() else None
        if own is None:
            rows.append((f"{precision} evaluation-only", "not run (training failed)", ""))
            continue
        again = eval_only(out, trained, f"{precision}_eval_only", f"--{precision}", "true")
        same = abs(again["eval_loss"] - own["eval_loss"]) < 1e-5 and abs(again["eval_avg"] - own["eval_avg"]) < 1e-6
        rows.append((f"{precision} evaluation-only = the training run's evaluation", "ok" if same else "FAILED",
                     f"eval_loss {again['eval_loss']:.6f} vs {own['eval_loss']:.6f}"))
        full = eval_only(out, trained, f"{precision}_full_eval", f"--{precision}_full_eval", "true")
        close = abs(full["eval_avg"] - own["eval_avg"]) < 0.02
        rows.append((f"--{precision}_full_eval evaluation-only", "ok" if close else "FAILED",
                     f"eval_avg {full['eval_avg']:.4f} vs {own['eval_avg']:.4f} (autocast)"))

    if gpus >= 2:
        two = {"CUDA_VISIBLE_DEVICES": "0,1"}
        refused = run([sys.executable, TRAIN, "--model_name_or_path", MODEL, "--do_train", *common(out, "dp")], env=two)
        line = refused.stderr.strip().splitlines()[-1] if refused.stderr.strip() else ""
        rows.append(("2 GPUs in one process (DataParallel)", "ok (refused)" if refused.returncode == 1 and
                     "torchrun --nproc_per_node 2" in line else "FAILED", line[:120]))
        ddp = run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", TRAIN,
                   "--model_name_or_path", MODEL, "--do_train", "--do_eval", "--num_train_epochs", "1", "--bf16", "true",
                   "--eval_strategy", "no", "--save_strategy", "no", *common(out, "nccl")], env=two)
        rows.append(("DDP over NCCL, 2 GPUs, bf16, one epoch", "ok" if ddp.returncode == 0 else "FAILED",
                     ddp.stderr.strip().splitlines()[-1][:120] if ddp.returncode else ""))
    else:
        rows.append(("2 GPUs: DataParallel refusal, DDP over NCCL", f"not run ({gpus} GPU visible)", ""))

    table = ["| cell | result | numbers |", "|---|---|---|"] + [f"| {a} | {b} | {c} |" for a, b, c in rows]
    text = (f"### GPU cells of the support matrix\n\n{torch.cuda.get_device_name(0)}, {gpus} GPU(s), torch "
            f"{torch.__version__}; `bash bench/gpu_matrix.sh`, {time.time() - start:.0f} s.\n\n" + "\n".join(table) + "\n")
    target = REPO / "bench" / "results" / "gpu_matrix.md"
    target.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
