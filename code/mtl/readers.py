"""Reading a task's file (training, preprocess.py): its format's records through the one row collector.

The record generators are in mtl.records (csv, tsv, jsonl) and mtl.tianchi_tsv; mtl.rows.RowCollector maps columns,
repairs and checks rows, and accounts for every one of them in the ReadReport. predict.py reads new texts through the
same two (mtl.new_texts), so the same file gives the same texts there.
"""
from __future__ import annotations

from pathlib import Path
from typing import Collection, Optional

from .decoding import decode_text
from .records import file_records
from .rows import RowCollector, RowRules
from .table import DataFormatError, ReadReport, Table
from .tasks import Task


def _rules(task: Task, with_label: bool, labels: Optional[Collection[str]] = None, skip_bad_rows: bool = False,
               max_rows: Optional[int] = None, unique_ids: bool = False) -> RowRules:
    """How the rows of `task`'s files are checked; `labels`: the label set rows are checked against."""
    return RowRules(task.text_columns, task.id_column, label_column=task.label_column if with_label else None,
                    labels=labels, unique_ids=unique_ids, drop_duplicates=with_label and task.drop_duplicates,
                    skip_bad_rows=skip_bad_rows or task.skip_bad_rows, max_rows=max_rows,
                    repair_texts=task.format.type != "tianchi_tsv",
                    skip_hint="use --skip_bad_rows, or 'skip_bad_rows': true in the task spec, to drop such rows")


def read_task_file(task: Task, path: Path, with_label: bool, labels: Optional[Collection[str]] = None,
                   skip_bad_rows: bool = False, max_rows: Optional[int] = None,
                   unique_ids: bool = False) -> tuple[Table, ReadReport]:
    """One of the task's files in its spec's format, as a Table with the columns id, the text columns and (with_label)
    label. Bad rows (wrong field count, not JSON, an empty text or label, a label outside `labels`, a repeated id with
    `unique_ids`) raise DataFormatError naming file and line, or with skip_bad_rows are dropped and reported. With
    the spec's drop_duplicates a labelled row whose texts and label repeat an earlier row's is dropped and reported
    (so no copy of a train row lands in validation). `max_rows` keeps only the first rows (debug runs)."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file")
    rules = _rules(task, with_label, labels, skip_bad_rows, max_rows, unique_ids)
    text = decode_text(path, path.read_bytes(), task.format.encoding,
                       "set the spec's 'format': {'encoding': ...} to the file's encoding")
    report = ReadReport(str(path))
    # tianchi_tsv: the file's columns in order; csv / tsv: those the header must name
    needed = task.columns(with_label) if task.format.type == "tianchi_tsv" else [
        c for c in (task.id_column, *task.text_columns, rules.label_column) if c]
    return RowCollector(path, rules, report).collect(file_records(path, text, task.format, needed, report))
