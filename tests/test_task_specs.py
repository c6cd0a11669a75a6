"""Tasks as data: spec files, the generic readers on the bundled real review data, labels and per-task metrics."""
from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from helpers import REPO_ROOT, data_settings
from mtl.cache import load_or_build_task, read_label2id
from mtl.errors import UsageError
from mtl.metrics import task_scores
from mtl.readers import read_task_file
from mtl.table import DataFormatError
from mtl.tasks import REGISTRY, TASKS, get_tasks, load_spec

EXTRA = REPO_ROOT / "data" / "extra"
SHOPPING = EXTRA / "online_shopping_10_cats.csv"
SHOPPING_ROWS = 56_486  # data rows of the published file (SOURCES.md)


def spec_copy(tmp: Path, source: Path, **changes) -> Path:
    """A copy of a bundled spec in `tmp`, with changed keys, reading the same data file."""
    spec = json.loads(source.read_text(encoding="utf-8"))
    spec["files"] = {**spec["files"], "train": str(source.parent / spec["files"]["train"])}
    spec.update(changes)
    path = tmp / source.name
    path.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    return path


def test_default_tasks_are_the_competition_specs_and_tasks_mix_names_paths_and_folders():
    assert list(TASKS) == ["ocnli", "ocemotion", "tnews"] and [t.name for t in get_tasks(None)] == list(TASKS)
    tasks = get_tasks(f"{EXTRA / 'waimai_sentiment.json'},ocnli,{EXTRA / 'shopping_cat.json'}")
    assert [t.name for t in tasks] == ["waimai_sentiment", "ocnli", "shopping_cat"]  # the order given
    with pytest.raises(UsageError, match="names task 'waimai_sentiment' twice"):  # the folder holds it again
        get_tasks(f"{EXTRA / 'waimai_sentiment.json'},{EXTRA}")
    assert {t.name for t in get_tasks(str(EXTRA))} == {"shopping_cat", "shopping_sentiment", "waimai_sentiment"}
    assert REGISTRY["tnews"].label_name("109") == "news_tech"


@pytest.mark.parametrize("change,message", [
    ({"colour": "red"}, "unknown key(s) ['colour']"),
    ({"files": {}}, "'files' must give at least {'train': PATH}"),
    ({"metric": "auc"}, "'metric' 'auc': use one of"),
    ({"metric": "f1"}, "needs 'pos_label'"),
    ({"metric": {"name": "f1", "pos_label": "7"}}, "'metric.pos_label' '7' is not one of 'labels'"),
    ({"format": "xlsx"}, "the type must be one of"),
    ({"cleaner": "shout"}, "'cleaner' 'shout': use one of"),
    ({"name": "Waimai"}, "must be a lower-case name"),
])
def test_a_bad_spec_is_refused_in_one_line_naming_the_file(tmp_path, change, message):
    path = spec_copy(tmp_path, EXTRA / "waimai_sentiment.json", **change)
    with pytest.raises(UsageError, match=None) as err:
        load_spec(path)
    assert str(err.value).startswith(str(path)) and message in str(err.value)


def test_a_spec_that_is_not_json_names_its_line(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"name": "x",\n "files": {"train": "a.csv"}\n', encoding="utf-8")
    with pytest.raises(UsageError, match=r"broken.json:3: not valid JSON"):
        get_tasks(str(path))


def test_two_tasks_from_one_file_with_every_row_accounted_for():
    """The published CSV's traps: U+FEFF inside fields, an empty review, repeated texts, quoted commas."""
    for spec, labels in (("shopping_cat.json", 10), ("shopping_sentiment.json", 2)):
        task = load_spec(EXTRA / spec)
        table, report = read_task_file(task, SHOPPING, True, task.labels)
        assert report.rows + len(report.dropped) == SHOPPING_ROWS  # kept or dropped with a reason, nothing lost
        assert len(set(table.columns["label"])) == labels
        kinds = {d.kind for d in report.dropped}
        assert kinds == {"empty text", "duplicate"}
        assert [d.line for d in report.dropped if d.kind == "empty text"] == [32758]
        assert report.repaired_fields == 18 and not any("\ufeff" in t for t in table.columns["review"])
        assert table.columns["id"][0] == "2"  # no id column: the line number (line 1 is the header)
    with SHOPPING.open(encoding="utf-8", newline="") as f:
        quoted = [r[2] for r in csv.reader(f) if "," in r[2]]
    assert quoted and quoted[0] in table.columns["review"]  # a review with commas, whole


def test_a_bad_row_stops_with_its_file_and_line_unless_the_spec_skips_them(tmp_path):
    task = load_spec(spec_copy(tmp_path, EXTRA / "shopping_sentiment.json", skip_bad_rows=False))
    with pytest.raises(DataFormatError, match=r"online_shopping_10_cats.csv:32758: empty text \(use --skip_bad_rows"):
        read_task_file(task, SHOPPING, True, task.labels)


def test_labels_default_to_the_sorted_set_seen_in_train_and_a_validation_file_is_checked_against_them(tmp_path, tokenizer):
    rows = list(csv.reader((EXTRA / "waimai_10k.csv").open(encoding="utf-8", newline="")))
    (tmp_path / "train.tsv").write_text("".join(f"{r[1]}\t{r[0]}\n" for r in rows[1:201] + rows[-200:]),
                                        encoding="utf-8")  # the file is sorted by label: both classes
    (tmp_path / "dev.tsv").write_text("".join(f"{r[1]}\t{r[0]}\n" for r in rows[3590:3640]) + "还行\t2\n",
                                      encoding="utf-8")
    spec = {"name": "waimai_tsv", "format": {"type": "tsv", "header": False, "column_names": ["review", "label"]},
            "files": {"train": "train.tsv", "validation": "dev.tsv"}, "columns": {"text": "review"}}
    (tmp_path / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
    task = load_spec(tmp_path / "spec.json")
    settings = data_settings(tmp_path)
    with pytest.raises(DataFormatError, match=r"dev.tsv:51: label '2' is not one of \['0', '1'\]"):
        load_or_build_task(task, tokenizer, settings)


def test_a_validation_file_replaces_the_split(tmp_path, tokenizer):
    rows = list(csv.reader((EXTRA / "waimai_10k.csv").open(encoding="utf-8", newline="")))[1:]
    pick = rows[:300] + rows[-300:]  # the file is sorted by label: both classes
    lines = [json.dumps({"id": f"w{i}", "text": r[1], "label": int(r[0])}, ensure_ascii=False) for i, r in enumerate(pick)]
    (tmp_path / "train.jsonl").write_text("\n".join(lines[::2]) + "\n", encoding="utf-8")
    (tmp_path / "dev.jsonl").write_text("\n".join(lines[1::2]) + "\n", encoding="utf-8")
    spec = {"name": "waimai_jsonl", "format": "jsonl", "files": {"train": "train.jsonl", "validation": "dev.jsonl"},
            "columns": {"id": "id", "text": "text", "label": "label"}}
    (tmp_path / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
    task = load_spec(tmp_path / "spec.json")
    settings = data_settings(tmp_path)
    splits = load_or_build_task(task, tokenizer, settings)
    assert len(splits["train"]["ids"]) == 300 and len(splits["val"]["ids"]) == 300
    assert splits["val"]["ids"][:2] == ["w1", "w3"] and len(splits["predict"]["ids"]) == 0
    assert read_label2id(task, settings.data_save_dir) == {"0": 0, "1": 1}  # JSON numbers as label strings


def test_competition_caches_hold_the_same_rows_as_before_specs(tmp_path, tokenizer, small_data_dir):
    """The ids of every split of the three competition tasks, from their bundled specs."""
    settings = data_settings(tmp_path, small_data_dir)
    for task in TASKS.values():
        splits = load_or_build_task(task, tokenizer, settings)
        assert len(splits["train"]["ids"]) + len(splits["val"]["ids"]) == 300
        assert splits["predict"]["ids"] == [str(i) for i in range(1500)]  # test A ids 0..1499, in file order
    settings = data_settings(tmp_path, small_data_dir, test_b=True)
    assert load_or_build_task(TASKS["ocnli"], tokenizer, settings)["predict"]["ids"][0] == "1500"  # test B
    with pytest.raises(UsageError, match="no test file named 'c'"):
        load_or_build_task(TASKS["ocnli"], tokenizer, data_settings(tmp_path, small_data_dir, predict_test="c"))


def test_each_task_is_scored_by_its_own_metric_and_avg_is_the_mean_of_those():
    rng = np.random.default_rng(0)
    labels = np.concatenate([rng.integers(0, 2, 40), rng.integers(0, 3, 30)])
    logits = np.full((70, 3), -100.0)
    logits[:40, :2] = rng.normal(size=(40, 2))
    logits[40:] = rng.normal(size=(30, 3))
    tasks = [("binary", 40, 2), ("three", 30, 3)]
    scores = task_scores(logits, labels, tasks, {"binary": ("f1", 0), "three": ("accuracy", None)})
    from sklearn.metrics import accuracy_score, f1_score

    pred_b, pred_t = logits[:40, :2].argmax(-1), logits[40:].argmax(-1)
    assert scores["binary"] == pytest.approx(f1_score(labels[:40], pred_b, pos_label=0))
    assert scores["binary_accuracy"] == pytest.approx(accuracy_score(labels[:40], pred_b))
    assert scores["three"] == pytest.approx(accuracy_score(labels[40:], pred_t))
    assert scores["three_macro_f1"] == pytest.approx(f1_score(labels[40:], pred_t, average="macro"))
    assert "three_accuracy" not in scores  # the chosen metric is not repeated
    assert scores["avg"] == pytest.approx((scores["binary"] + scores["three"]) / 2)


def test_a_yaml_spec_describes_the_same_task_as_its_json_twin(tmp_path):
    import yaml

    spec = json.loads((EXTRA / "waimai_sentiment.json").read_text(encoding="utf-8"))
    (tmp_path / "waimai.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    (tmp_path / "waimai_10k.csv").symlink_to(EXTRA / "waimai_10k.csv")
    twin = load_spec(tmp_path / "waimai.yaml")
    assert twin == dataclasses.replace(load_spec(EXTRA / "waimai_sentiment.json"), spec_dir=tmp_path)
    assert [t.name for t in get_tasks(str(tmp_path))] == ["waimai_sentiment"]  # a folder's YAML specs count
    (tmp_path / "broken.yml").write_text("name: x\nfiles: [\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"broken.yml:3: not valid YAML"):
        load_spec(tmp_path / "broken.yml")
