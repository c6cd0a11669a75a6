"""Class-probability files: a run's test probabilities (`{task}_probs.csv`, written by --do_predict beside the
submission) and its validation ("out-of-fold") predictions (`oof/{task}_oof.csv` in the model's directory, written
by --do_eval). code/ensemble.py averages the first and scores the second.

Both are CSV with a header: `id`, for an out-of-fold file then `label` (the row's true label), then one column per
class, named by the raw label as in the training data (TNEWS `109`), each row's probabilities summing to 1. The
leading columns are found by position, not by name, so a class named `id` or `label` is no problem."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from .atomic_write import write_text_atomic
from .errors import UsageError

PROBS_SUFFIX = "_probs.csv"
OOF_DIR = "oof"
OOF_SUFFIX = "_oof.csv"


@dataclass
class Probabilities:
    """One task's class probabilities over a file's rows (test rows, or validation rows with their true labels)."""

    task: str
    ids: list[str]
    labels: list[str]  # the class of each column, as the raw label
    values: np.ndarray  # (rows, classes)
    gold: Optional[list[str]] = None  # out-of-fold files: each row's true label

    def label_ids(self) -> np.ndarray:
        """Each row's most probable class (column index; the first on a tie, as numpy's argmax)."""
        return self.values.argmax(-1)


def probs_path(directory: str | Path, task: str) -> Path:
    return Path(directory) / f"{task}{PROBS_SUFFIX}"


def oof_path(directory: str | Path, task: str) -> Path:
    return Path(directory) / OOF_DIR / f"{task}{OOF_SUFFIX}"


def write_probabilities(path: str | Path, probs: Probabilities) -> Path:
    """Write `probs` atomically; 9 significant digits hold a float32 probability exactly."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", *(["label"] if probs.gold is not None else []), *probs.labels])
    gold = probs.gold if probs.gold is not None else [None] * len(probs.ids)
    for row_id, label, row in zip(probs.ids, gold, probs.values.tolist()):
        writer.writerow([row_id, *([label] if label is not None else []), *(f"{p:.9g}" for p in row)])
    write_text_atomic(path, buffer.getvalue())
    return Path(path)


def task_of(path: str | Path) -> tuple[str, bool]:
    """(task, is an out-of-fold file) from a probability file's name, or UsageError."""
    name = Path(path).name
    for suffix, oof in ((OOF_SUFFIX, True), (PROBS_SUFFIX, False)):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[:-len(suffix)], oof
    raise UsageError(f"{path}: not a probability file (its name must be TASK{PROBS_SUFFIX} or TASK{OOF_SUFFIX}, as "
                     "train.py writes them)")


def read_probabilities(path: str | Path) -> Probabilities:
    """A file written by write_probabilities; anything else is a one-line UsageError naming the file and line."""
    task, oof = task_of(path)
    try:
        rows = list(csv.reader(io.StringIO(Path(path).read_text(encoding="utf-8"))))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise UsageError(f"{path}: cannot be read as a probability file ({err})") from None
    lead = 2 if oof else 1
    if not rows or len(rows[0]) <= lead + 1 or rows[0][:lead] != ["id", "label"][:lead]:
        raise UsageError(f"{path}: not a probability file: its header must be id,{'label,' if oof else ''}"
                         "then two or more class labels")
    labels = rows[0][lead:]
    if len(set(labels)) != len(labels):
        raise UsageError(f"{path}: a class label appears twice in the header")
    values = np.zeros((len(rows) - 1, len(labels)))
    for line, row in enumerate(rows[1:], start=2):
        try:
            if len(row) != len(rows[0]):
                raise ValueError(f"{len(row)} fields, the header has {len(rows[0])}")
            values[line - 2] = [float(p) for p in row[lead:]]
        except ValueError as err:
            raise UsageError(f"{path}, line {line}: not a row of probabilities ({err})") from None
    ids = [row[0] for row in rows[1:]]
    if not ids:
        raise UsageError(f"{path}: no rows")
    if len(set(ids)) != len(ids):
        raise UsageError(f"{path}: an id appears twice")
    return Probabilities(task, ids, labels, values, [row[1] for row in rows[1:]] if oof else None)
