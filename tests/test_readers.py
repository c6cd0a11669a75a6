"""The csv / tsv / jsonl record generators and the one row collector, as training and predict.py read files: what a
quote means in each format, rows spanning lines never silent, and predict.py reading a labelled train file."""
from __future__ import annotations

import json
import logging

from mtl.new_texts import read_new_texts
from mtl.readers import read_task_file
from mtl.tasks import TASKS, task_from_spec


def task(tmp_path, fmt, suffix: str, **columns):
    spec = {"name": "reviews", "format": fmt, "files": {"train": f"train{suffix}"},
            "columns": {"id": None, "text": "text", "label": "label", **columns}, "labels": ["0", "1"]}
    return task_from_spec(spec, "spec.json", tmp_path), tmp_path / f"train{suffix}"


def rows(count: int, sep: str) -> list[str]:
    return [f"第{i}条{sep}{i % 2}" for i in range(count)]


def test_a_tsv_quote_is_text_and_an_unclosed_one_merges_no_rows(tmp_path):
    """TSV as usually written: no quoting. A quote opened on one line and closed ten lines later (CSV quoting would
    make 11 rows one, with the last one's label) leaves 300 rows of 300, each quote kept."""
    spec, path = task(tmp_path, "tsv", ".tsv")
    lines = rows(300, "\t")
    lines[4], lines[14], lines[20] = '"开了没关\t0', '十行以后"\t0', '"整段引号"\t1'
    path.write_text("text\tlabel\n" + "\n".join(lines) + "\n", encoding="utf-8")
    table, report = read_task_file(spec, path, True, spec.labels)
    assert len(table) == 300 and report.summary().startswith(f"{path}: 300 rows kept, 0 lines repaired, 0 rows")
    assert [table.columns["text"][i] for i in (4, 14, 20)] == ['"开了没关', '十行以后"', '"整段引号"']


def test_a_csv_row_spanning_lines_is_read_but_never_silently(tmp_path, caplog):
    """Legal CSV (a quoted field with line breaks) is read as one row, its line breaks spaces; each such row is
    logged with its lines and the summary counts them, so 300 lines giving 290 rows cannot go unnoticed."""
    spec, path = task(tmp_path, "csv", ".csv")
    lines = rows(300, ",")
    lines[4], lines[14] = '"开了没关,0', '十行以后",1'  # a stray quote: legal CSV, lines 6-16 one row
    path.write_text("text,label\n" + "\n".join(lines) + "\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        table, report = read_task_file(spec, path, True, spec.labels)
    assert len(table) == 290 and table.lines[4:6] == [6, 17] and table.columns["label"][4] == "1"
    assert report.spanning_rows == [(6, 16)]
    assert "1 rows span several lines (a quoted field holds line breaks: lines 6-16)" in report.summary()
    assert f"{path}:6-16: one row: a quoted field holds 10 line breaks" in caplog.text


def test_a_tab_separated_file_with_csv_quoting_is_csv_with_a_tab_delimiter(tmp_path):
    spec, path = task(tmp_path, {"type": "csv", "delimiter": "\t"}, ".tsv")
    path.write_text('text\tlabel\n"引号里\t有制表符"\t1\n"他说""好"""\t0\n', encoding="utf-8")
    table, report = read_task_file(spec, path, True, spec.labels)
    assert table.columns["text"] == ["引号里 有制表符", '他说"好"'] and report.repaired_fields == 1


def test_a_line_separator_inside_a_json_string_stays_in_its_row(tmp_path):
    spec, path = task(tmp_path, "jsonl", ".jsonl")
    records = [{"text": "一行\u2028分隔符", "label": 1}, {"text": "第二行", "label": 0}]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\r\n" for r in records), encoding="utf-8")
    table, report = read_task_file(spec, path, True, spec.labels)
    assert table.columns["text"] == ["一行\u2028分隔符", "第二行"] and table.lines == [1, 2] and not report.dropped


def test_predict_py_reads_a_competition_train_file_as_training_does(tmp_path):
    """The labelled layout (id, texts, label) is detected as the competition's, its label column ignored."""
    path = tmp_path / "OCNLI_train.csv"
    path.write_bytes("0\t他来了\t他没来\t2\r\n1\t\"引号\t还是引号\t0\r\n".encode())
    table, report, fmt = read_new_texts(path.name, path.read_bytes(), ["premise", "hypothesis"])
    train, _ = read_task_file(TASKS["ocnli"], path, True, TASKS["ocnli"].labels)
    assert fmt == "tianchi" and set(table.columns) == {"id", "premise", "hypothesis"}
    assert all(table.columns[c] == train.columns[c] for c in table.columns) and table.lines == train.lines
