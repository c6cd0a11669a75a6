"""train.py on tasks given as spec files (the bundled review data) beside a competition task, through the real CLI:
per-task metrics, predictions for a test file a spec names, pseudo-labels of a CSV task, a new head on the model."""
from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from helpers import REPO_ROOT, TINY_CONFIG, common

EXTRA = REPO_ROOT / "data" / "extra"
ROWS = 150  # --max_train_samples: train rows per task


def run_train(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, str(REPO_ROOT / "code" / "train.py"), *args],
                            capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def four_tasks(tmp_path_factory, small_data_dir):
    """The issue's command: the three bundled review specs and OCNLI; waimai's spec (a copy) names a test file."""
    tmp = tmp_path_factory.mktemp("own_tasks")
    rows = list(csv.reader((EXTRA / "waimai_10k.csv").open(encoding="utf-8", newline="")))
    with (tmp / "waimai_new.csv").open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([["review"], *([r[1]] for r in rows[3500:3700])])  # texts only, both classes
    spec = json.loads((EXTRA / "waimai_sentiment.json").read_text(encoding="utf-8"))
    spec["files"] = {"train": str(EXTRA / "waimai_10k.csv"), "test": {"new": "waimai_new.csv"}}
    (tmp / "waimai_sentiment.json").write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    tasks = f"{EXTRA / 'shopping_cat.json'},{EXTRA / 'shopping_sentiment.json'},{tmp / 'waimai_sentiment.json'},ocnli"
    run_train("--tasks", tasks, "--config_name", str(TINY_CONFIG), "--do_train", "--do_eval", "--do_predict",
              "--max_train_samples", str(ROWS), "--num_train_epochs", "1", "--eval_strategy", "epoch",
              "--save_strategy", "epoch", "--pseudo_threshold", "0.0", *common(tmp, small_data_dir, "four"))
    return tmp, tasks


@pytest.mark.slow
def test_four_tasks_train_as_one_model_each_scored_by_its_spec_metric(four_tasks):
    tmp, _ = four_tasks
    heads = json.loads((tmp / "four" / "config.json").read_text())["tasks"]
    assert [h["name"] for h in heads] == ["shopping_cat", "shopping_sentiment", "waimai_sentiment", "ocnli"]
    assert [len(h["labels"]) for h in heads] == [10, 2, 2, 3] and heads[0]["text_columns"] == ["review"]
    state = json.loads((tmp / "four" / "trainer_state.json").read_text())
    assert state["global_step"] == 4 * -(-ROWS // 16)  # one whole epoch of ROWS rows per task, batch 16
    metrics = json.loads((tmp / "four" / "eval_results.json").read_text())
    chosen = ["eval_shopping_cat", "eval_shopping_sentiment", "eval_waimai_sentiment", "eval_ocnli"]
    for key in [*chosen, "eval_shopping_cat_accuracy", "eval_shopping_sentiment_macro_f1",
                "eval_waimai_sentiment_accuracy", "eval_waimai_sentiment_macro_f1", "eval_ocnli_accuracy"]:
        assert 0.0 <= metrics[key] <= 1.0, key
    assert "eval_shopping_sentiment_accuracy" not in metrics  # accuracy is that task's chosen metric
    assert metrics["eval_avg"] == pytest.approx(np.mean([metrics[k] for k in chosen]))


def test_predict_writes_the_test_files_the_specs_name(four_tasks):
    tmp, _ = four_tasks
    assert sorted(p.name for p in (tmp / "pred_four").glob("*.json")) == ["ocnli_predict.json", "waimai_sentiment_predict.json"]
    rows = [json.loads(line) for line in (tmp / "pred_four" / "waimai_sentiment_predict.json").read_text().splitlines()]
    assert [r["id"] for r in rows] == [str(line) for line in range(2, 202)]  # no id column: the file's line numbers
    assert {r["label"] for r in rows} <= {"0", "1"}
    pseudo = (tmp / "four" / "pseudo" / "WAIMAI_SENTIMENT_pseudo.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(pseudo) == 200 and set(json.loads(pseudo[0])) == {"id", "review", "label"}


@pytest.mark.slow
def test_pseudo_labels_of_a_csv_task_join_its_train_split(four_tasks, small_data_dir):
    tmp, tasks = four_tasks
    waimai = tasks.split(",")[2]
    result = run_train("--tasks", waimai, "--model_name_or_path", str(tmp / "four"), "--do_train", "--max_steps", "1",
                       "--use_pseudo", str(tmp / "four" / "pseudo"), *common(tmp, small_data_dir, "pseudo"))
    assert "waimai_sentiment: 200 pseudo-labelled rows added to train" in result.stderr


@pytest.mark.slow
def test_a_trained_model_gains_a_head_for_a_new_task_and_keeps_the_others(four_tasks, small_data_dir):
    tmp, _ = four_tasks
    result = run_train("--tasks", "tnews", "--model_name_or_path", str(tmp / "four"), "--do_train", "--max_steps", "2",
                       "--max_train_samples", "64", *common(tmp, small_data_dir, "grown"))
    assert "has no head for task(s) ['tnews']: new head(s) initialised at random" in result.stderr
    heads = json.loads((tmp / "grown" / "config.json").read_text())["tasks"]
    assert [h["name"] for h in heads] == ["shopping_cat", "shopping_sentiment", "waimai_sentiment", "ocnli", "tnews"]
    assert heads[4]["labels"][0] == "100" and heads[4]["text_columns"] == ["text"]
    run_train("--tasks", "tnews", "--model_name_or_path", str(tmp / "four"), "--do_train", "--max_steps", "1",
              "--max_train_samples", "64", "--drop_other_heads", *common(tmp, small_data_dir, "only_tnews"))
    assert [h["name"] for h in json.loads((tmp / "only_tnews" / "config.json").read_text())["tasks"]] == ["tnews"]


@pytest.mark.slow
def test_an_unknown_task_or_a_broken_spec_gets_one_line(tmp_path):
    (tmp_path / "bad.json").write_text(json.dumps({"name": "bad", "files": {"train": "x.csv"}, "format": "csv"}))
    result = subprocess.run([sys.executable, str(REPO_ROOT / "code" / "train.py"), "--tasks", str(tmp_path / "bad.json"),
                             "--config_name", str(TINY_CONFIG), "--do_train", "--output_dir", str(tmp_path / "o"),
                             "--data_save_dir", str(tmp_path / "c"), "--cleaned_dir", str(tmp_path / "c")],
                            capture_output=True, text=True, cwd=REPO_ROOT)
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 1 and last == (f"train.py: error: {tmp_path / 'x.csv'}: no such file; the task spec's "
                                               f"'files' name it (relative paths are read from {tmp_path})")
