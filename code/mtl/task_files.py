"""A task's raw files in the competition layout, each read, validated and cleaned."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .args import DataTrainingArguments
from .cleaning import clean_texts
from .errors import UsageError
from .io import DataFormatError, Table, read_tsv
from .paths import resolve
from .tasks import ROUND1_DIR, ROUND2_DIR, Task

logger = logging.getLogger(__name__)


@dataclass
class TaskFiles:
    """The raw files a task's cache is built from."""

    train: Path
    test_a: Path
    test_b: Path
    pseudo: Optional[Path] = None

    @classmethod
    def of(cls, task: Task, data_dir: str, use_pseudo: Optional[str]) -> "TaskFiles":
        """The task's files under `data_dir`; a missing one stops here, named, with the layout expected."""
        root = resolve(data_dir)
        files = cls(root / ROUND1_DIR / task.train_file, root / ROUND1_DIR / task.test_a_file,
                    root / ROUND2_DIR / task.test_b_file)
        for path in (files.train, files.test_a, files.test_b):
            if not path.is_file():
                raise UsageError(f"{path}: no such file; --data_dir ({data_dir}) must hold the competition's layout: "
                                 f"{ROUND1_DIR}/{task.train_file}, {ROUND1_DIR}/{task.test_a_file} and "
                                 f"{ROUND2_DIR}/{task.test_b_file}")
        if use_pseudo:
            files.pseudo = resolve(use_pseudo) / f"{task.file_prefix}_pseudo.csv"
            if not files.pseudo.is_file():
                raise UsageError(f"{files.pseudo}: no such file; --use_pseudo must name the pseudo/ directory "
                                 f"of a --do_predict run, which holds {task.file_prefix}_pseudo.csv")
        return files


def read_clean(task: Task, path: Path, with_label: bool, skip_bad_rows: bool = False,
               max_rows: Optional[int] = None) -> Table:
    """One of the task's files, validated (labels too when `with_label`; unique ids in a test file, whose ids
    key the submission), summary logged, texts cleaned. A file with no usable row is an error."""
    table, report = read_tsv(path, task.columns(with_label), text_columns=task.text_columns,
                             labels=task.labels if with_label else None, skip_bad_rows=skip_bad_rows,
                             max_rows=max_rows, unique_ids=not with_label)
    logger.info(report.summary())
    if not len(table):
        dropped = f" ({len(report.dropped)} dropped as bad)" if report.dropped else ""
        raise DataFormatError(f"{path}: no rows{dropped}; the file must hold rows of "
                              f"{'<TAB>'.join(task.columns(with_label))}")
    for column in task.text_columns:
        table.columns[column] = clean_texts(task.cleaner, table.columns[column])
    return table


def read_with_args(task: Task, path: Path, with_label: bool, args: DataTrainingArguments) -> Table:
    """`read_clean` as DataTrainingArguments ask (--skip_bad_rows; --debug: the first 1000 rows)."""
    return read_clean(task, path, with_label, args.skip_bad_rows, 1000 if args.debug else None)


