"""`bash code/own_data.sh SPECS OUT`: task-adaptive pretraining, fine-tuning, the peer, a model predict.py loads; a stop
during pretraining continues from its checkpoint; a wrong call is one line."""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import choose_profile
from helpers import REPO_ROOT

EXTRA = REPO_ROOT / "data" / "extra"
SCRIPT = REPO_ROOT / "code" / "own_data.sh"


@pytest.fixture(scope="module")
def specs(tmp_path_factory) -> str:
    """data/extra's waimai and shopping-category specs, as they are, over slices of their review files."""
    folder = tmp_path_factory.mktemp("own_data")
    with open(EXTRA / "waimai_10k.csv", encoding="utf-8", newline="") as source:
        waimai = list(csv.reader(source))
    with open(EXTRA / "online_shopping_10_cats.csv", encoding="utf-8", newline="") as source:
        shopping = list(csv.reader(source))
    slices = {"waimai_10k.csv": [waimai[0], *waimai[1:81], *waimai[-80:]],  # both labels
              "online_shopping_10_cats.csv": [shopping[0], *shopping[1::200]]}  # every category
    for name, rows in slices.items():
        with open(folder / name, "w", encoding="utf-8", newline="") as target:
            csv.writer(target, lineterminator="\n").writerows(rows)
    for spec in ("waimai_sentiment.json", "shopping_cat.json"):
        shutil.copy(EXTRA / spec, folder)
    return f"{folder / 'waimai_sentiment.json'},{folder / 'shopping_cat.json'}"


def own_data(specs: str, out: Path, encoder: Path, tapt_steps: int | None, *args: str,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """tapt_steps None: own_data.sh's default."""
    env = dict({k: v for k, v in os.environ.items() if k not in ("TAPT_STEPS", "BF16")}, PYTHON=sys.executable,
               MODEL=str(encoder),
               OMP_NUM_THREADS="1", **({} if tapt_steps is None else {"TAPT_STEPS": str(tapt_steps)}),
               EXTRA_ARGS="--max_steps 2 --max_seq_length 32 --per_device_train_batch_size 8 --disable_tqdm true",
               **(env or {}))
    return subprocess.run(["bash", str(SCRIPT), *args] if args else ["bash", str(SCRIPT), specs, str(out)], env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_own_data_continues_a_stopped_pretraining_fine_tunes_and_leaves_a_model_predict_py_loads(
        tmp_path, specs, tiny_mlm):
    out = tmp_path / "reviews"
    # what a kill during pretraining leaves: encoder.partial/ with a checkpoint and no model
    stopped = subprocess.run([sys.executable, str(REPO_ROOT / "code" / "pretrain.py"), "--tasks", specs,
                              "--model_name_or_path", str(tiny_mlm), "--output_dir", str(out / "encoder.partial"),
                              "--max_steps", "2", "--save_strategy", "steps", "--save_steps", "2",
                              "--disable_tqdm", "true"], capture_output=True, text=True, timeout=300)
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    for name in ("model.safetensors", "config.json"):
        (out / "encoder.partial" / name).unlink()
    # mark the checkpoint's weights (position embeddings all 7.0) so the finished encoder tells whether it went on
    # from them or started over
    checkpoint = out / "encoder.partial" / "checkpoint-2" / "model.safetensors"
    weights = load_file(str(checkpoint))
    weights["bert.embeddings.position_embeddings.weight"].fill_(7.0)
    save_file(weights, str(checkpoint), metadata={"format": "pt"})

    result = own_data(specs, out, tiny_mlm, 4)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    lines = result.stdout.splitlines()
    assert [line.split()[1] for line in lines if line.startswith("own_data.sh: [")] == ["[1/3]", "[2/3]", "[3/3]"]
    assert f"(continuing from {out / 'encoder.partial' / 'checkpoint-2'})" in result.stdout
    # the encoder: the tiny one moved by the MLM steps, complete (renamed from its partial folder, checkpoints gone)
    assert not (out / "encoder.partial").exists() and not list((out / "encoder").glob("checkpoint-*"))
    start, tapt = load_file(str(tiny_mlm / "model.safetensors")), load_file(str(out / "encoder" / "model.safetensors"))
    assert float((tapt["bert.embeddings.position_embeddings.weight"] - 7.0).abs().max()) < 0.05  # went on
    moved = [float((start[name] - tapt[name]).abs().max()) for name in start if name in tapt and "position" not in name]
    assert 0 < max(moved) < 0.05
    # the final table: the model's validation scores, then the peer's on the same rows, then how to label new texts
    done = next(i for i, line in enumerate(lines) if line.startswith("own_data.sh: done"))
    table = lines[done + 1:]
    assert table[0].startswith("| score | waimai_sentiment | shopping_cat | avg |") and table[2].startswith("| eval |")
    assert table[3].startswith("| tfidf_lr |")
    assert "--tasks waimai_sentiment,shopping_cat" in lines[-1]
    labelled = subprocess.run([sys.executable, str(REPO_ROOT / "code" / "predict.py"), "--model_name_or_path",
                               str(out / "model"), "--tasks", "waimai_sentiment,shopping_cat", "--text", "送餐很快，味道不错"],
                              capture_output=True, text=True, timeout=300)
    assert labelled.returncode == 0, labelled.stderr[-3000:]
    rows = [json.loads(line) for line in labelled.stdout.splitlines()]
    assert [row["task"] for row in rows] == ["waimai_sentiment", "shopping_cat"]
    labels = json.loads((EXTRA / "shopping_cat.json").read_text())["labels"]
    assert rows[0]["label"] in ("0", "1") and rows[1]["label"] in labels
    # fine-tuning started from the task-adapted encoder: the word-embedding rows of tokens its 2 steps never saw
    # (most of the vocabulary) are the adapted ones, which the tied MLM decoder moved away from the start's
    fine = load_file(str(out / "model" / "model.safetensors"))
    key = "bert.embeddings.word_embeddings.weight"
    from_tapt = (fine[key] - tapt[key]).abs().amax(dim=1).median()
    from_start = (fine[key] - start[key]).abs().amax(dim=1).median()
    assert from_tapt < from_start / 10, (from_tapt, from_start)


@pytest.mark.parametrize("args", [("only_one_argument",), ("", "out"), ("a.json", "out", "extra")])
def test_a_wrong_call_is_one_line_and_writes_nothing(tmp_path, args):
    result = subprocess.run(["bash", str(SCRIPT), *args], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "own_data.sh: error: usage: bash code/own_data.sh SPEC[,SPEC...] OUTPUT_DIR (task spec files, comma-separated; "
        "docs/tasks.md)"]
    assert not list(tmp_path.iterdir()) and not (REPO_ROOT / "out").exists()


@pytest.mark.parametrize("setting, message", [
    ({"TAPT_STEPS": "many"}, "own_data.sh: error: TAPT_STEPS=many: give a number of steps (0 skips task-adaptive "
                             "pretraining)"),
    ({"BF16": "fp16"}, "own_data.sh: error: BF16 must be auto, 1 or 0, not 'fp16'")])
def test_a_wrong_setting_is_one_line_before_anything_is_written(tmp_path, setting, message):
    env = dict(os.environ, PYTHON=sys.executable, **setting)
    result = subprocess.run(["bash", str(SCRIPT), "specs.json", str(tmp_path / "out")], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [message] and not list(tmp_path.iterdir())


@pytest.mark.slow
def test_by_default_without_pretraining_and_peer_0_it_fine_tunes_the_given_encoder_and_ends_with_its_scores(
        tmp_path, specs, tiny_mlm):
    out = tmp_path / "reviews"
    result = own_data(specs, out, tiny_mlm, None, env={"PEER": "0"})
    # BF16=auto: bf16 autocast exactly where the CPU computes bf16 natively
    native = choose_profile.native_cpu_bf16()
    why = ("bf16 autocast: this CPU computes bf16 natively (BF16=0 for fp32)" if native
           else "fp32: this CPU has no native bf16")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    lines = result.stdout.splitlines()
    assert [line for line in lines if line.startswith("own_data.sh: [")] == [
        f"own_data.sh: [1/3] no task-adaptive pretraining (TAPT_STEPS=N to add it): fine-tuning {tiny_mlm}",
        f"own_data.sh: [2/3] fine-tuning (code/assets/profiles/own_data.json; {why}) -> {out / 'model'}",
        "own_data.sh: [3/3] skipped (PEER=0)"]
    assert not (out / "encoder").exists() and not (out / "encoder.partial").exists()
    done = next(i for i, line in enumerate(lines) if line.startswith("own_data.sh: done"))
    table = lines[done + 1:]
    assert table[0].startswith("| score | waimai_sentiment | shopping_cat | avg |") and table[2].startswith("| eval |")
    assert len(table) == 4 and "--tasks waimai_sentiment,shopping_cat" in table[3]
    # the bundled encoder's weights were the start: the model's encoder is the tiny one's size
    fine, start = load_file(str(out / "model" / "model.safetensors")), load_file(str(tiny_mlm / "model.safetensors"))
    key = "bert.embeddings.word_embeddings.weight"
    assert fine[key].shape == start[key].shape
    assert torch.load(out / "model" / "training_args.bin", weights_only=False).bf16 is native
