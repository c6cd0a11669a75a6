"""Per-task caches: built from the raw files (read, cleaned, tokenized, split), fingerprinted, verified, reused."""
from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerBase

from .atomic_write import atomic_path, write_text_atomic
from .encoding import encode_with, truncating_backend
from .errors import UsageError
from .labels import IGNORE_LABEL, label2id_for
from .table import Table
from .task_files import ReadSettings, TaskFiles, pseudo_task, read_table, subsample, train_validation_tables
from .tasks import Task
from .tianchi_tsv import write_tsv
from .tokenizer import tokenizer_hash

logger = logging.getLogger(__name__)

# bump when the layout of the cache files or the preprocessing changes (2: output hashes, 3: task specs,
# 4: label2id.json hashed too, so a cache without its hash is rebuilt)
CACHE_VERSION = 4
SPLITS = ("train", "val", "predict")
LABEL_MAP = "label2id.json"
# Every file of a cache but fingerprint.json, whose `outputs` hold their SHA-256s (fingerprint.json itself is checked
# by parsing it and comparing it with the fingerprint expected).
OUTPUTS = (*(f"{split}.pt" for split in SPLITS), LABEL_MAP)


@dataclass(frozen=True)
class DataSettings:
    """Where the caches are built from and written to, and what shapes them: built once by a CLI from its data
    arguments (DataTrainingArguments.data_settings), with the paths already resolved."""

    data_dir: Path  # where a spec's {data_dir}/ paths are read
    cleaned_dir: Path  # the competition layout's cleaned copies
    data_save_dir: Path  # the per-task caches {task}_processed/
    max_seq_length: int = 300
    reading: ReadSettings = field(default_factory=ReadSettings)
    max_train_samples: Optional[int] = None  # a seeded random subset of each task's train split
    predict_test: Optional[str] = None  # the named test file the predict split holds; None: the spec's first
    use_pseudo: Optional[Path] = None  # a directory of pseudo-label files added to the train split
    overwrite_cache: bool = False  # rebuild even when the fingerprint matches


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fingerprint(task: Task, files: TaskFiles, tokenizer: PreTrainedTokenizerBase, settings: DataSettings) -> dict[str, Any]:
    """Everything that determines a task's cache; a cache is reused only when this matches exactly. (The keys keep
    the flags' names, so that caches built before DataSettings existed are still reused.)"""
    return {
        "cache_version": CACHE_VERSION,
        "task": task.name,
        "spec": task.signature(),
        "files": {name: _sha256(p) for name, p in files.named().items()},
        "tokenizer": tokenizer_hash(tokenizer),
        "max_seq_length": settings.max_seq_length,
        "train_val_split_ratio": settings.reading.split_ratio,
        "split_seed": settings.reading.split_seed,
        # only with --num_folds: a cache built before the flag existed keeps its fingerprint, and stays valid
        **({"num_folds": settings.reading.num_folds, "fold": settings.reading.fold}
           if settings.reading.num_folds is not None else {}),
        "max_train_samples": settings.max_train_samples,
        "predict_test": predict_test_name(task, settings.predict_test),
        "debug": settings.reading.debug,
        "skip_bad_rows": settings.reading.skip_bad_rows,
    }


def predict_test_name(task: Task, wanted: Optional[str]) -> Optional[str]:
    """Which of the task's named test files its predict split holds: `wanted` (--predict_test, or 'b' with
    --test_b), else the spec's first (for the competition's tasks: test A). None: the task names no test file."""
    names = [name for name, _ in task.tests]
    if wanted is None:
        return names[0] if names else None
    if wanted not in names:
        if not names:
            return None
        raise UsageError(f"{task.name}: no test file named {wanted!r} in its spec (it has {names}); "
                         "use --predict_test with one of them")
    return wanted


def cache_dir(task: Task, data_save_dir: Path) -> Path:
    return Path(data_save_dir) / f"{task.name}_processed"


def _split_features(task: Task, table: Table, backend: Tokenizer, label2id: dict[str, int],
                    keep_texts: bool = False) -> dict[str, Any]:
    features: dict[str, Any] = encode_with(backend, [table.columns[c] for c in task.text_columns])
    labels = table.columns.get("label")
    features["labels"] = torch.tensor(
        [label2id[x] for x in labels] if labels is not None else [IGNORE_LABEL] * len(table), dtype=torch.int64)
    features["ids"] = list(table.columns["id"])
    if keep_texts:  # prediction rows keep their cleaned texts, so pseudo-labels can be written as train rows
        features["texts"] = {c: list(table.columns[c]) for c in task.text_columns}
    return features


def _write_cleaned_copies(task: Task, files: TaskFiles, train: Table, tests: dict[str, Table],
                          data_dir: Path, cleaned_dir: Path) -> None:
    """The 2020 layout's cleaned copies of a competition-format task: cleaned_<folder>/<file> for every file under
    --data_dir, the train file also beside each test file (round 2 received it, as the baseline did)."""
    if task.format.type != "tianchi_tsv":
        return
    root, cleaned = Path(data_dir), Path(cleaned_dir)

    def target(path: Path) -> Optional[Path]:
        try:
            rel = path.relative_to(root)
        except ValueError:  # not under --data_dir: no place in the layout
            return None
        return cleaned / f"cleaned_{rel.parts[0]}" / Path(*rel.parts[1:]) if len(rel.parts) > 1 else None

    train_target = target(files.train)
    if train_target is None:
        return
    train_targets = {train_target}
    for name, table in tests.items():
        test_target = target(files.tests[name])
        if test_target is not None:
            write_tsv(test_target, table, task.columns(False))
            train_targets.add(test_target.parent / files.train.name)
    for path in sorted(train_targets):
        write_tsv(path, train, task.columns(True))


def build_task_cache(task: Task, tokenizer: PreTrainedTokenizerBase, settings: DataSettings) -> dict[str, dict[str, Any]]:
    """Read, clean, write the cleaned TSVs, tokenize, split and save one task's caches; return the splits."""
    start = time.perf_counter()
    reading = settings.reading
    files = TaskFiles.of(task, settings.data_dir, settings.use_pseudo)
    train_file, train_rows, val_rows, labels = train_validation_tables(task, files, reading)
    tests = {name: read_table(task, path, False, reading) for name, path in files.tests.items()}
    _write_cleaned_copies(task, files, train_file, tests, settings.data_dir, settings.cleaned_dir)

    label2id = label2id_for(labels)
    train_rows = subsample(train_rows, settings.max_train_samples, reading.split_seed)
    if files.pseudo is not None:  # pseudo-labelled test rows join the train split only, never validation
        pseudo = read_table(pseudo_task(task), files.pseudo, True, reading, labels)
        logger.info("%s: %d pseudo-labelled rows added to train", task.name, len(pseudo))
        train_rows.extend(pseudo)
    test_name = predict_test_name(task, settings.predict_test)
    predict = tests[test_name] if test_name else Table({c: [] for c in task.columns(False)}, [])
    backend = truncating_backend(tokenizer, settings.max_seq_length)
    splits = {
        "train": _split_features(task, train_rows, backend, label2id),
        "val": _split_features(task, val_rows, backend, label2id),
        "predict": _split_features(task, predict, backend, label2id, keep_texts=True),
    }
    out_dir = cache_dir(task, settings.data_save_dir)
    digests = {f"{name}.pt": _save_split(out_dir / f"{name}.pt", features) for name, features in splits.items()}
    label_map = json.dumps(label2id, ensure_ascii=False, indent=1)
    write_text_atomic(out_dir / LABEL_MAP, label_map)
    digests[LABEL_MAP] = hashlib.sha256(label_map.encode("utf-8")).hexdigest()
    # Written last: a cache whose fingerprint file exists is complete; the hashes of its files let a load detect
    # a file damaged since (truncated by a full disk, overwritten by hand).
    record = {**fingerprint(task, files, tokenizer, settings), "outputs": digests}
    write_text_atomic(out_dir / "fingerprint.json", json.dumps(record, indent=1))
    logger.info("%s: cache built in %.2fs (train %d, val %d, predict %d) -> %s", task.name,
                time.perf_counter() - start, *(len(splits[s]["ids"]) for s in SPLITS), out_dir)
    return splits


def _save_split(path: Path, features: dict[str, Any]) -> str:
    """Write one split atomically; return the SHA-256 of the bytes written (hashed in memory, not read back)."""
    buffer = io.BytesIO()
    torch.save(features, buffer)
    data = buffer.getvalue()
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _load_verified(out_dir: Path, outputs: dict[str, str]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Each file of the cache (OUTPUTS) read once and hashed; a split is loaded from those bytes when its hash matches
    (weights_only, so a cache file cannot run code). Returns the splits loaded and the names of the files missing or
    damaged (a file with no recorded hash counts as damaged: nothing vouches for it)."""
    splits, damaged = {}, []
    for name in OUTPUTS:
        path, digest = out_dir / name, outputs.get(name)
        data = path.read_bytes() if path.is_file() else None
        if data is None or hashlib.sha256(data).hexdigest() != digest:
            damaged.append(name)
        elif name.endswith(".pt"):
            splits[Path(name).stem] = torch.load(io.BytesIO(data), weights_only=True)
    return splits, damaged


def _read_record(fp_path: Path) -> Optional[dict[str, Any]]:
    """fingerprint.json as written by build_task_cache, or None when it is not (empty, truncated, edited by hand)."""
    try:
        record = json.loads(fp_path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("outputs"), dict):
        return None
    return record


def load_or_build_task(task: Task, tokenizer: PreTrainedTokenizerBase, settings: DataSettings) -> dict[str, dict[str, Any]]:
    """The task's splits from a cache whose fingerprint matches and whose every file is intact, else freshly built
    (and cached). Whatever is wrong with a cache (any file missing, damaged, or not as written), it is rebuilt."""
    out_dir = cache_dir(task, settings.data_save_dir)
    fp_path = out_dir / "fingerprint.json"
    if not settings.overwrite_cache and (fp_path.exists() or out_dir.is_dir()):
        record = _read_record(fp_path)
        if record is None:
            logger.warning("%s: %s is %s; rebuilding the cache", task.name, fp_path,
                           "damaged (not the JSON a cache build writes)" if fp_path.exists() else
                           "missing (a build that did not finish, or a file deleted)")
        else:
            outputs = record.pop("outputs")
            if record != fingerprint(task, TaskFiles.of(task, settings.data_dir, settings.use_pseudo), tokenizer, settings):
                logger.info("%s: cache %s is stale; rebuilding", task.name, out_dir)
            else:
                splits, damaged = _load_verified(out_dir, outputs)
                if not damaged:
                    logger.info("%s: reusing cache %s", task.name, out_dir)
                    return splits
                logger.warning("%s: cache file(s) %s in %s are damaged or missing (their content no longer matches "
                               "fingerprint.json); rebuilding", task.name, ", ".join(damaged), out_dir)
    return build_task_cache(task, tokenizer, settings)


def read_label2id(task: Task, data_save_dir: Path) -> dict[str, int]:
    """The label map of a task's cache (load_or_build_task has just verified it against fingerprint.json)."""
    path = cache_dir(task, data_save_dir) / LABEL_MAP
    try:
        label2id = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(f"{path}: cannot be read ({type(err).__name__}); another process changed the cache while "
                         "this one ran; run again (the cache is checked and rebuilt)") from None
    return label2id
