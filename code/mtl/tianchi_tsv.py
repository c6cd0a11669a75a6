"""The competition's TSV layout: its record generator (lossless, with line repair) and its writer.

The files are tab-separated with no header and no quoting: a quote character is text. The 2020 code read
them with `pd.read_csv(sep='\t')`, whose quote handling swallowed 4,609 OCNLI and 379 OCEMOTION rows of the
bundled files; this reader splits on tabs and nothing else, so every physical line is accounted for.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Iterator, Sequence

from .atomic_write import write_text_atomic
from .decoding import physical_lines
from .table import DataFormatError, ReadReport, Record, Table

logger = logging.getLogger(__name__)

# A physical line that does not start like this continues the previous row (a text broken across lines).
ROW_START = re.compile(r"\d+\t")


def _joined_rows(path: str | os.PathLike, text: str, report: ReadReport) -> Iterator[tuple[int, str]]:
    """(start line, logical row) after joining continuation lines; LF or CRLF line ends."""
    start, buffer = 0, None
    for number, line in enumerate(physical_lines(text), start=1):
        if ROW_START.match(line):
            if buffer is not None:
                yield start, buffer
            start, buffer = number, line
        elif line == "":
            report.blank_lines += 1
        elif buffer is None:
            raise DataFormatError(f"{path}:{number}: the first row does not start with '<integer id><tab>'")
        else:
            # The row's text was broken by a newline; the newline itself cannot survive in a TSV field.
            buffer += line
            report.repaired_lines += 1
            logger.info("%s:%d: joined to the row starting at line %d", path, number, start)
    if buffer is not None:
        yield start, buffer


def tianchi_records(path: str | os.PathLike, text: str, columns: Sequence[str], report: ReadReport
                    ) -> Iterator[Record]:
    """Each row of a headerless, quote-free TSV whose fields are `columns` in order, broken lines joined."""
    for line, row in _joined_rows(path, text, report):
        fields = row.split("\t")
        if len(fields) != len(columns):
            yield line, None, (f"expected {len(columns)} tab-separated columns ({', '.join(columns)}), "
                               f"found {len(fields)}")
        else:
            yield line, dict(zip(columns, fields)), ""


def write_tsv(path: str | os.PathLike, table: Table, columns: Sequence[str]) -> None:
    """Write rows as headerless TSV with LF line ends, atomically."""
    rows = zip(*(table.columns[c] for c in columns))
    write_text_atomic(Path(path), "".join("\t".join(r) + "\n" for r in rows))
