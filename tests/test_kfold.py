"""--num_folds K --fold k: the K folds partition each train file (stratified, seeded) and key the cache; train.py's
out-of-fold file holds exactly the validation rows; --train_val_split_ratio 0 trains on every row without
evaluation; `FOLDS=2 bash run.sh` end to end."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import train
from helpers import DATA_DIR, REPO_ROOT, TINY_CONFIG, common, data_settings
from mtl.args import DataTrainingArguments
from mtl.cache import load_or_build_task
from mtl.errors import UsageError
from mtl.labels import class_frequencies, label2id_for
from mtl.probabilities import read_probabilities
from mtl.task_files import ReadSettings, TaskFiles, read_table, train_validation_tables
from mtl.tasks import TASKS

K = 3
QUICK = ["--config_name", str(TINY_CONFIG), "--max_steps", "4", "--learning_rate", "3e-3", "--pseudo", "false"]


def folds(task, data_dir: Path, k: int, seed: int = 2020):
    files = TaskFiles.of(task, data_dir, None)
    return train_validation_tables(task, files, ReadSettings(num_folds=K, fold=k, split_seed=seed))


@pytest.mark.parametrize("task", list(TASKS))
def test_the_folds_partition_each_train_file_stratified(task, small_data_dir):
    """Every row is validated by exactly one fold and trains in the others; each class is spread evenly."""
    task = TASKS[task]
    every = folds(task, small_data_dir, 0)[0]
    all_ids = list(every.columns["id"])
    validated: Counter = Counter()
    class_counts = []
    for k in range(K):
        _, train_rows, val_rows, _ = folds(task, small_data_dir, k)
        train_ids, val_ids = list(train_rows.columns["id"]), list(val_rows.columns["id"])
        assert sorted(train_ids + val_ids) == sorted(all_ids) and not set(train_ids) & set(val_ids)
        validated.update(val_ids)
        class_counts.append(Counter(val_rows.columns["label"]))
    assert set(validated) == set(all_ids) and set(validated.values()) == {1}
    for label, total in Counter(every.columns["label"]).items():
        per_fold = [counts[label] for counts in class_counts]
        assert max(per_fold) - min(per_fold) <= 1 and sum(per_fold) == total, (label, per_fold)


def test_the_folds_are_seeded(small_data_dir):
    task = TASKS["tnews"]
    ids = lambda seed: list(folds(task, small_data_dir, 1, seed)[2].columns["id"])  # noqa: E731
    assert ids(2020) == ids(2020) and ids(2020) != ids(7)


def test_each_fold_has_a_cache_of_its_own(tmp_path, small_data_dir, tokenizer):
    """Fold 1 in the cache directory of fold 0 is rebuilt, not served fold 0's validation rows."""
    task = TASKS["ocnli"]
    val = {k: load_or_build_task(task, tokenizer, data_settings(tmp_path, small_data_dir, num_folds=K, fold=k))["val"]["ids"]
           for k in (0, 1, 0)}
    plain = load_or_build_task(task, tokenizer, data_settings(tmp_path, small_data_dir))["val"]["ids"]
    assert not set(val[0]) & set(val[1]) and len(plain) == 30 and len(val[0]) == 100


@pytest.mark.parametrize("values, message", [
    (dict(num_folds=3), "--num_folds and --fold go together"),
    (dict(fold=0), "--num_folds and --fold go together"),
    (dict(num_folds=1, fold=0), "--num_folds 1 --fold 0: give K >= 2 folds"),
    (dict(num_folds=3, fold=-1), "--num_folds 3 --fold -1: give K >= 2 folds and a fold 0 <= k < K"),
    (dict(train_val_split_ratio=-0.1), "--train_val_split_ratio -0.1: must be at least 0 and below 1"),
])
def test_bad_fold_arguments_are_one_line(values, message):
    with pytest.raises(UsageError, match=message):
        DataTrainingArguments(**values)


def test_a_task_with_its_own_validation_file_is_refused(tmp_path):
    for name in ("train", "dev"):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps({"text": f"{name} {i}", "label": str(i % 2)}) + "\n"
                                                        for i in range(10)), encoding="utf-8")
    spec = {"name": "own_dev", "format": {"type": "jsonl"}, "files": {"train": "train.jsonl", "validation": "dev.jsonl"},
            "columns": {"id": None, "text": ["text"], "label": "label"}}
    (tmp_path / "own_dev.json").write_text(json.dumps(spec), encoding="utf-8")
    from mtl.tasks import load_spec

    task = load_spec(tmp_path / "own_dev.json")
    with pytest.raises(UsageError, match=r"--num_folds: task own_dev has its own validation file .*dev.jsonl"):
        train_validation_tables(task, TaskFiles.of(task, DATA_DIR, None), ReadSettings(num_folds=2, fold=0))
    with pytest.raises(UsageError, match=r"--num_folds 20: .*train.jsonl has only 10 rows"):
        spec["files"] = {"train": "train.jsonl"}
        (tmp_path / "own_dev.json").write_text(json.dumps(spec), encoding="utf-8")
        task = load_spec(tmp_path / "own_dev.json")
        train_validation_tables(task, TaskFiles.of(task, DATA_DIR, None), ReadSettings(num_folds=20, fold=0))


@pytest.fixture(scope="module")
def fold_run(tmp_path_factory, small_data_dir):
    """Fold 1 of 3 trained, evaluated and predicting, by train.py."""
    tmp = tmp_path_factory.mktemp("fold")
    metrics = train.main([*QUICK, "--do_train", "--do_eval", "--do_predict", "--num_folds", str(K), "--fold", "1",
                          "--eval_strategy", "no", "--save_strategy", "no", *common(tmp, small_data_dir, "run")])
    return tmp, metrics


def test_the_oof_file_holds_exactly_the_validation_rows(fold_run, small_data_dir):
    tmp, metrics = fold_run
    for task in TASKS.values():
        _, _, val_rows, labels = folds(task, small_data_dir, 1)
        oof = read_probabilities(tmp / "run" / "oof" / f"{task.name}_oof.csv")
        assert oof.ids == list(val_rows.columns["id"])  # file order, every validation row once, no other row
        assert oof.gold == list(val_rows.columns["label"]) and oof.labels == sorted(labels)
        assert np.allclose(oof.values.sum(1), 1, atol=1e-6)
        assert oof.values.shape == (len(val_rows), len(labels))
        gold = np.array([oof.labels.index(label) for label in oof.gold])
        from sklearn.metrics import f1_score

        # the file's probabilities are the evaluated ones: they give train.py's own score
        assert f1_score(gold, oof.label_ids(), average="macro") == pytest.approx(metrics[f"eval_{task.name}"])


def test_predict_writes_the_probabilities_beside_the_submission(fold_run):
    tmp, _ = fold_run
    for task in TASKS.values():
        probs = read_probabilities(tmp / "pred_run" / f"{task.name}_probs.csv")
        lines = [json.loads(line) for line in (tmp / "pred_run" / f"{task.name}_predict.json").read_text().splitlines()]
        assert probs.ids == [line["id"] for line in lines]
        assert [probs.labels[k] for k in probs.label_ids()] == [line["label"] for line in lines]
        assert np.allclose(probs.values.sum(1), 1, atol=1e-6)


def test_ratio_0_trains_on_every_row_and_evaluates_nothing(tmp_path, small_data_dir, capsys):
    """Evaluation is on by default (--eval_strategy steps, --do_eval asked for here): all of it switched off."""
    metrics = train.main([*QUICK, "--do_train", "--do_eval", "--do_predict", "--train_val_split_ratio", "0",
                          "--eval_steps", "2", "--save_steps", "2", *common(tmp_path, small_data_dir, "all")])
    assert metrics == {}
    assert "--train_val_split_ratio 0: training on every row" in capsys.readouterr().err
    out = tmp_path / "all"
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 4 and not any("eval_loss" in entry for entry in state["log_history"])
    assert not (out / "eval_results.json").exists() and not (out / "oof").exists()
    assert (out / "model.safetensors").exists() and (tmp_path / "pred_all" / "submit.zip").exists()
    config = json.loads((out / "config.json").read_text())
    for head in config["tasks"]:  # the logit adjustment's priors: every train row's labels
        task = TASKS[head["name"]]
        labels = read_table(task, task.train_path(small_data_dir), True, ReadSettings()).columns["label"]
        ids = [label2id_for(task.labels)[label] for label in labels]
        assert head["class_priors"] == class_frequencies(ids, len(task.labels))


@pytest.mark.slow
def test_folds_through_run_sh(tmp_path, short_data_dir, tiny_bert):
    """FOLDS=2: two fold models (stages 1 and 2), the ensemble's test B submission, the scores table."""
    pred = tmp_path / "prediction_result"
    env = dict(os.environ, PROFILE="baseline", MODEL=str(tiny_bert), FOLDS="2", MAX_SEQ_LENGTH="32",
               DATA_DIR=str(short_data_dir), OUTPUT_DIR=str(tmp_path / "user_data"), PREDICTION_DIR=str(pred),
               PYTHON=sys.executable, NPROC="1", OMP_NUM_THREADS="1",
               EXTRA_ARGS="--max_steps 3 --per_device_train_batch_size 8 --disable_tqdm true")
    result = subprocess.run(["bash", str(REPO_ROOT / "run.sh")], env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "is stale; rebuilding" not in result.stderr  # one cache per fold, built by stage 1, used by stage 2
    table = result.stdout.split("the ensemble's out-of-fold score")[1].splitlines()
    assert table[1].startswith("| out-of-fold macro-F1 | ocnli | ocemotion | tnews | avg |")
    assert [row.split(" | ")[0] for row in table[3:6]] == [f"| {tmp_path}/user_data/fold{k}/stage2" for k in (0, 1)] + [
        "| ensemble"]
    for k in (0, 1):
        fold = tmp_path / "user_data" / f"fold{k}"
        assert (fold / "stage1" / "model.safetensors").exists() and (fold / "stage2" / "model.safetensors").exists()
        assert {p.name for p in (fold / "stage2" / "oof").iterdir()} == {f"{t}_oof.csv" for t in TASKS}
    summary = json.loads((pred / "ensemble.json").read_text())
    for task in TASKS.values():
        ids = [json.loads(line)["id"] for line in (pred / f"{task.name}_predict.json").read_text().splitlines()]
        assert ids == list(read_table(task, task.test_path("b", short_data_dir), False, ReadSettings()).columns["id"])
        assert summary["tasks"][task.name]["weights"] == [0.5, 0.5]
        oof = read_probabilities(pred / "oof" / f"{task.name}_oof.csv")  # every train row, from the fold that held it out
        train_ids = read_table(task, task.train_path(short_data_dir), True, ReadSettings()).columns["id"]
        assert sorted(oof.ids) == sorted(train_ids)
