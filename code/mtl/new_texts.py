"""New texts to label (predict.py), from any of the layouts a user has at hand, read as training reads them.

Formats (detected from the content, or named): `lines` (one text per line; a sentence pair is two tab-separated
texts), `tianchi` (the competition's layout, `id<TAB>text[<TAB>text2][<TAB>label]`, no header, line repair
included), `tsv` / `csv` (a header naming the columns; TSV with no quoting, CSV with standard quoting) and `jsonl`
(one object per line, fields named like the task's text columns). All but `lines` are the training formats, read by
the same record generators and the same row collector (mtl.records, mtl.rows): a task's own train file gives
predict.py the texts it gave training. An `id` column or field is carried through; without one, a row's id is its
1-based line number (as training numbers the rows of a file without an id column).
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterator, Sequence

from .decoding import decode_text, physical_lines
from .errors import UsageError
from .records import file_records
from .rows import RowCollector, RowRules
from .table import ReadReport, Record, Table
from .tasks import FileFormat
from .tianchi_tsv import ROW_START

FORMATS = ("auto", "lines", "tianchi", "tsv", "csv", "jsonl")
_FILE_FORMATS = {"tianchi": "tianchi_tsv", "tsv": "tsv", "csv": "csv", "jsonl": "jsonl"}  # the spec's names


def _first_line(text: str) -> str:
    return next((line for line in physical_lines(text) if line.strip()), "")


def detect_format(name: str, text: str, text_columns: Sequence[str]) -> str:
    """By the first non-blank line: `<integer id><TAB>`, the task's texts and perhaps a label -> tianchi (whatever
    the suffix: the competition's own files are named .csv); a header naming the task's text columns, tab-separated
    -> tsv, comma-separated -> csv (a one-column header is both: a .csv file is csv, with its quoting); else by
    suffix, .jsonl/.json -> jsonl; anything else -> lines."""
    first = _first_line(text)
    if ROW_START.match(first) and len(first.split("\t")) - len(text_columns) in (1, 2):
        return "tianchi"
    if set(text_columns) <= set(first.split("\t")) and ("\t" in first or Path(name).suffix.lower() != ".csv"):
        return "tsv"
    if set(text_columns) <= set(next(csv.reader([first]), [])):
        return "csv"
    if Path(name).suffix.lower() in (".jsonl", ".json"):
        return "jsonl"
    return "lines"


def _line_records(text: str, text_columns: Sequence[str], report: ReadReport) -> Iterator[Record]:
    """`lines`: each non-blank line is a row of texts (a pair: tab-separated); predict.py's format alone."""
    width = len(text_columns)
    for number, line in enumerate(physical_lines(text), start=1):
        if not line.strip():
            report.blank_lines += 1
            continue
        fields = line.split("\t") if width > 1 else [line]
        if len(fields) == width:
            yield number, dict(zip(text_columns, fields)), ""
        else:
            yield number, None, f"expected {width} tab-separated texts, found {len(fields)}"


def read_new_texts(name: str, data: bytes, text_columns: Sequence[str], fmt: str = "auto",
                   skip_bad_rows: bool = False) -> tuple[Table, ReadReport, str]:
    """Rows of `data` (a file's bytes; `name` names it in messages) with an `id` column and the task's text
    columns; the report counts rows kept, dropped (with reasons) and blank lines; also returns the format read."""
    if fmt not in FORMATS:
        raise UsageError(f"input format {fmt!r} is not one of {FORMATS}")
    text = decode_text(name, data, hint="predict.py reads UTF-8; convert the file (e.g. iconv -t UTF-8)")
    if fmt == "auto":
        fmt = detect_format(name, text, text_columns)
    report = ReadReport(name)
    rules = RowRules(tuple(text_columns), "id", id_required=False, skip_bad_rows=skip_bad_rows,
                     repair_texts=fmt != "tianchi")
    if fmt == "lines":
        records = _line_records(text, text_columns, report)
    else:
        columns = list(text_columns)
        if fmt == "tianchi":  # a test file (id, texts) or a train file (id, texts, label): as its first row has it
            labelled = len(_first_line(text).split("\t")) == len(text_columns) + 2
            columns = ["id", *text_columns, *(["label"] if labelled else [])]
        records = file_records(name, text, FileFormat(_FILE_FORMATS[fmt]), columns, report)
    table, report = RowCollector(name, rules, report).collect(records)
    return table, report, fmt
