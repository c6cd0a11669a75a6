"""One small record generator per file format: a file's text -> (line, fields by column, why not) for each row.

tianchi_tsv lives in mtl.tianchi_tsv (line repair). `csv` is parsed by the csv module (RFC 4180 quoting: delimiters,
quotes and line breaks inside a quoted field). `tsv` is TSV as usually written: split on tabs, no quoting, so a `"` is
text and a row is one line (a tab-separated file with CSV quoting is `csv` with `"delimiter": "\\t"`). jsonl is one
JSON object per line, parsed by json. Bad rows are yielded with their reason, not raised: mtl.rows.RowCollector
decides, for every format alike, whether a row is kept, dropped or stops the read.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import os
from typing import Iterator, Optional, Sequence

from .decoding import physical_lines
from .table import DataFormatError, ReadReport, Record
from .tasks import FileFormat
from .tianchi_tsv import tianchi_records

logger = logging.getLogger(__name__)


def _quoted_rows(path: str | os.PathLike, text: str, delimiter: str, report: ReadReport
                 ) -> Iterator[tuple[int, Optional[list[str]]]]:
    """(first line, fields or None for a blank line) of a CSV file; a row whose quoted field spans lines is legal
    CSV, and read, but never silently: a stray quote joins every line up to the next quote into one row, so each
    such row is logged with its lines and counted in the report's summary."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    line = 1
    try:
        for row in reader:
            start, line = line, reader.line_num + 1
            if row and reader.line_num > start:
                report.spanning_rows.append((start, reader.line_num))
                logger.warning("%s:%d-%d: one row: a quoted field holds %d line breaks (each read as a space); if a "
                               "quote on line %d was meant as text, double it inside a quoted field (\"\")", path,
                               start, reader.line_num, reader.line_num - start, start)
            yield start, row or None
    except csv.Error as err:
        raise DataFormatError(f"{path}:{reader.line_num}: {err} (not a well-formed CSV file)") from None


def _plain_rows(text: str, delimiter: str) -> Iterator[tuple[int, Optional[list[str]]]]:
    """(line, fields or None for a blank line) of a file with one row a line and no quoting."""
    for number, line in enumerate(physical_lines(text), start=1):
        yield number, line.split(delimiter) if line.strip() else None


def _named(header: list[str], needed: Sequence[str], where: str) -> list[str]:
    missing = [c for c in needed if c not in header]
    if missing:
        raise DataFormatError(f"{where} has no column(s) {missing} (it has {header}); the columns {list(needed)} "
                              "must be named")
    return header


def delimited_records(path: str | os.PathLike, text: str, fmt: FileFormat, needed: Sequence[str],
                      report: ReadReport) -> Iterator[Record]:
    """Each row of a csv / tsv file, its fields named by the header (or the spec's column_names); a header that
    lacks a column in `needed` stops the read."""
    delimiter = fmt.delimiter or ("\t" if fmt.type == "tsv" else ",")
    rows = _quoted_rows(path, text, delimiter, report) if fmt.type == "csv" else _plain_rows(text, delimiter)
    header = _named(list(fmt.column_names), needed, f"{path}: the spec's column_names") if fmt.column_names else None
    for line, fields in rows:
        if fields is None:
            report.blank_lines += 1
        elif header is None:
            header = _named([c.strip().lstrip("\ufeff") for c in fields], needed, f"{path}:{line}: the header")
        elif len(fields) != len(header):
            yield line, None, f"expected {len(header)} columns ({', '.join(header)}), found {len(fields)}"
        else:
            yield line, dict(zip(header, fields)), ""


def jsonl_records(text: str, report: ReadReport) -> Iterator[Record]:
    """Each line of a JSON-lines file that holds a JSON object."""
    for number, line in enumerate(physical_lines(text), start=1):
        if not line.strip():
            report.blank_lines += 1
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            yield number, None, f"not a JSON object ({err.msg})"
            continue
        yield (number, record, "") if isinstance(record, dict) else (number, None, "not a JSON object")


def file_records(path: str | os.PathLike, text: str, fmt: FileFormat, columns: Sequence[str],
                 report: ReadReport) -> Iterator[Record]:
    """The records of a file in `fmt`; `columns`: tianchi_tsv, the file's columns in order; csv / tsv, the columns
    its header must name; jsonl, unused (each object names its fields)."""
    if fmt.type == "tianchi_tsv":
        return tianchi_records(path, text, columns, report)
    if fmt.type == "jsonl":
        return jsonl_records(text, report)
    return delimited_records(path, text, fmt, columns, report)
