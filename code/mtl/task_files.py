"""A task's raw files as its spec names them, each read, validated and cleaned; the train/validation tables."""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Collection, Optional

import numpy as np

from .cleaning import clean_texts
from .errors import UsageError
from .labels import stratified_kfold, stratified_split
from .readers import read_task_file
from .table import DataFormatError, Table
from .tasks import FileFormat, Task

logger = logging.getLogger(__name__)

DEBUG_ROWS = 1000  # --debug reads only the first rows of every file, as the 2020 scripts did


@dataclass(frozen=True)
class ReadSettings:
    """How a task's files become tables: bad rows dropped or fatal, a debug run's row limit, the train/validation
    split (train.py builds it from --skip_bad_rows, --debug, --train_val_split_ratio, --num_folds, --fold and
    --split_seed)."""

    split_ratio: float = 0.1  # 0: no validation rows (a final retrain on every row)
    split_seed: int = 2020
    num_folds: Optional[int] = None  # with `fold`: validation is fold `fold` of a K-fold split (split_ratio unused)
    fold: Optional[int] = None
    skip_bad_rows: bool = False
    debug: bool = False  # only the first DEBUG_ROWS rows of every file

    @property
    def max_rows(self) -> Optional[int]:
        return DEBUG_ROWS if self.debug else None


@dataclass
class TaskFiles:
    """The raw files a task's cache is built from."""

    train: Path
    validation: Optional[Path] = None
    tests: dict[str, Path] = field(default_factory=dict)
    pseudo: Optional[Path] = None

    @classmethod
    def of(cls, task: Task, data_dir: Path, use_pseudo: Optional[Path]) -> "TaskFiles":
        """The task's files; a missing one stops here, named, with where the spec says it should be. `use_pseudo`:
        a directory of pseudo-label files (--use_pseudo)."""
        files = cls(task.train_path(data_dir), task.path(task.validation, data_dir) if task.validation else None,
                    {name: task.path(p, data_dir) for name, p in task.tests})
        for path in (files.train, files.validation, *files.tests.values()):
            if path is not None and not path.is_file():
                raise UsageError(f"{path}: no such file; {where_files_come_from(task, data_dir)}")
        if use_pseudo:
            files.pseudo = Path(use_pseudo) / pseudo_file_name(task)
            if not files.pseudo.is_file():
                raise UsageError(f"{files.pseudo}: no such file; --use_pseudo must name the pseudo/ directory "
                                 f"of a --do_predict run, which holds {pseudo_file_name(task)}")
        return files

    def named(self) -> dict[str, Path]:
        """Every file by a stable name (train, validation, test_<name>, pseudo), for fingerprints."""
        out = {"train": self.train, "validation": self.validation, "pseudo": self.pseudo}
        out.update({f"test_{name}": path for name, path in self.tests.items()})
        return {name: path for name, path in out.items() if path is not None}


def where_files_come_from(task: Task, data_dir: Path) -> str:
    paths = [task.train, *(p for _, p in task.tests)]
    if all(p.startswith("{data_dir}/") for p in paths):
        layout = ", ".join(p.removeprefix("{data_dir}/") for p in paths)
        return f"--data_dir ({data_dir}) must hold the {task.name} files: {layout}"
    return f"the task spec's 'files' name it (relative paths are read from {task.spec_dir})"


def pseudo_file_name(task: Task) -> str:
    """The competition's tasks keep their TSV train layout; others get JSON lines (any id, any text)."""
    return f"{task.file_prefix}_pseudo.{'csv' if task.format.type == 'tianchi_tsv' else 'jsonl'}"


def pseudo_task(task: Task) -> Task:
    """How a pseudo-label file of `task` is read back: id, the text columns and label, in the layout written."""
    if task.format.type == "tianchi_tsv":
        return task
    return dataclasses.replace(task, format=FileFormat("jsonl"), id_column="id", label_column="label",
                               drop_duplicates=False)


def read_clean(task: Task, path: Path, with_label: bool, skip_bad_rows: bool = False,
               max_rows: Optional[int] = None, labels: Optional[Collection[str]] = None) -> Table:
    """One of the task's files, validated (labels against `labels`, default the spec's; unique ids in a test file,
    whose ids key the submission), summary logged, texts cleaned. A file with no usable row is an error."""
    table, report = read_task_file(task, path, with_label, labels if labels is not None else task.labels,
                                   skip_bad_rows, max_rows, unique_ids=not with_label)
    logger.info(report.summary())
    if not len(table):
        dropped = f" ({len(report.dropped)} dropped as bad)" if report.dropped else ""
        layout = ("<TAB>".join(task.columns(with_label)) if task.format.type == "tianchi_tsv"
                  else f"the columns {[c for c in (task.id_column, *task.text_columns) if c]}")
        raise DataFormatError(f"{path}: no rows{dropped}; the file must hold rows of {layout}")
    for column in task.text_columns:
        table.columns[column] = clean_texts(task.cleaner, table.columns[column])
    return table


def read_table(task: Task, path: Path, with_label: bool, reading: ReadSettings,
               labels: Optional[Collection[str]] = None) -> Table:
    """`read_clean` as `reading` asks (bad rows dropped or fatal; a debug run's first rows only)."""
    return read_clean(task, path, with_label, reading.skip_bad_rows, reading.max_rows, labels)


def task_labels(task: Task, train: Table) -> tuple[str, ...]:
    """The spec's labels, else the sorted set seen in train."""
    return task.labels if task.labels is not None else tuple(sorted(set(train.columns["label"])))


def train_validation_tables(task: Task, files: TaskFiles, reading: ReadSettings
                            ) -> tuple[Table, Table, Table, tuple[str, ...]]:
    """The train file's rows, the rows to train on and to validate on, and the label set: validation is the spec's
    validation file, else a seeded stratified split of train (--train_val_split_ratio, or fold k of --num_folds K;
    --split_seed)."""
    if reading.num_folds is not None and files.validation is not None:
        # Folds of the train file would leave the spec's validation file unused, or its rows scored twice.
        raise UsageError(f"--num_folds: task {task.name} has its own validation file ({files.validation}); k-fold "
                         "training splits train files only: leave out --num_folds, or the task's validation file")
    train = read_table(task, files.train, True, reading)
    labels = task_labels(task, train)
    if len(labels) < 2:
        raise DataFormatError(f"{files.train}: every row has the label {labels[0]!r}; a classification task needs "
                              "two or more")
    if files.validation is not None:
        return train, train, read_table(task, files.validation, True, reading, labels), labels
    if reading.num_folds is not None:
        if len(train) < reading.num_folds:
            raise UsageError(f"--num_folds {reading.num_folds}: {files.train} has only {len(train)} rows; use at "
                             f"most {len(train)} folds")
        train_idx, val_idx = stratified_kfold(train.columns["label"], reading.num_folds, reading.fold,
                                              reading.split_seed)
        return train, train.select(train_idx), train.select(val_idx), labels
    train_idx, val_idx = stratified_split(train.columns["label"], reading.split_ratio, reading.split_seed)
    return train, train.select(train_idx), train.select(val_idx), labels


def subsample(table: Table, limit: Optional[int], seed: int) -> Table:
    """--max_train_samples: a seeded random subset (in file order), as run_glue's option but not the file's head,
    which in a file sorted by class would be one class."""
    if limit is None or len(table) <= limit:
        return table
    keep = np.sort(np.random.default_rng(seed).choice(len(table), size=limit, replace=False))
    return table.select(keep.tolist())
