"""Reading a task's file in the format its spec names, with row accounting.

tianchi_tsv goes to mtl.io.read_tsv (the competition's line-repairing reader). csv / tsv are parsed by the csv module
and jsonl by json: a generic file is read by a kept library, and this module only maps columns, repairs and checks
rows, and accounts for every one of them in the ReadReport.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import re
from pathlib import Path
from typing import Any, Collection, Iterator, Optional

from .io import DataFormatError, DroppedRow, LabelSpellings, ReadReport, Table, read_tsv
from .labels import label_text
from .tasks import Task

logger = logging.getLogger(__name__)

# A zero-width no-break space (U+FEFF: a BOM that ended up inside a field) or a line break / tab inside a text:
# invisible to the tokenizer, which splits on whitespace anyway, but they would break the TSV files written later.
_REPAIRABLE = re.compile(r"\ufeff|[\t\r\n]+")


def _decode(path: Path, data: bytes, encoding: str) -> str:
    try:
        return data.decode("utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding)
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataFormatError(f"{path}:{line}: not valid {encoding} ({err.reason}); set the spec's "
                              f"'format': {{'encoding': ...}} to the file's encoding") from None
    except LookupError:
        raise DataFormatError(f"{path}: unknown encoding {encoding!r} in the task spec") from None


def _delimited_records(path: Path, text: str, task: Task) -> Iterator[tuple[int, Optional[dict[str, str]], str]]:
    """(start line, {column: value} or None, why not) for each record of a csv/tsv file."""
    fmt = task.format
    delimiter = fmt.delimiter or ("\t" if fmt.type == "tsv" else ",")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header = list(fmt.column_names) if fmt.column_names else None
    line = 1
    try:
        for row in reader:
            start, line = line, reader.line_num + 1
            if not row:
                yield start, None, "blank"
            elif header is None:
                header = [c.strip().lstrip("\ufeff") for c in row]
            elif len(row) != len(header):
                yield start, None, f"expected {len(header)} {delimiter!r}-separated fields ({', '.join(header)}), found {len(row)}"
            else:
                yield start, dict(zip(header, row)), ""
    except csv.Error as err:
        raise DataFormatError(f"{path}:{reader.line_num}: {err} (not a well-formed {fmt.type.upper()} file)") from None


def _jsonl_records(path: Path, text: str) -> Iterator[tuple[int, Optional[dict[str, Any]], str]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            yield number, None, "blank"
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            yield number, None, f"not a JSON object ({err.msg})"
            continue
        yield (number, record, "") if isinstance(record, dict) else (number, None, "not a JSON object")


def _check_columns(path: Path, task: Task, first: dict[str, Any], with_label: bool) -> None:
    needed = [task.id_column] if task.id_column else []
    needed += [*task.text_columns, *([task.label_column] if with_label else [])]
    missing = [c for c in needed if c not in first]
    if missing:
        raise DataFormatError(f"{path}: no column(s) {missing} (the file has {list(first)}); fix the task spec's "
                              "'columns' or the file's header")


def read_generic(task: Task, path: Path, with_label: bool, labels: Optional[Collection[str]] = None,
                 skip_bad_rows: bool = False, max_rows: Optional[int] = None, unique_ids: bool = False,
                 data: Optional[bytes] = None) -> tuple[Table, ReadReport]:
    """A csv / tsv / jsonl file of `task` as a Table with columns id, the text columns and (with_label) label.

    Repaired (counted): U+FEFF, tabs and line breaks inside a text. Bad (error, or with skip_bad_rows dropped and
    reported): wrong field count, not JSON, an empty text or label, a label outside `labels`, a repeated id in a
    test file. With the spec's drop_duplicates a labelled row whose texts and label repeat an earlier row's is
    dropped and reported (so no copy of a train row lands in validation).
    """
    path = Path(path)
    report = ReadReport(str(path))
    table = Table({c: [] for c in task.columns(with_label)}, [])
    if data is None:
        if not path.is_file():
            raise DataFormatError(f"{path}: no such file")
        data = path.read_bytes()
    text = _decode(path, data, task.format.encoding)
    records = _jsonl_records(path, text) if task.format.type == "jsonl" else _delimited_records(path, text, task)
    checked = False
    first_of_id: dict[str, int] = {}
    first_of_row: dict[tuple, int] = {}
    label_of_texts: dict[tuple, str] = {}
    conflicts = 0
    spellings = LabelSpellings(path)
    for line, record, why in records:
        if max_rows is not None and len(table) >= max_rows:
            break
        if why == "blank":
            report.blank_lines += 1
            continue
        reason, kind = why, "malformed"
        if record is not None:
            if not checked:
                _check_columns(path, task, record, with_label)
                checked = True
            texts = []
            for column in task.text_columns:
                value = record.get(column)
                value = "" if value is None else str(value)
                repaired = _REPAIRABLE.sub(lambda m: "" if m.group() == "\ufeff" else " ", value)
                report.repaired_fields += repaired != value
                texts.append(repaired)
            row_id = str(record[task.id_column]) if task.id_column else str(line)
            label = label_text(record.get(task.label_column)) if with_label else ""
            if not all(t.strip() for t in texts):
                reason, kind = "empty text", "empty text"
            elif with_label and not label:
                reason, kind = "empty label", "empty label"
            elif with_label and labels is not None and label not in labels:
                reason, kind = f"label {label!r} is not one of {sorted(labels)}", "unknown label"
            elif unique_ids and row_id in first_of_id:
                reason, kind = f"id {row_id!r} repeats the row at line {first_of_id[row_id]}; ids must be unique", "repeated id"
        if reason:
            if not (skip_bad_rows or task.skip_bad_rows):
                raise DataFormatError(f"{path}:{line}: {reason} (use --skip_bad_rows, or 'skip_bad_rows': true in "
                                      "the task spec, to drop such rows)")
            report.dropped.append(DroppedRow(line, reason, kind))
            logger.warning("%s:%d: dropped: %s", path, line, reason)
            continue
        if with_label:
            spellings.check(label, line)
        if with_label and task.drop_duplicates:
            key = (*texts, label)
            if key in first_of_row:
                reason = f"repeats the texts and label of line {first_of_row[key]}"
                report.dropped.append(DroppedRow(line, reason, "duplicate"))
                logger.info("%s:%d: dropped (the spec's drop_duplicates): %s", path, line, reason)
                continue
            first_of_row[key] = line
            conflicts += label_of_texts.setdefault(tuple(texts), label) != label
        table.columns["id"].append(row_id)
        for column, value in zip(task.text_columns, texts):
            table.columns[column].append(value)
        if with_label:
            table.columns["label"].append(label)
        table.lines.append(line)
        if unique_ids:
            first_of_id.setdefault(row_id, line)
    if conflicts:
        logger.warning("%s: %d texts appear again with another label (kept: the data says both)", path, conflicts)
    report.rows = len(table)
    return table, report


def read_task_file(task: Task, path: Path, with_label: bool, labels: Optional[Collection[str]] = None,
                   skip_bad_rows: bool = False, max_rows: Optional[int] = None,
                   unique_ids: bool = False) -> tuple[Table, ReadReport]:
    """One of the task's files in its spec's format; `labels`: the label set rows are checked against."""
    if task.format.type == "tianchi_tsv":
        return read_tsv(path, task.columns(with_label), text_columns=task.text_columns,
                        labels=labels if with_label else None, skip_bad_rows=skip_bad_rows or task.skip_bad_rows,
                        max_rows=max_rows, unique_ids=unique_ids)
    return read_generic(task, path, with_label, labels, skip_bad_rows, max_rows, unique_ids)
