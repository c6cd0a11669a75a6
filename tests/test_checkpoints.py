"""Crash-safe checkpoints (mtl/checkpoints.py): what counts as complete, resume's choice, rotation, a full disk, and
kills simulated in-process at exact points of a save (tests/test_kill_resume.py kills the real CLI)."""
from __future__ import annotations

import errno
import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import train
from helpers import TINY_CONFIG, common
from mtl import checkpoints
from mtl.args import MultiTaskTrainingArguments
from mtl.errors import UsageError
from mtl.trainer import MultiTaskTrainer


def fake_checkpoint(root: Path, step: int, complete: bool = True) -> Path:
    folder = root / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text("{}")
    if complete:
        checkpoints.mark_complete(folder)
    return folder


def test_only_marked_checkpoints_with_their_files_whole_count(tmp_path, caplog):
    for step, complete in ((5, True), (10, True), (15, False), (20, False)):
        fake_checkpoint(tmp_path, step, complete)
    (tmp_path / "checkpoint-x").mkdir()
    complete, incomplete = checkpoints.find_checkpoints(tmp_path)
    assert [Path(p).name for p in complete] == ["checkpoint-5", "checkpoint-10"]
    assert [Path(p).name for p in incomplete] == ["checkpoint-15", "checkpoint-20"]
    with caplog.at_level(logging.WARNING, logger="mtl.checkpoints"):
        assert checkpoints.newest_complete(tmp_path) == str(tmp_path / "checkpoint-10")
    assert "skipping incomplete checkpoint(s) checkpoint-15, checkpoint-20" in caplog.text
    (tmp_path / "checkpoint-10" / "trainer_state.json").write_text("{")  # a file cut short after marking
    assert not checkpoints.is_complete(tmp_path / "checkpoint-10")
    (tmp_path / "checkpoint-15" / checkpoints.MARKER_NAME).touch()  # vouched for by hand (an older version's)
    assert checkpoints.is_complete(tmp_path / "checkpoint-15")
    assert checkpoints.newest_complete(tmp_path / "missing") is None


def test_resume_true_and_an_explicit_incomplete_path(tmp_path):
    with pytest.raises(ValueError, match="No valid checkpoint"):
        checkpoints.resolve_resume(True, str(tmp_path))
    fake_checkpoint(tmp_path, 5)
    fake_checkpoint(tmp_path, 10, complete=False)
    assert checkpoints.resolve_resume(True, str(tmp_path)) == str(tmp_path / "checkpoint-5")
    assert checkpoints.resolve_resume(False, str(tmp_path)) is None
    with pytest.raises(UsageError, match=r"checkpoint-10: the checkpoint is incomplete .* the newest complete one is "
                                         r".*checkpoint-5") as err:
        checkpoints.resolve_resume(str(tmp_path / "checkpoint-10"), str(tmp_path))
    assert "\n" not in str(err.value)
    with pytest.raises(UsageError, match="no such checkpoint directory"):
        checkpoints.resolve_resume(str(tmp_path / "checkpoint-99"), str(tmp_path))


def test_resume_rule_of_train_py_skips_incomplete_checkpoints(tmp_path):
    def args(**kw):
        return MultiTaskTrainingArguments(output_dir=str(tmp_path), report_to="none", do_train=True, **kw)

    fake_checkpoint(tmp_path, 5)
    fake_checkpoint(tmp_path, 40, complete=False)
    assert train.checkpoint_to_resume(args()) == str(tmp_path / "checkpoint-5")


def test_rotation_keeps_the_newest_complete_and_the_best(tmp_path):
    for step, complete in ((5, True), (10, False), (15, True), (20, True), (25, False)):
        fake_checkpoint(tmp_path, step, complete)
    checkpoints.rotate(tmp_path, 1, keep=str(tmp_path / "checkpoint-5"))
    # the best (5) and the newest complete (20) stay; 25 may be being written; 10 and 15 go
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-20", "checkpoint-25", "checkpoint-5"]


# ---- real (tiny, in-process) runs: 4 steps, a checkpoint every 2 --------------------------------------------------
class Killed(BaseException):
    """A kill at an exact point of a save (BaseException: nothing in the code under test catches it)."""


def run_args(tmp: Path, data_dir: Path, out: str, *extra: str) -> list[str]:
    return ["--config_name", str(TINY_CONFIG), "--do_train", "--max_steps", "4", "--learning_rate", "1e-3",
            "--ema_decay", "0.8", "--eval_strategy", "no", "--load_best_model_at_end", "false",
            *common(tmp, data_dir, out, save_steps=2), *extra]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, small_data_dir) -> Path:
    tmp = tmp_path_factory.mktemp("reference")
    train.main(run_args(tmp, small_data_dir, "reference"))
    return tmp / "reference"


def assert_same_final_model(out: Path, reference: Path) -> None:
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 4
    expected, got = load_file(reference / "model.safetensors"), load_file(out / "model.safetensors")
    assert expected.keys() == got.keys() and all(torch.equal(got[k], expected[k]) for k in expected)


def kill_at(monkeypatch, target, name: str, when) -> None:
    """Replace target.name by a function that raises Killed when `when(*args)` is true, else calls the original."""
    original = getattr(target, name)

    def killing(*args, **kwargs):
        if when(*args):
            raise Killed(name)
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, killing)


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["training_weights", "marker", "final_model"])
def test_a_kill_inside_a_save_then_the_same_command_gives_the_uninterrupted_model(
        moment, tmp_path, small_data_dir, reference, monkeypatch):
    """training_weights: the Trainer's files of checkpoint-4 written, ours not (the rerun must not take checkpoint-4,
    whose model is the EMA); marker: every file written, the marker not (both: checkpoint-2 must survive); final_model: checkpoint-4 complete, the
    final model not written (the rerun starts at max_steps and must not train a step more)."""
    import mtl.ema

    if moment == "training_weights":
        kill_at(monkeypatch, mtl.ema, "save_file", lambda state, path: "checkpoint-4" in str(path))
    elif moment == "marker":
        kill_at(monkeypatch, checkpoints, "mark_complete", lambda folder: str(folder).endswith("checkpoint-4"))
    else:
        kill_at(monkeypatch, MultiTaskTrainer, "save_model", lambda self, path=None, *a: checkpoints.STAGING_NAME in str(path))
    # --save_total_limit 1: the previous complete checkpoint must survive until the new one is complete (the
    # Trainer's own rotation runs before our raw training weights and the marker are written)
    args = run_args(tmp_path, small_data_dir, "killed", "--save_total_limit", "1")
    with pytest.raises(Killed):
        train.main(args)
    assert checkpoints.is_complete(tmp_path / "killed" / "checkpoint-4") == (moment == "final_model")
    if moment != "final_model":
        assert checkpoints.newest_complete(tmp_path / "killed") == str(tmp_path / "killed" / "checkpoint-2")
    assert not (tmp_path / "killed" / "model.safetensors").exists()
    monkeypatch.undo()
    train.main(args)
    assert_same_final_model(tmp_path / "killed", reference)
    if moment == "final_model":  # and once more, on a finished run: still not a step more
        train.main(args)
        assert_same_final_model(tmp_path / "killed", reference)


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def torch_disk_full(*args, **kwargs):
    raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 1024 vs 512")


@pytest.mark.parametrize("where", ["training_weights", "optimizer", "final_model"])
def test_a_full_disk_is_one_line_naming_the_folder_and_the_space_needed(where, tmp_path, small_data_dir, monkeypatch):
    import mtl.ema

    if where == "training_weights":
        original = mtl.ema.save_file
        monkeypatch.setattr(mtl.ema, "save_file", lambda state, path: enospc() if "checkpoint-4" in str(path)
                            else original(state, path))
        folder = "checkpoint-4"
    elif where == "optimizer":
        original = torch.save
        monkeypatch.setattr(torch, "save", lambda obj, path, *a, **k: torch_disk_full()
                            if str(path).endswith("checkpoint-4/optimizer.pt") else original(obj, path, *a, **k))
        folder = "checkpoint-4"
    else:
        original = MultiTaskTrainer.save_model
        monkeypatch.setattr(MultiTaskTrainer, "save_model", lambda self, path=None, *a, **k: enospc()
                            if checkpoints.STAGING_NAME in str(path) else original(self, path, *a, **k))
        folder = checkpoints.STAGING_NAME
    out = tmp_path / "full"
    with pytest.raises(UsageError, match=rf"the disk is full: writing .* to {out / folder} needs about \d+\.\d MB "
                                         r"\(\d+\.\d MB free there\)") as err:
        train.main(run_args(tmp_path, small_data_dir, "full"))
    assert "\n" not in str(err.value)
    if where == "training_weights":  # the size of the previous checkpoint
        size = checkpoints.folder_size(out / "checkpoint-2") / 2**20
        assert f"needs about {size:.1f} MB" in str(err.value)
    assert not (out / folder).exists()  # the half-written folder is gone, its space freed
    assert checkpoints.newest_complete(out) == str(out / ("checkpoint-2" if folder == "checkpoint-4" else "checkpoint-4"))
    shutil.rmtree(out)
