"""The rows read from one file (a Table, stored by column) and what happened to each of its lines (a ReadReport)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from .errors import UsageError

# One row as a format's generator yields it to mtl.readers.RowCollector: (its first line, its fields by column name,
# or None when the row could not be split into fields, why not)
Record = tuple[int, Optional[dict[str, Any]], str]


class DataFormatError(UsageError):
    """A file or row that cannot be used; the message names the file and the 1-based line."""


@dataclass
class DroppedRow:
    line: int
    reason: str
    kind: str = "malformed"  # what the summary counts it as


@dataclass
class ReadReport:
    """What happened to every physical line of one file."""

    path: str
    rows: int = 0  # rows kept
    repaired_lines: int = 0  # continuation lines joined to the row before them (tianchi_tsv)
    repaired_fields: int = 0  # texts with U+FEFF, tabs or line breaks removed (csv / tsv / jsonl formats)
    blank_lines: int = 0  # empty physical lines (not rows)
    spanning_rows: list[tuple[int, int]] = field(default_factory=list)  # csv: (first, last line) of a multi-line row
    dropped: list[DroppedRow] = field(default_factory=list)

    def summary(self) -> str:
        text = (
            f"{self.path}: {self.rows} rows kept, {self.repaired_lines} lines repaired, "
            f"{len(self.dropped)} rows dropped"
        )
        if self.dropped:
            kinds = Counter(row.kind for row in self.dropped)
            text += " (" + ", ".join(f"{n} {kind}" for kind, n in kinds.items()) + ")"
        if self.spanning_rows:
            shown = ", ".join(f"{first}-{last}" for first, last in self.spanning_rows[:3])
            more = ", ..." if len(self.spanning_rows) > 3 else ""
            text += (f", {len(self.spanning_rows)} rows span several lines (a quoted field holds line breaks: "
                     f"lines {shown}{more})")
        if self.repaired_fields:
            text += f", {self.repaired_fields} texts repaired (U+FEFF, tab or line break removed)"
        if self.blank_lines:
            text += f", {self.blank_lines} blank lines skipped"
        return text


@dataclass
class Table:
    """Rows of one file, stored by column; `lines` holds the physical line where each row starts."""

    columns: dict[str, list[str]]
    lines: list[int]

    def __len__(self) -> int:
        return len(self.lines)

    def extend(self, other: "Table") -> None:
        """Append `other`'s rows (same columns)."""
        for name, values in self.columns.items():
            values.extend(other.columns[name])
        self.lines.extend(other.lines)

    def select(self, indices: Sequence[int]) -> "Table":
        """The rows at `indices`, in that order."""
        return Table({k: [v[i] for i in indices] for k, v in self.columns.items()}, [self.lines[i] for i in indices])
