"""Issue 21, "survive every kill": train.py SIGKILLed around its checkpoint and final-model writes, as a preemption
would, then the same command again, ends with the uninterrupted run's model, bit for bit, at exactly max_steps.

Eleven moments in one output directory: every rerun resumes from what the previous kill left and is itself killed
at the next moment, later in training than the last; the last rerun runs to its end. A wrong resume anywhere in
the chain (a crash, the EMA taken for the training weights, a step past max_steps) shows in that end (each
launch costs ~10 s, mostly imports: ten reruns each run to their end would double the test's time). The moments are found by polling the directory (a file or folder whose mtime is newer than the launch), as a
user's preemption would strike, and the process is SIGKILLed 0-20 ms later."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import REPO_ROOT, TINY_CONFIG, common

pytestmark = pytest.mark.slow

MAX_STEPS = 40


def command(tmp: Path, data_dir: Path, out: str) -> list[str]:
    # save every 5 steps (keeping 2), evaluate every 10; the final model is the EMA of the last step (not the best
    # checkpoint's, which would hide whatever went wrong after the best one)
    return [sys.executable, str(REPO_ROOT / "code" / "train.py"), "--config_name", str(TINY_CONFIG), "--do_train",
            "--max_steps", str(MAX_STEPS), "--learning_rate", "1e-3", "--ema_decay", "0.9",
            *common(tmp, data_dir, out, save_steps=5), "--eval_steps", "10", "--save_total_limit", "2",
            "--load_best_model_at_end", "false"]


def launch(cmd: list[str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as f:
        f.write(f"\n==== {time.strftime('%H:%M:%S')} launch\n".encode())
        f.flush()
        return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def appeared(path: Path, since_ns: int) -> bool:
    try:
        return path.stat().st_mtime_ns >= since_ns
    except FileNotFoundError:
        return False


def kill_when(proc: subprocess.Popen, path: Path, delay_s: float, since_ns: int, log: Path, timeout_s: float = 240):
    """SIGKILL `proc` `delay_s` after `path` appears (or is rewritten); fails if the process ends first."""
    deadline = time.monotonic() + timeout_s
    while not appeared(path, since_ns):
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}) before {path} appeared; log:\n"
                        + log.read_text()[-3000:])
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{path} did not appear in {timeout_s} s")
        time.sleep(0.0005)
    if delay_s:
        time.sleep(delay_s)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, f"the run ended by itself before the kill at {path}"


def final_model(out: Path) -> tuple[bytes, int]:
    """The final model and the last checkpoint's raw training weights, bytes; global_step."""
    state = json.loads((out / "trainer_state.json").read_text())
    weights = out / f"checkpoint-{MAX_STEPS}" / "training_weights.safetensors"
    raw = weights.read_bytes() if weights.exists() else b"no training weights"
    return (out / "model.safetensors").read_bytes() + raw, state["global_step"]


def run_chain(cmd: list[str], out: Path, log: Path, moments: list[tuple[Path, float]]) -> tuple[bytes, int]:
    """Kill at each moment in turn (each launch is the rerun of the previous kill), then run to the end."""
    for path, delay in moments:
        kill_when(launch(cmd, log), path, delay, time.time_ns(), log)
    assert launch(cmd, log).wait() == 0, log.read_text()[-3000:]
    return final_model(out)


def test_a_rerun_after_a_kill_at_any_moment_ends_with_the_uninterrupted_model(tmp_path, small_data_dir):
    # The reference runs beside the kills (a second process; 12 launches in all, ~10 s each, mostly imports).
    reference = launch(command(tmp_path, small_data_dir, "reference"), tmp_path / "reference.log")

    def moments(out: Path) -> list[tuple[Path, float]]:
        def step(n: int, name: str = "") -> Path:
            return out / f"checkpoint-{n}" / name

        # (what appears, then the kill after this many seconds), in the order training reaches them; no two at
        # the same step, so a kill that lands late (the poller not scheduled at once) only moves the chain on
        return [
            (step(5), 0.0),  # a checkpoint folder just made: nothing complete yet, the rerun starts over
            (step(10, "trainer_state.json"), 0.0),  # the Trainer's files written, not yet our raw training weights
            (step(15, "model.safetensors"), 0.0),  # inside the model write
            (step(20), 0.01),  # 10 ms into a checkpoint
            (step(25, "training_weights.safetensors"), 0.0),  # every file but the marker (rotation not yet run)
            (step(30, "checkpoint_complete.json"), 0.0),  # just complete, rotation ahead: the rerun resumes from it
            (step(35, "optimizer.pt"), 0.0),  # inside the optimizer write
            (step(40, "checkpoint_complete.json"), 0.0),  # the last checkpoint complete; rotation, final save ahead
            (out / ".final-model.tmp" / "model.safetensors", 0.0),  # the final model being written
            (out / "model.safetensors", 0.0),  # the final model moved into place, metrics and state not yet
            (out / "train_results.json", 0.02),  # the metrics written, 20 ms later
        ]

    out, log = tmp_path / "killed", tmp_path / "killed.log"
    model, global_step = run_chain(command(tmp_path, small_data_dir, "killed"), out, log, moments(out))
    assert reference.wait() == 0, (tmp_path / "reference.log").read_text()[-3000:]
    expected, steps = final_model(tmp_path / "reference")
    assert steps == MAX_STEPS
    # the first rerun said what it passed over (the later kills' checkpoints may, on a fast disk, be complete)
    assert "skipping incomplete checkpoint(s) checkpoint-5 " in log.read_text()
    assert global_step == MAX_STEPS
    assert model == expected, "the final model differs from the uninterrupted run's"
