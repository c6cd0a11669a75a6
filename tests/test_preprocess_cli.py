"""preprocess.py end to end on the bundled data, bad rows through the CLI, and --help."""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
import torch

import preprocess
from helpers import REPO_ROOT, TOKENIZER_DIR
from mtl.args import DataTrainingArguments
from mtl.table import DataFormatError


def run(tmp_path, *extra):
    preprocess.main(["--cleaned_dir", str(tmp_path), "--data_save_dir", str(tmp_path),
                     "--tokenizer_dir", str(TOKENIZER_DIR), *extra])


@pytest.mark.slow
def test_full_bundled_data_is_cached_with_every_row(tmp_path):
    run(tmp_path)  # default data_dir: the bundled tcdata/
    for task, rows in (("ocnli", 21574), ("ocemotion", 35694), ("tnews", 60361)):
        splits = {s: torch.load(tmp_path / f"{task}_processed" / f"{s}.pt", weights_only=True)
                  for s in ("train", "val", "predict")}
        assert len(splits["train"]["ids"]) + len(splits["val"]["ids"]) == rows
        assert set(splits["train"]["ids"]).isdisjoint(splits["val"]["ids"])
        assert splits["predict"]["ids"] == [str(i) for i in range(1500)]
        cleaned = (tmp_path / "cleaned_nlp_round1_data").glob(f"{task.upper()}_train*.csv")
        assert sum(1 for _ in next(cleaned).open(encoding="utf-8")) == rows


def test_bad_row_stops_with_file_and_line_or_is_skipped(tmp_path, small_data_dir, caplog):
    bad_dir = tmp_path / "bad"
    subprocess.run(["cp", "-r", str(small_data_dir), str(bad_dir)], check=True)
    train = bad_dir / "nlp_round1_data" / "TNEWS_train1128.csv"
    lines = train.read_text(encoding="utf-8").split("\n")
    lines[4] = lines[4].rsplit("\t", 1)[0] + "\t999"  # line 5: a label TNEWS does not have
    train.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"TNEWS_train1128.csv:5: label '999'"):
        run(tmp_path, "--data_dir", str(bad_dir), "--tasks", "tnews")
    caplog.set_level("INFO")
    run(tmp_path, "--data_dir", str(bad_dir), "--tasks", "tnews", "--skip_bad_rows")
    assert "TNEWS_train1128.csv:5: dropped: label '999'" in caplog.text
    assert "299 rows kept, 0 lines repaired, 1 rows dropped" in caplog.text
    splits = [torch.load(tmp_path / "tnews_processed" / f"{s}.pt", weights_only=True) for s in ("train", "val")]
    assert sum(len(s["ids"]) for s in splits) == 299


@pytest.mark.slow
def test_help_documents_every_flag():
    out = subprocess.run([sys.executable, str(REPO_ROOT / "code" / "preprocess.py"), "--help"],
                         capture_output=True, text=True, check=True).stdout
    for f in dataclasses.fields(DataTrainingArguments):
        assert f"--{f.name}" in out
        assert f.metadata.get("help"), f.name
