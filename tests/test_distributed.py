"""Two processes over gloo on this CPU, launched as users launch them: torchrun running the real train.py.

One data-parallel run (about half the optimizer steps of one process), evaluation and prediction sharded by whole
task batches and gathered back in file order (metrics and files equal to a one-process run of the same model),
files written by the main process only, and resuming under two processes continuing to the uninterrupted result.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import train
from helpers import REPO_ROOT, TINY_CONFIG, common, run_torchrun
from mtl.data import MultiTaskBatchSampler
from mtl.tasks import TASKS

pytestmark = pytest.mark.slow  # end-to-end runs of the CLIs (torchrun / run.sh)

TRAIN_ROWS = 270  # per task in small_data_dir, after the 10% validation split
AUDIT = REPO_ROOT / "tests" / "write_audit"  # its sitecustomize records every file each process writes


def torchrun(args: list[str], audit_dir: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if audit_dir is not None:
        env.update(WRITE_AUDIT_DIR=str(audit_dir), PYTHONPATH=os.pathsep.join([str(AUDIT), env.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(REPO_ROOT / "code" / "train.py"), *args]
    result = run_torchrun(cmd, env)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result


def run_args(tmp: Path, data_dir: Path, out: str) -> list[str]:
    # evaluation and saving at steps 20 and 40 (one inside each epoch of 27 steps) and at the end (54)
    return ["--config_name", str(TINY_CONFIG), "--do_train", "--do_eval", "--num_train_epochs", "2",
            "--save_total_limit", "3",
            "--learning_rate", "1e-3", "--ema_decay", "0.9", "--train_sampling_strategy", "group_by_length",
            # the multi-task strategies must mean the same in N processes (the resume test compares runs with them)
            "--task_sampling", "temperature", "--task_sampling_temperature", "2",
            "--task_loss_weights", "ocemotion=1.5,tnews=1.5",
            # sharded evaluation and prediction must apply the logit adjustment as one process does
            "--logit_adjustment", "1",
            *common(tmp, data_dir, out)]


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory, small_data_dir):
    tmp = tmp_path_factory.mktemp("ddp")
    (tmp / "audit").mkdir()
    result = torchrun(run_args(tmp, small_data_dir, "ddp") + ["--do_predict", "--pseudo_threshold", "0"],
                      audit_dir=tmp / "audit")
    return tmp, result


def test_two_processes_are_one_run_with_half_the_steps(two_process_run):
    tmp, _ = two_process_run
    state = json.loads((tmp / "ddp" / "trainer_state.json").read_text())
    one = len(MultiTaskBatchSampler([TRAIN_ROWS] * 3, 16))
    two = len(MultiTaskBatchSampler([TRAIN_ROWS] * 3, 16, num_replicas=2))
    assert (one, two) == (51, 27)
    assert state["global_step"] == 2 * two  # two epochs
    assert [e["step"] for e in state["log_history"] if "eval_avg" in e] == [20, 40, 54]
    # per-task losses are reduced over both processes at each log
    assert all({"loss_ocnli", "loss_ocemotion", "loss_tnews"} <= set(e) for e in state["log_history"] if "loss" in e)


def test_sharded_evaluation_and_prediction_equal_one_process_of_the_same_model(two_process_run, small_data_dir):
    tmp, _ = two_process_run
    metrics = train.main(["--model_name_or_path", str(tmp / "ddp"), "--do_eval", "--do_predict",
                          "--pseudo_threshold", "0", *common(tmp, small_data_dir, "single")])
    sharded = json.loads((tmp / "ddp" / "eval_results.json").read_text())
    for key in ("eval_ocnli", "eval_ocemotion", "eval_tnews", "eval_avg", "eval_loss"):
        assert sharded[key] == pytest.approx(metrics[key], rel=0, abs=1e-9), key
    for task in TASKS.values():
        name = f"{task.name}_predict.json"
        assert (tmp / "pred_ddp" / name).read_bytes() == (tmp / "pred_single" / name).read_bytes()
        pseudo = f"pseudo/{task.file_prefix}_pseudo.csv"
        assert (tmp / "ddp" / pseudo).read_bytes() == (tmp / "single" / pseudo).read_bytes()
        assert len((tmp / "pred_ddp" / name).read_text().splitlines()) == 1500  # every test row, once


def test_only_the_main_process_writes_files(two_process_run):
    tmp, _ = two_process_run
    writes = {}
    for log in (tmp / "audit").glob("rank*.txt"):
        writes.setdefault(log.name.split(".")[0], set()).update(log.read_text().split())
    # the other rank writes only its own RNG state into each checkpoint (the Trainer's per-process resume state)
    assert writes["rank1"] and all(Path(p).name == "rng_state_1.pth" for p in writes["rank1"])
    main = writes["rank0"]
    for expected in (tmp / "pred_ddp" / "submit.zip", tmp / "ddp" / "model.safetensors",
                     tmp / "ddp" / "pseudo" / "TNEWS_pseudo.csv", tmp / "cache_ddp" / "ocnli_processed" / "train.pt"):
        assert str(expected) in main


def test_resuming_under_two_processes_continues_to_the_uninterrupted_result(two_process_run, small_data_dir):
    """Resumed inside the first epoch: the rest of that epoch is skipped to, then the second epoch reshuffles."""
    tmp, _ = two_process_run
    torchrun(run_args(tmp, small_data_dir, "resumed") + ["--resume_from_checkpoint", str(tmp / "ddp" / "checkpoint-20")])
    whole, resumed = load_file(tmp / "ddp" / "model.safetensors"), load_file(tmp / "resumed" / "model.safetensors")
    assert whole.keys() == resumed.keys()
    for k in whole:
        torch.testing.assert_close(resumed[k], whole[k], rtol=0, atol=1e-6)


def test_pcgrad_under_two_processes_keeps_every_process_identical(tmp_path, small_data_dir):
    """PCGrad bypasses DDP's reducer (the surgery needs each task's gradient apart), so it averages the gradients
    itself: if it did not, the processes' weights would drift apart and the end-of-training EMA check would fail."""
    torchrun(["--config_name", str(TINY_CONFIG), "--do_train", "--max_steps", "8", "--pcgrad", "true",
              "--learning_rate", "1e-3", "--ema_decay", "0.9", "--eval_strategy", "no",
              "--load_best_model_at_end", "false", *common(tmp_path, small_data_dir, "pcgrad")])
    state = json.loads((tmp_path / "pcgrad" / "trainer_state.json").read_text())
    assert state["global_step"] == 8  # and torchrun() asserted exit status 0: the EMA check passed on both
