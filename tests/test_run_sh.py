"""run.sh's baseline profile as a GPU user runs it (whole epochs, a local BERT checkpoint), shrunk to a tiny model
and a small copy of the data: one process, and two processes through NPROC (torchrun, gloo on this CPU)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import pytest
import torch

import choose_profile
from helpers import REPO_ROOT, TINY_CONFIG
from mtl.tasks import TASKS

pytestmark = pytest.mark.slow  # end-to-end runs of the CLIs (torchrun / run.sh)


@pytest.mark.parametrize("nproc, steps_per_epoch", [(1, 51), (2, 27)])
def test_baseline_profile_whole_epochs_through_run_sh(tmp_path, small_data_dir, tiny_bert, nproc, steps_per_epoch):
    env = dict(os.environ, PROFILE="baseline", MODEL=str(tiny_bert), STAGE1_EPOCHS="1", STAGE2_EPOCHS="1",
               MAX_SEQ_LENGTH="64", DATA_DIR=str(small_data_dir), OUTPUT_DIR=str(tmp_path / "user_data"),
               PREDICTION_DIR=str(tmp_path / "prediction_result"), PYTHON=sys.executable, NPROC=str(nproc),
               EXTRA_ARGS="--disable_tqdm true", OMP_NUM_THREADS="1")
    result = subprocess.run(["bash", str(REPO_ROOT / "run.sh")], env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "profile 'baseline': PROFILE=baseline was requested" in result.stdout
    assert "| eval |" in result.stdout.splitlines()[-4]  # the final scores table, printed once
    assert "curves (loss, scores at each evaluation)" in result.stdout.splitlines()[-1]
    # each stage's --do_eval is the evaluation HF ran at the last step, not a second pass over the validation rows
    assert result.stderr.count("the final evaluation is the one at step") == 2
    for stage in ("stage1", "stage2"):
        out = tmp_path / "user_data" / stage
        state = json.loads((out / "trainer_state.json").read_text())
        assert state["global_step"] == steps_per_epoch  # one whole epoch over 3 x 270 train rows
        assert any("eval_avg" in e for e in state["log_history"])  # evaluated at the end of the epoch
        assert (out / "model.safetensors").exists() and (out / "config.json").exists()
        assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    config = json.loads((tmp_path / "user_data" / "stage2" / "config.json").read_text())
    assert [h["name"] for h in config["tasks"]] == list(TASKS)
    pred = tmp_path / "prediction_result"
    ids = [json.loads(line)["id"] for line in (pred / "ocnli_predict.json").read_text().splitlines()]
    assert ids == [str(i) for i in range(1500, 3000)]  # test B
    with zipfile.ZipFile(pred / "submit.zip") as archive:
        assert sorted(archive.namelist()) == sorted(f"{t}_predict.json" for t in TASKS)


DEMO_ENCODER = REPO_ROOT / "code" / "assets" / "demo_encoder"


@pytest.mark.parametrize("encoder", ["bundled", "from_scratch"])
def test_demo_profile_through_run_sh(tmp_path, short_data_dir, encoder):
    """A newcomer's `bash run.sh` on a CPU: the demo profile fine-tunes the bundled encoder and leaves it as it was;
    PRETRAIN_EPOCHS pretrains one from scratch first (here with the tiny config)."""
    env = dict(os.environ, PROFILE="demo", STAGE1_EPOCHS="1", STAGE2_EPOCHS="1", MAX_SEQ_LENGTH="64",
               DATA_DIR=str(short_data_dir), OUTPUT_DIR=str(tmp_path / "user_data"),
               PREDICTION_DIR=str(tmp_path / "prediction_result"), PYTHON=sys.executable,
               EXTRA_ARGS="--disable_tqdm true --eval_steps 1000 --save_steps 1000")
    if encoder == "from_scratch":
        env.update(PRETRAIN_EPOCHS="1", DEMO_CONFIG=str(TINY_CONFIG))
    before = {p.name: p.read_bytes() for p in DEMO_ENCODER.iterdir()}
    result = subprocess.run(["bash", str(REPO_ROOT / "run.sh")], env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "| eval |" in result.stdout.splitlines()[-4]
    config = json.loads((tmp_path / "user_data" / "stage2" / "config.json").read_text())
    assert [h["name"] for h in config["tasks"]] == list(TASKS)
    if encoder == "bundled":
        assert "fine-tuning the pretrained encoder code/assets/demo_encoder" in result.stdout
        assert config["hidden_size"] == json.loads((DEMO_ENCODER / "config.json").read_text())["hidden_size"]
        assert not (tmp_path / "user_data" / "demo_model").exists()
    else:
        assert "pretraining the demo model from scratch" in result.stdout
        assert (tmp_path / "user_data" / "demo_model" / "model.safetensors").exists()
        assert config["hidden_size"] == json.loads(TINY_CONFIG.read_text())["hidden_size"]
    assert {p.name: p.read_bytes() for p in DEMO_ENCODER.iterdir()} == before  # the bundled files are never written
    # BF16=auto: bf16 autocast in both stages exactly where the CPU computes bf16 natively
    native = choose_profile.native_cpu_bf16()
    assert ("bf16 autocast: this CPU computes bf16 natively" if native else "fp32: this CPU has no native bf16") \
        in result.stdout.splitlines()[0]
    for stage in ("stage1", "stage2"):
        args = torch.load(tmp_path / "user_data" / stage / "training_args.bin", weights_only=False)
        assert args.bf16 is native


@pytest.mark.parametrize("setting, message", [
    ({"PROFILE": "fast"}, "run.sh: error: PROFILE must be auto, demo or baseline, not 'fast'"),
    ({"BF16": "fp16"}, "run.sh: error: BF16 must be auto, 1 or 0, not 'fp16'")])
def test_a_wrong_setting_is_one_line_before_anything_is_written(tmp_path, setting, message):
    env = dict(os.environ, OUTPUT_DIR=str(tmp_path / "user_data"), PREDICTION_DIR=str(tmp_path / "prediction_result"),
               PYTHON=sys.executable, **setting)
    result = subprocess.run(["bash", str(REPO_ROOT / "run.sh")], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [message] and not list(tmp_path.iterdir())
