"""The competition's tianchi_tsv format: exact row counts, quotes and CRLF kept as text, line repair, bad-row errors."""
from __future__ import annotations

import pytest

from helpers import DATA_DIR
from mtl.readers import read_task_file
from mtl.table import DataFormatError
from mtl.tasks import ROUND1_DIR, ROUND2_DIR, TASKS

EMOTION = TASKS["ocemotion"]  # id, text, label
EXPECTED_ROWS = {
    ("ocnli", "train"): 21574, ("ocemotion", "train"): 35694, ("tnews", "train"): 60361,
    **{(t, s): 1500 for t in TASKS for s in ("a", "b")},
}


def read(task_name: str, split: str, **kwargs):
    task = TASKS[task_name]
    path = task.train_path(DATA_DIR) if split == "train" else task.test_path(split, DATA_DIR)
    with_label = split == "train"
    return read_task_file(task, path, with_label, task.labels if with_label else None, **kwargs)


@pytest.mark.parametrize("task_name,split", sorted(EXPECTED_ROWS))
def test_bundled_files_read_with_exact_row_counts(task_name, split):
    table, report = read(task_name, split)
    assert len(table) == EXPECTED_ROWS[(task_name, split)]
    assert report.rows == len(table) and report.repaired_lines == 0 and not report.dropped


def test_quote_characters_survive_verbatim():
    raw_lines = (DATA_DIR / ROUND1_DIR / "OCNLI_train1128.csv").read_text(encoding="utf-8").splitlines()
    quoted = [line for line in raw_lines if '"' in line]
    assert quoted, "the bundled OCNLI train file has rows with quote characters"
    table, _ = read("ocnli", "train")
    rows = {"\t".join(r) for r in zip(*(table.columns[c] for c in ("id", "premise", "hypothesis", "label")))}
    for line in quoted:
        assert line in rows


def test_crlf_test_files_keep_no_carriage_returns():
    assert b"\r\n" in (DATA_DIR / ROUND2_DIR / "ocnli_test_B.csv").read_bytes()
    table, _ = read("ocnli", "b")
    assert table.columns["id"][0] == "1500" and table.columns["id"][-1] == "2999"
    assert not any("\r" in v for col in table.columns.values() for v in col)


def test_bom_is_tolerated(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf0\t\xe4\xbd\xa0\xe5\xa5\xbd\tsadness\r\n")
    table, _ = read_task_file(EMOTION, path, True)
    assert table.columns == {"id": ["0"], "text": ["你好"], "label": ["sadness"]}


def test_broken_lines_are_joined_counted_and_reported(tmp_path):
    # The defect of the original train files: a newline inside a text splits one row over several lines.
    path = tmp_path / "broken.csv"
    path.write_text("0\t今天天气\n真好，出去玩\tlike\n1\t好难过\tsadness\n2\t第一行\n第二行\n第三行\tanger\n",
                    encoding="utf-8")
    table, report = read_task_file(EMOTION, path, True, EMOTION.labels)
    assert table.columns["text"] == ["今天天气真好，出去玩", "好难过", "第一行第二行第三行"]
    assert table.lines == [1, 3, 4]
    assert report.repaired_lines == 3 and report.rows == 3
    assert "3 lines repaired" in report.summary()


@pytest.mark.parametrize("line,reason", [
    ("7\t好难过\tsadness\textra", "expected 3 tab-separated columns"),
    ("7\t  \tsadness", "empty text"),
    ("7\t好难过\tjoy", "label 'joy' is not one of"),
])
def test_bad_row_error_names_file_and_line_and_skip_drops_it(tmp_path, line, reason):
    path = tmp_path / "bad.csv"
    path.write_text(f"0\t开心\thappiness\n{line}\n9\t生气\tanger\n", encoding="utf-8")
    args = (EMOTION, path, True, EMOTION.labels)
    with pytest.raises(DataFormatError) as err:
        read_task_file(*args)
    assert f"{path}:2: {reason}" in str(err.value)
    table, report = read_task_file(*args, skip_bad_rows=True)
    assert table.columns["id"] == ["0", "9"]
    assert [(d.line, d.reason[:len(reason)]) for d in report.dropped] == [(2, reason)]
    assert "1 rows dropped" in report.summary()


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"0\tok\tlike\n1\t\xe9t\xe9\tlike\n")
    with pytest.raises(DataFormatError, match=r"latin1.csv:2: not valid UTF-8"):
        read_task_file(EMOTION, path, True)
