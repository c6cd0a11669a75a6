"""New texts to label, from any of the layouts a user has at hand, with every row accounted for.

Formats (detected from the content, or named): `lines` (one text per line; a sentence pair is two tab-separated texts), `tianchi` (the competition's test
layout, `id<TAB>text[<TAB>text2]`, no header: read by the training reader, line repair included), `tsv` / `csv`
(a header naming the columns; the csv module reads them: TSV with quotes as text, CSV with standard quoting) and
`jsonl` (one object per line, fields named like the task's text columns). An `id` column or field is carried
through; without one, a row's id is its 1-based line number.
"""
from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import Optional, Sequence

from .errors import UsageError
from .io import ROW_START, DataFormatError, DroppedRow, ReadReport, Table, decode_utf8, read_tsv

logger = logging.getLogger(__name__)

FORMATS = ("auto", "lines", "tianchi", "tsv", "csv", "jsonl")


def detect_format(name: str, text: str, text_columns: Sequence[str]) -> str:
    """By the first non-blank line: `<integer id><TAB>` and the task's column count -> tianchi (whatever the suffix:
    the competition's own files are named .csv); a header naming the task's text columns, tab-separated -> tsv,
    comma-separated -> csv (a one-column header is both: a .csv file is csv, with its quoting); else by suffix,
    .jsonl/.json -> jsonl; anything else -> lines."""
    first = next((line for line in _lines(text) if line.strip()), "")
    if ROW_START.match(first) and len(first.split("\t")) == 1 + len(text_columns):
        return "tianchi"
    if set(text_columns) <= set(first.split("\t")) and ("\t" in first or Path(name).suffix.lower() != ".csv"):
        return "tsv"
    if set(text_columns) <= set(next(csv.reader([first]), [])):
        return "csv"
    if Path(name).suffix.lower() in (".jsonl", ".json"):
        return "jsonl"
    return "lines"


class _Rows:
    """Collects rows into a Table, or drops bad ones into the report (or raises, naming file and line)."""

    def __init__(self, name: str, text_columns: Sequence[str], skip_bad_rows: bool):
        self.name, self.text_columns, self.skip_bad_rows = name, list(text_columns), skip_bad_rows
        self.table = Table({"id": [], **{c: [] for c in text_columns}}, [])
        self.report = ReadReport(name)

    def add(self, line: int, row_id: Optional[str], texts: Optional[Sequence[str]], reason: Optional[str] = None):
        if reason is None and any(not t.strip() for t in texts):
            reason = "empty text"
        if reason is not None:
            if not self.skip_bad_rows:
                raise DataFormatError(f"{self.name}:{line}: {reason} (use --skip_bad_rows to drop such rows)")
            self.report.dropped.append(DroppedRow(line, reason))
            logger.warning("%s:%d: dropped: %s", self.name, line, reason)
            return
        self.table.columns["id"].append(str(line) if row_id is None else str(row_id))
        for column, value in zip(self.text_columns, texts):
            self.table.columns[column].append(value)
        self.table.lines.append(line)

    def done(self) -> tuple[Table, ReadReport]:
        self.report.rows = len(self.table)
        return self.table, self.report


def _lines(text: str) -> list[str]:
    """Physical lines as an editor numbers them: split at LF only (str.splitlines also splits at U+2028 and other
    separators that may sit inside a text), CR of CRLF removed, no empty line after the final line end."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def _read_lines(rows: _Rows, text: str) -> None:
    width = len(rows.text_columns)
    for number, line in enumerate(_lines(text), start=1):
        if not line.strip():
            rows.report.blank_lines += 1
            continue
        fields = line.split("\t") if width > 1 else [line]
        reason = None if len(fields) == width else f"expected {width} tab-separated texts, found {len(fields)}"
        rows.add(number, None, fields, reason)


def _read_header_table(rows: _Rows, text: str, delimiter: str) -> None:
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL  # in TSV a quote is text
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
    header = next(reader, None)
    missing = [c for c in rows.text_columns if header is None or c not in header]
    if missing:
        raise DataFormatError(f"{rows.name}:1: the header has no column {missing[0]!r} (it has {header}); name the "
                              f"task's text columns {rows.text_columns} in the first line")
    index = {c: header.index(c) for c in rows.text_columns}
    id_index = header.index("id") if "id" in header else None
    line = reader.line_num
    for fields in reader:
        start, line = line + 1, reader.line_num
        if not fields or fields == [""]:
            rows.report.blank_lines += 1
            continue
        if len(fields) != len(header):
            rows.add(start, None, None, f"expected {len(header)} columns ({', '.join(header)}), found {len(fields)}")
            continue
        rows.add(start, None if id_index is None else fields[id_index], [fields[index[c]] for c in rows.text_columns])


def _read_jsonl(rows: _Rows, text: str) -> None:
    for number, line in enumerate(_lines(text), start=1):
        if not line.strip():
            rows.report.blank_lines += 1
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            rows.add(number, None, None, f"not a JSON object ({err.msg})")
            continue
        if not isinstance(record, dict):
            rows.add(number, None, None, "not a JSON object")
            continue
        missing = [c for c in rows.text_columns if not isinstance(record.get(c), str)]
        if missing:
            rows.add(number, None, None, f"no text field {missing[0]!r} (fields: {sorted(record)})")
            continue
        rows.add(number, record.get("id"), [record[c] for c in rows.text_columns])


def read_new_texts(name: str, data: bytes, text_columns: Sequence[str], fmt: str = "auto",
                   skip_bad_rows: bool = False) -> tuple[Table, ReadReport, str]:
    """Rows of `data` (a file's bytes; `name` names it in messages) with an `id` column and the task's text
    columns; the report counts rows kept, dropped (with reasons) and blank lines; also returns the format read."""
    if fmt not in FORMATS:
        raise UsageError(f"input format {fmt!r} is not one of {FORMATS}")
    text = decode_utf8(Path(name), data)
    if fmt == "auto":
        fmt = detect_format(name, text, text_columns)
    if fmt == "tianchi":
        table, report = read_tsv(name, ("id", *text_columns), text_columns=text_columns, skip_bad_rows=skip_bad_rows,
                                 data=data)
        return table, report, fmt
    rows = _Rows(name, text_columns, skip_bad_rows)
    if fmt == "lines":
        _read_lines(rows, text)
    elif fmt == "jsonl":
        _read_jsonl(rows, text)
    else:
        _read_header_table(rows, text, "\t" if fmt == "tsv" else ",")
    table, report = rows.done()
    return table, report, fmt
