"""One reader: training's cache and predict.py read every file alike, so the token ids predict.py computes for a
task's train file equal the training cache's, row for row. Checked for every bundled spec and for TSV / CSV / JSONL
tasks whose texts hold the traps that once made the two disagree: quotes (a TSV quote was a CSV quote in training and
text in predict.py: a quote opened on one line and closed ten lines later merged 11 rows into one), tabs inside
quotes, a BOM, CRLF line ends, a line separator (U+2028) inside a JSON string."""
from __future__ import annotations

import json

import pytest
import torch

import predict
import train
from helpers import REPO_ROOT, TINY_CONFIG, common
from mtl.predictor import Prediction, Predictor
from mtl.readers import read_task_file
from mtl.tasks import get_tasks

pytestmark = pytest.mark.slow  # a training run over nine tasks and predict.py over each train file

EXTRA = REPO_ROOT / "data" / "extra"
BOM, CRLF = "\ufeff", "\r\n"


def filler(prefix: str, count: int) -> list[tuple[str, str, str]]:
    """(id, text, label) rows of plain text, both labels."""
    return [(f"{prefix}{i}", f"第{i}条评论，{'很好' if i % 2 else '很差'}", str(i % 2)) for i in range(count)]


def tsv_rows() -> list[str]:
    rows = [f"{i}\t{text}\t{label}" for i, text, label in filler("t", 30)]
    rows[3] = 't3\t"这条引号开了没关\t1'  # a quote opened here ...
    rows[13] = 't13\t十行以后才有引号"\t0'  # ... and closed ten lines later: 11 rows, never one
    rows[15] = 't15\t"整段带引号"\t1'
    rows[17] = 't17\t他说"好吃"，下次还来\t1'
    rows[19] = 't19\t"引号里\t有制表符"\t1'  # four fields in a TSV without quoting: a bad row, dropped by both
    return ["id\ttext\tlabel", *rows]


def csv_rows() -> list[str]:
    rows = [f"{i},{text},{label}" for i, text, label in filler("c", 30)]
    rows[2] = 'c2,"他说""好吃""，下次还来",1'
    rows[4] = 'c4,"逗号,在引号里",0'
    rows[6] = 'c6,"引号里\t有制表符",0'
    rows[8] = 'c8,"一条合法的\r\n跨行评论",0'  # legal CSV: one row over two lines
    rows[10] = 'c10,没有引号开头的"内部引号",0'
    return ["id,text,label", *rows]


def jsonl_rows() -> list[str]:
    rows = [{"id": i, "text": text, "label": int(label)} for i, text, label in filler("j", 30)]
    rows[1]["text"] = '他说"好吃"，\t下次还来'
    rows[3]["text"] = "一行\u2028分隔符在字符串里"  # str.splitlines() would cut this line in two
    return [json.dumps(r, ensure_ascii=False) for r in rows]


def write_task(folder, name: str, fmt: str, suffix: str, lines: list[str]) -> None:
    (folder / f"{name}{suffix}").write_bytes((BOM + CRLF.join(lines) + CRLF).encode("utf-8"))
    spec = {"name": name, "format": fmt, "files": {"train": f"{name}{suffix}"},
            "columns": {"id": "id", "text": "text", "label": "label"}, "labels": ["0", "1"], "skip_bad_rows": True}
    (folder / f"{name}.json").write_text(json.dumps(spec), encoding="utf-8")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, small_data_dir):
    """train.py's caches and model for the bundled specs and the quoted-text tasks."""
    tmp = tmp_path_factory.mktemp("one_reader")
    quoted = tmp / "quoted"
    quoted.mkdir()
    write_task(quoted, "quoted_tsv", "tsv", ".tsv", tsv_rows())
    write_task(quoted, "quoted_csv", "csv", ".csv", csv_rows())
    write_task(quoted, "quoted_jsonl", "jsonl", ".jsonl", jsonl_rows())
    tasks = ",".join(["ocnli", "ocemotion", "tnews", str(EXTRA), str(quoted)])
    train.main(["--config_name", str(TINY_CONFIG), "--tasks", tasks, "--do_train", "--max_steps", "1",
                "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "false",
                "--pseudo", "false", *common(tmp, small_data_dir, "model")])
    return tmp, small_data_dir, {task.name: task for task in get_tasks(tasks)}


def rows_of(features: dict, ids: list[str]) -> dict[str, tuple[list[int], list[int]]]:
    """id -> (token ids, segment ids) of each row of an encoded split."""
    offsets = features["offsets"].tolist()
    return {row_id: (features["input_ids"][a:b].tolist(), features["token_type_ids"][a:b].tolist())
            for row_id, a, b in zip(ids, offsets, offsets[1:])}


def predict_py_rows(model_dir, task: str, path, monkeypatch) -> dict[str, tuple[list[int], list[int]]]:
    """predict.py on `path`: its reading of the file and the Predictor's encoding, the model's forward pass skipped."""
    encoded = []

    def encode_only(self, task_name, texts, top_k=1):
        encoded.append(self.encode(task_name, texts))
        return [Prediction("0", "0", 1.0)] * len(texts)

    monkeypatch.setattr(Predictor, "predict", encode_only)
    records = predict.main(["--model_name_or_path", str(model_dir), "--tasks", task, "--input_file", str(path),
                            "--skip_bad_rows", "--device", "cpu"])
    ids = [r["id"] for r in records]
    assert len(set(ids)) == len(ids), "the test's files have unique ids"
    return rows_of(encoded[0], ids)


TASKS = ("ocnli", "ocemotion", "tnews", "shopping_cat", "shopping_sentiment", "waimai_sentiment", "quoted_tsv",
         "quoted_csv", "quoted_jsonl")


def cached_rows(tmp, task: str) -> dict[str, tuple[list[int], list[int]]]:
    """The training cache's rows of a task's train file: its train and validation splits."""
    rows = {}
    for split in ("train", "val"):
        features = torch.load(tmp / "cache_model" / f"{task}_processed" / f"{split}.pt", weights_only=True)
        rows.update(rows_of(features, features["ids"]))
    return rows


@pytest.mark.parametrize("name", TASKS)
def test_predict_py_encodes_a_train_file_as_the_training_cache_holds_it(trained, monkeypatch, name):
    tmp, data_dir, tasks = trained
    task = tasks[name]
    cached = cached_rows(tmp, name)
    path = task.train_path(data_dir)
    predicted = predict_py_rows(tmp / "model", name, path, monkeypatch)
    differ = [i for i in cached if predicted.get(i) != cached[i]]
    assert not differ, f"{len(differ)} rows differ, e.g. ids {differ[:5]}"
    # predict.py checks no label and drops no duplicate: it has the rows training dropped for those, no others
    _, report = read_task_file(task, path, True, task.labels)
    label_or_duplicate = [d for d in report.dropped if d.kind in ("duplicate", "unknown label", "empty label")]
    assert len(predicted) == len(cached) + len(label_or_duplicate)


def test_no_row_of_the_quoted_files_is_merged_or_lost(trained):
    tmp, _, _ = trained
    assert len(cached_rows(tmp, "quoted_tsv")) == 29  # 30 rows, the one with four fields dropped; none merged
    assert len(cached_rows(tmp, "quoted_csv")) == 30 and len(cached_rows(tmp, "quoted_jsonl")) == 30
