"""Mistakes found by an adversarial review of the support-matrix and crash-safety work, each through train.py's
main: one line (UsageError) before anything is written, or the behaviour a user expects."""
from __future__ import annotations

import json

import pytest

import train
from helpers import TINY_CONFIG, common
from mtl.errors import UsageError

QUICK = ["--learning_rate", "1e-3", "--eval_strategy", "no", "--max_train_samples", "32"]


def run(tmp, data_dir, out, *extra):
    return train.main([*common(tmp, data_dir, out), "--config_name", str(TINY_CONFIG), *QUICK, *extra])


@pytest.mark.parametrize("flags, message", [
    (["--ema_decay", "1.5"], "--ema_decay 1.5: must be in [0, 1)"),
    (["--train_val_split_ratio", "1"], "--train_val_split_ratio 1.0: must be at least 0 and below 1"),
    (["--num_folds", "3", "--fold", "3"], "--num_folds 3 --fold 3: give K >= 2 folds and a fold 0 <= k < K"),
    (["--max_train_samples", "0"], "--max_train_samples 0: must be at least 1"),
    (["--train_sampling_strategy", "sequential"], "--train_sampling_strategy sequential: use random or group_by_length"),
    (["--resume_from_checkpoint", "true"], "No valid checkpoint found"),
])
def test_refused_at_start_up_with_nothing_written(flags, message, tmp_path, small_data_dir):
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace(")", r"\)")):
        run(tmp_path, small_data_dir, "run", "--do_train", "--max_steps", "2", *flags)
    assert not any(tmp_path.iterdir())


def test_overwrite_output_dir_starts_over_without_the_old_runs_checkpoints(tmp_path, small_data_dir):
    """The old checkpoints outranked the new run's in the rotation, and a later run without the flag resumed from
    the old run's last checkpoint, past its own --max_steps, and saved the old model."""
    run(tmp_path, small_data_dir, "out", "--do_train", "--max_steps", "6", "--save_steps", "3")
    run(tmp_path, small_data_dir, "out", "--do_train", "--max_steps", "2", "--save_steps", "1", "--overwrite_output_dir")
    assert sorted(p.name for p in (tmp_path / "out").glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    run(tmp_path, small_data_dir, "out", "--do_train", "--max_steps", "3", "--save_steps", "1")  # resumes from 2
    assert json.loads((tmp_path / "out" / "trainer_state.json").read_text())["global_step"] == 3


def test_a_missing_head_is_refused_when_not_training(tmp_path, small_data_dir):
    """--do_predict with a task the model has no head for wrote a submission from a head initialised at random."""
    run(tmp_path, small_data_dir, "two", "--do_train", "--max_steps", "2", "--tasks", "ocnli,tnews")
    with pytest.raises(UsageError, match=r"has no head for task\(s\) \['ocemotion'\]"):
        train.main([*common(tmp_path, small_data_dir, "pred"), "--model_name_or_path", str(tmp_path / "two"),
                    "--do_predict"])
    assert not (tmp_path / "pred_pred").exists()


def test_resuming_a_checkpoint_of_other_tasks_is_one_line(tmp_path, small_data_dir):
    run(tmp_path, small_data_dir, "two", "--do_train", "--max_steps", "2", "--save_steps", "2", "--tasks", "ocnli,tnews")
    with pytest.raises(UsageError, match="resume with that run's --tasks"):
        run(tmp_path, small_data_dir, "three", "--do_train", "--max_steps", "4",
            "--resume_from_checkpoint", str(tmp_path / "two" / "checkpoint-2"))
