"""The one row collector: records of any format -> a Table, every row kept, repaired, or dropped with a reason.

Training (mtl.readers), preprocess.py and predict.py (mtl.new_texts) all read through it, so a file gives the same
rows, texts and ids whichever of them reads it, and a bad row is treated alike: an error naming file and line, or
with skip_bad_rows dropped and reported.
"""
from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass
from typing import Any, Collection, Iterable, Optional

from .labels import label_text
from .table import DataFormatError, DroppedRow, ReadReport, Record, Table

logger = logging.getLogger(__name__)

# A zero-width no-break space (U+FEFF: a BOM that ended up inside a field) or a line break / tab inside a text:
# invisible to the tokenizer, which splits on whitespace anyway, but they would break the TSV files written later.
_REPAIRABLE = re.compile(r"\ufeff|[\t\r\n]+")


@dataclass(frozen=True)
class RowRules:
    """What a kept row holds and must satisfy, and what becomes of the others."""

    text_columns: tuple[str, ...]
    id_column: Optional[str] = None  # None: a row's id is its first line
    id_required: bool = True  # False: a row without the id field takes its line as id (new texts)
    label_column: Optional[str] = None  # None: rows carry no label (test files, new texts)
    labels: Optional[Collection[str]] = None  # the labels a row may have; None: any
    unique_ids: bool = False  # a row repeating an earlier row's id is bad (test files: a submission is keyed by id)
    drop_duplicates: bool = False  # drop (and report) a row repeating an earlier row's texts and label
    skip_bad_rows: bool = False  # drop bad rows, each reported, instead of stopping at the first
    max_rows: Optional[int] = None  # keep only the first rows (debug runs)
    # tianchi_tsv keeps its texts as the competition wrote them (U+FEFF included, as the 2020 caches hold them; its
    # fields cannot hold tabs or line breaks), the other formats' texts lose U+FEFF, tabs and line breaks (counted)
    repair_texts: bool = True
    skip_hint: str = "use --skip_bad_rows to drop such rows"  # how to drop bad rows, said when one stops the read

    def columns(self) -> tuple[str, ...]:
        """The Table's columns: id, the text columns, and label if rows carry one."""
        return ("id", *self.text_columns) + (("label",) if self.label_column else ())


class LabelSpellings:
    """Refuses a file whose labels spell one number two ways ('1' and '1.0', '01' and '1'): they would silently
    become two classes, with the rows of one class split between them."""

    def __init__(self, path: str | os.PathLike):
        self.path = path
        self.first: dict[float, tuple[str, int]] = {}

    def check(self, label: str, line: int) -> None:
        """Raise DataFormatError when `label` is a number an earlier row spelt otherwise."""
        try:
            number = float(label)
        except ValueError:
            return
        if not math.isfinite(number):
            return
        other, other_line = self.first.setdefault(number, (label, line))
        if other != label:
            raise DataFormatError(f"{self.path}:{line}: label {label!r} and label {other!r} (line {other_line}) are "
                                  "the same number written two ways, which would make two classes; write labels "
                                  "consistently")


class _BadRow(Exception):
    """A record that does not become a row: `reason` says why, `kind` is what the report's summary counts it as."""

    def __init__(self, reason: str, kind: str = "malformed"):
        super().__init__(reason)
        self.reason, self.kind = reason, kind


class RowCollector:
    """Collects the records of one file into a Table by `rules`, accounting for each in `report`."""

    def __init__(self, path: str | os.PathLike, rules: RowRules, report: ReadReport):
        self.path, self.rules, self.report = path, rules, report
        self.table = Table({c: [] for c in rules.columns()}, [])
        self.spellings = LabelSpellings(path)
        self.first_of_id: dict[str, int] = {}
        self.first_of_row: dict[tuple[str, ...], int] = {}
        self.label_of_texts: dict[tuple[str, ...], str] = {}
        self.conflicts = 0  # texts seen again with another label

    def collect(self, records: Iterable[Record]) -> tuple[Table, ReadReport]:
        """Every record added (up to max_rows kept); the Table and the report."""
        for line, fields, problem in records:
            if self.rules.max_rows is not None and len(self.table) >= self.rules.max_rows:
                break
            try:
                self._add(line, fields, problem)
            except _BadRow as bad:
                if not self.rules.skip_bad_rows:
                    raise DataFormatError(f"{self.path}:{line}: {bad.reason} ({self.rules.skip_hint})") from None
                self.report.dropped.append(DroppedRow(line, bad.reason, bad.kind))
                logger.warning("%s:%d: dropped: %s", self.path, line, bad.reason)
        if self.conflicts:
            logger.warning("%s: %d texts appear again with another label (kept: the data says both)", self.path,
                           self.conflicts)
        self.report.rows = len(self.table)
        return self.table, self.report

    def _text(self, fields: dict[str, Any], column: str) -> str:
        value = fields.get(column)
        if value is None:
            raise _BadRow(f"no text field {column!r} (fields: {sorted(fields)})")
        if isinstance(value, (dict, list)):
            raise _BadRow(f"field {column!r} holds a JSON {'object' if isinstance(value, dict) else 'array'}, "
                          "not a text")
        value = str(value)
        if not self.rules.repair_texts:
            return value
        repaired = _REPAIRABLE.sub(lambda m: "" if m.group() == "\ufeff" else " ", value)
        self.report.repaired_fields += repaired != value
        return repaired

    def _id(self, fields: dict[str, Any], line: int) -> str:
        column = self.rules.id_column
        if column is None or (fields.get(column) is None and not self.rules.id_required):
            return str(line)
        if fields.get(column) is None:
            raise _BadRow(f"no id field {column!r} (fields: {sorted(fields)})")
        return str(fields[column])

    def _add(self, line: int, fields: Optional[dict[str, Any]], problem: str = "") -> None:
        """Keep one record as a row, or raise _BadRow saying why not; a duplicate row is dropped and reported."""
        rules = self.rules
        if fields is None:
            raise _BadRow(problem)
        texts = [self._text(fields, column) for column in rules.text_columns]
        row_id = self._id(fields, line)
        label = label_text(fields.get(rules.label_column)) if rules.label_column else ""
        if not all(t.strip() for t in texts):
            raise _BadRow("empty text", "empty text")
        if rules.label_column and not label:
            raise _BadRow("empty label", "empty label")
        if rules.label_column and rules.labels is not None and label not in rules.labels:
            raise _BadRow(f"label {label!r} is not one of {sorted(rules.labels)}", "unknown label")
        if rules.unique_ids and row_id in self.first_of_id:
            raise _BadRow(f"id {row_id!r} repeats the row at line {self.first_of_id[row_id]}; ids must be unique",
                          "repeated id")
        if rules.label_column:
            self.spellings.check(label, line)
            if rules.drop_duplicates and self._is_duplicate(line, texts, label):
                return
        self.table.columns["id"].append(row_id)
        for column, value in zip(rules.text_columns, texts):
            self.table.columns[column].append(value)
        if rules.label_column:
            self.table.columns["label"].append(label)
        self.table.lines.append(line)
        self.first_of_id.setdefault(row_id, line)

    def _is_duplicate(self, line: int, texts: list[str], label: str) -> bool:
        key = (*texts, label)
        if key in self.first_of_row:
            reason = f"repeats the texts and label of line {self.first_of_row[key]}"
            self.report.dropped.append(DroppedRow(line, reason, "duplicate"))
            logger.info("%s:%d: dropped (the spec's drop_duplicates): %s", self.path, line, reason)
            return True
        self.first_of_row[key] = line
        self.conflicts += self.label_of_texts.setdefault(tuple(texts), label) != label
        return False
