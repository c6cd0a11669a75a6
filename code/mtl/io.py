"""Lossless reading of the competition's TSV files, line repair, row accounting and atomic writes.

The files are tab-separated with no header and no quoting: a quote character is text. The 2020 code read
them with `pd.read_csv(sep='\t')`, whose quote handling swallowed 4,609 OCNLI and 379 OCEMOTION rows of the
bundled files; this reader splits on tabs and nothing else, so every physical line is accounted for.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Collection, Iterator, Optional, Sequence

from .errors import UsageError

logger = logging.getLogger(__name__)

# A physical line that does not start like this continues the previous row (a text broken across lines).
ROW_START = re.compile(r"\d+\t")


class DataFormatError(UsageError):
    """A file or row that cannot be used; the message names the file and the 1-based line."""


@dataclass
class DroppedRow:
    line: int
    reason: str
    kind: str = "bad row"  # what the summary counts it as


@dataclass
class ReadReport:
    """What happened to every physical line of one file."""

    path: str
    rows: int = 0  # rows kept
    repaired_lines: int = 0  # continuation lines joined to the row before them
    repaired_fields: int = 0  # texts with U+FEFF, tabs or line breaks removed (csv / tsv / jsonl formats)
    blank_lines: int = 0  # empty physical lines (not rows)
    dropped: list[DroppedRow] = field(default_factory=list)

    def summary(self) -> str:
        text = (
            f"{self.path}: {self.rows} rows kept, {self.repaired_lines} lines repaired, "
            f"{len(self.dropped)} rows dropped"
        )
        if self.dropped:
            kinds = Counter(row.kind for row in self.dropped)
            text += " (" + ", ".join(f"{n} {kind}" for kind, n in kinds.items()) + ")"
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
        for name, values in self.columns.items():
            values.extend(other.columns[name])
        self.lines.extend(other.lines)

    def select(self, indices: Sequence[int]) -> "Table":
        return Table({k: [v[i] for i in indices] for k, v in self.columns.items()}, [self.lines[i] for i in indices])


def decode_utf8(path: Path, data: bytes) -> str:
    """UTF-8 text of a file (a BOM tolerated); undecodable bytes raise DataFormatError naming the line."""
    try:
        return data.decode("utf-8-sig")  # tolerates a BOM
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataFormatError(f"{path}:{line}: not valid UTF-8 ({err.reason})") from None


class LabelSpellings:
    """Refuses a file whose labels spell one number two ways ('1' and '1.0', '01' and '1'): they would silently
    become two classes, with the rows of one class split between them."""

    def __init__(self, path: str | os.PathLike):
        self.path = path
        self.first: dict[float, tuple[str, int]] = {}

    def check(self, label: str, line: int) -> None:
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


def _physical_rows(path: Path, text: str, report: ReadReport) -> Iterator[tuple[int, str]]:
    """Yield (start line, logical row) after joining continuation lines; LF or CRLF line ends."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final line end
    start, buffer = 0, None
    for number, line in enumerate(lines, start=1):
        line = line.removesuffix("\r")
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


def read_tsv(
    path: str | os.PathLike,
    columns: Sequence[str],
    text_columns: Sequence[str] = (),
    labels: Optional[Collection[str]] = None,
    skip_bad_rows: bool = False,
    max_rows: Optional[int] = None,
    data: Optional[bytes] = None,
    unique_ids: bool = False,
) -> tuple[Table, ReadReport]:
    """Read a headerless, quote-free TSV into a Table, repairing broken lines and validating every row.

    A row is bad when it has the wrong number of columns, an empty text column, or (when `labels` is given)
    a label outside `labels`. A bad row raises DataFormatError naming file and line, or with `skip_bad_rows`
    is dropped and recorded in the report. `max_rows` keeps only the first rows (debug runs). `data`: the
    file's bytes when they do not come from `path` (standard input), which then only names them in messages.
    `unique_ids`: a row repeating an earlier row's id is bad too (test files: a submission is keyed by id).
    """
    path = Path(path)
    report = ReadReport(str(path))
    table = Table({c: [] for c in columns}, [])
    label_index = columns.index("label") if "label" in columns else None
    text_indices = [columns.index(c) for c in text_columns]
    first_line_of_id: dict[str, int] = {}
    spellings = LabelSpellings(path)
    id_index = columns.index("id") if unique_ids else 0
    if data is None:
        if not path.is_file():
            raise DataFormatError(f"{path}: no such file")
        data = path.read_bytes()
    for line, row in _physical_rows(path, decode_utf8(path, data), report):
        if max_rows is not None and len(table) >= max_rows:
            break
        fields = row.split("\t")
        reason = None
        if len(fields) != len(columns):
            reason = f"expected {len(columns)} tab-separated columns ({', '.join(columns)}), found {len(fields)}"
        elif any(not fields[i].strip() for i in text_indices):
            reason = "empty text"
        elif labels is not None and label_index is not None and fields[label_index] not in labels:
            reason = f"label {fields[label_index]!r} is not one of {sorted(labels)}"
        elif unique_ids and fields[id_index] in first_line_of_id:
            reason = f"id {fields[id_index]!r} repeats the row at line {first_line_of_id[fields[id_index]]}; ids must be unique"
        if reason is not None:
            if not skip_bad_rows:
                raise DataFormatError(f"{path}:{line}: {reason} (use --skip_bad_rows to drop such rows)")
            report.dropped.append(DroppedRow(line, reason))
            logger.warning("%s:%d: dropped: %s", path, line, reason)
            continue
        if label_index is not None:
            spellings.check(fields[label_index], line)
        for name, value in zip(columns, fields):
            table.columns[name].append(value)
        table.lines.append(line)
        if unique_ids:
            first_line_of_id.setdefault(fields[id_index], line)
    report.rows = len(table)
    return table, report


# A writer killed by SIGKILL (or a power cut) leaves its temporary file behind: nothing can clean up after it.
# The next write to the same target removes such leftovers, but only those untouched for this long: a temporary file
# being written right now (another process writing the same target: two nodes sharing storage) is younger, because
# every write updates its mtime and every writer here fills its file straight after creating it. An age test needs
# no lock, and a minute is far longer than any pause between creating a temporary file and writing to it.
STALE_TMP_SECONDS = 60.0


def _tmp_pattern(name: str) -> re.Pattern:
    """The names tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp") gives: 8 characters of its alphabet between
    (exactly: a target `a` must not claim `.a.b.XXXXXXXX.tmp`, a leftover of the target `a.b`)."""
    return re.compile(re.escape(f".{name}.") + r"[a-z0-9_]{8}" + re.escape(".tmp"))


def remove_stale_tmp_files(path: str | os.PathLike, older_than: float = STALE_TMP_SECONDS) -> list[Path]:
    """Remove the temporary files atomic_path left beside `path` in runs that were killed; return those removed."""
    path = Path(path)
    pattern, now, removed = _tmp_pattern(path.name), time.time(), []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for entry in entries:
        if not pattern.fullmatch(entry.name):
            continue
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime < older_than or not entry.is_file(follow_symlinks=False):
                continue
            os.unlink(entry.path)
        except OSError:  # removed meanwhile by another writer, or not ours to remove: leave it
            continue
        removed.append(Path(entry.path))
        logger.warning("removed %s, left behind by a write of %s that was killed", entry.path, path)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename. Temporary files of `path`
    left by killed writers (older than STALE_TMP_SECONDS) are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp_files(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; the result should look like any written file
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_tsv(path: str | os.PathLike, table: Table, columns: Sequence[str]) -> None:
    """Write rows as headerless TSV with LF line ends, atomically."""
    rows = zip(*(table.columns[c] for c in columns))
    write_text_atomic(path, "".join("\t".join(r) + "\n" for r in rows))
