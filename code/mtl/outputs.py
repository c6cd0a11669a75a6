"""Submission files (one JSON line per test row), the submission zip, and pseudo-label train files."""
from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from .atomic_write import atomic_path, write_text_atomic
from .errors import UsageError
from .table import Table
from .task_files import pseudo_file_name
from .tasks import Task
from .tianchi_tsv import write_tsv

if TYPE_CHECKING:  # annotations only: code/ensemble.py writes submissions without importing torch and transformers
    from .data import SingleTaskDataset
    from .trainer import TaskPrediction

logger = logging.getLogger(__name__)


# The names train.py gives the zip of a prediction run: a full run's, and a --debug run's (first 1000 rows only).
SUBMISSION_ZIP = "submit.zip"
PARTIAL_ZIP = "submit_PARTIAL_debug.zip"
ZIP_NAMES = (SUBMISSION_ZIP, PARTIAL_ZIP)


def remove_submission_zips(out_dir: Path, keep: str | None = None) -> list[Path]:
    """Remove the zips of an earlier prediction run from `out_dir` (all of ZIP_NAMES but `keep`): a zip left there
    would disagree with the prediction files written now (a --debug run's 1000 rows beside a full run's submit.zip)."""
    removed = []
    for name in ZIP_NAMES:
        path = Path(out_dir) / name
        if name != keep and path.is_file():
            path.unlink()
            removed.append(path)
            logger.info("removed %s of an earlier prediction run (it would not match the files written now)", path)
    return removed


def write_predictions(task: Task, prediction: TaskPrediction, id2label: dict[int, str], out_dir: Path) -> Path:
    """`{task}_predict.json`: {"id": <the test file's own id>, "label": <label string>} per line, in file order.

    An earlier run's zip goes first, before any of its files is replaced, so a run killed between the prediction
    files and the zip leaves no zip rather than one that disagrees with them."""
    return write_prediction_file(task.name, prediction.ids, [id2label[int(k)] for k in prediction.label_ids], out_dir)


def write_prediction_file(task_name: str, ids: list[str], labels: list[str], out_dir: Path) -> Path:
    """write_predictions' file from ids and label strings (code/ensemble.py writes an ensemble's with it)."""
    remove_submission_zips(out_dir)
    lines = (json.dumps({"id": i, "label": label}, ensure_ascii=False) for i, label in zip(ids, labels))
    path = Path(out_dir) / f"{task_name}_predict.json"
    write_text_atomic(path, "".join(line + "\n" for line in lines))
    return path


def write_submission_zip(files: list[Path], zip_path: Path) -> Path:
    """The prediction files at the zip's top level, as the competition's submit.zip. The other of ZIP_NAMES, an
    earlier run's, is removed: the directory never holds a zip that disagrees with its prediction files."""
    zip_path = Path(zip_path)
    with atomic_path(zip_path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for f in files:
                archive.write(f, arcname=f.name)
    if zip_path.name in ZIP_NAMES:
        remove_submission_zips(zip_path.parent, keep=zip_path.name)
    return zip_path


def write_pseudo_labels(task: Task, prediction: TaskPrediction, dataset: SingleTaskDataset,
                        id2label: dict[int, str], threshold: float, out_dir: Path) -> tuple[Path, int]:
    """Test rows whose top probability is >= threshold, as train rows: `{TASK}_pseudo.csv` in the competition's
    layout for its tasks, `{TASK}_pseudo.jsonl` (id, text columns, label) for others (mtl.task_files reads them)."""
    if dataset.texts is None:
        raise UsageError(f"{task.name}: the prediction cache holds no texts; rebuild it with --overwrite_cache")
    keep = [i for i, p in enumerate(prediction.probabilities.max(-1)) if p >= threshold]
    columns: dict[str, list[str]] = {"id": [prediction.ids[i] for i in keep]}
    for c in task.text_columns:
        columns[c] = [dataset.texts[c][i] for i in keep]
    columns["label"] = [id2label[int(prediction.label_ids[i])] for i in keep]
    path = Path(out_dir) / pseudo_file_name(task)
    if path.suffix == ".csv":
        write_tsv(path, Table(columns, keep), task.columns(True))
    else:
        rows = (json.dumps(dict(zip(columns, values)), ensure_ascii=False) for values in zip(*columns.values()))
        write_text_atomic(path, "".join(row + "\n" for row in rows))
    logger.info("%s: %d of %d test rows pseudo-labelled (p >= %s) -> %s", task.name, len(keep),
                len(prediction.ids), threshold, path)
    return path, len(keep)
