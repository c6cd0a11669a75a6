"""Per-task caches: built from the raw files (read, cleaned, tokenized, split), fingerprinted, verified, reused."""
from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from pathlib import Path
from typing import Any, Optional

import torch
from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerBase

from .args import DataTrainingArguments
from .encoding import encode_with, truncating_backend
from .errors import UsageError
from .io import Table, atomic_path, write_text_atomic, write_tsv
from .labels import IGNORE_LABEL, label2id_for
from .paths import resolve
from .task_files import TaskFiles, pseudo_task, read_with_args, subsample, train_validation_tables
from .tasks import Task
from .tokenizer import tokenizer_hash

logger = logging.getLogger(__name__)

CACHE_VERSION = 3  # bump when the layout of the .pt files or the preprocessing changes (2: output hashes, 3: task specs)
SPLITS = ("train", "val", "predict")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fingerprint(task: Task, files: TaskFiles, tokenizer: PreTrainedTokenizerBase, args: DataTrainingArguments) -> dict[str, Any]:
    """Everything that determines a task's cache; a cache is reused only when this matches exactly."""
    return {
        "cache_version": CACHE_VERSION,
        "task": task.name,
        "spec": task.signature(),
        "files": {name: _sha256(p) for name, p in files.named().items()},
        "tokenizer": tokenizer_hash(tokenizer),
        "max_seq_length": args.max_seq_length,
        "train_val_split_ratio": args.train_val_split_ratio,
        "split_seed": args.split_seed,
        "max_train_samples": args.max_train_samples,
        "predict_test": predict_test_name(task, args),
        "debug": args.debug,
        "skip_bad_rows": args.skip_bad_rows,
    }


def predict_test_name(task: Task, args: DataTrainingArguments) -> Optional[str]:
    """Which of the task's named test files its predict split holds: --predict_test, 'b' with --test_b, else the
    spec's first (for the competition's tasks: test A). None: the task names no test file."""
    wanted = args.predict_test or ("b" if args.test_b else None)
    names = [name for name, _ in task.tests]
    if wanted is None:
        return names[0] if names else None
    if wanted not in names:
        if not names:
            return None
        raise UsageError(f"{task.name}: no test file named {wanted!r} in its spec (it has {names}); "
                         "use --predict_test with one of them")
    return wanted


def cache_dir(task: Task, data_save_dir: str) -> Path:
    return resolve(data_save_dir) / f"{task.name}_processed"


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
                          args: DataTrainingArguments) -> None:
    """The 2020 layout's cleaned copies of a competition-format task: cleaned_<folder>/<file> for every file under
    --data_dir, the train file also beside each test file (round 2 received it, as the baseline did)."""
    if task.format.type != "tianchi_tsv":
        return
    root, cleaned = resolve(args.data_dir), resolve(args.cleaned_dir)

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


def build_task_cache(task: Task, tokenizer: PreTrainedTokenizerBase, args: DataTrainingArguments) -> dict[str, dict[str, Any]]:
    """Read, clean, write the cleaned TSVs, tokenize, split and save one task's caches; return the splits."""
    start = time.perf_counter()
    files = TaskFiles.of(task, args.data_dir, args.use_pseudo)
    train_file, train_rows, val_rows, labels = train_validation_tables(task, files, args)
    tests = {name: read_with_args(task, path, False, args) for name, path in files.tests.items()}
    _write_cleaned_copies(task, files, train_file, tests, args)

    label2id = label2id_for(labels)
    train_rows = subsample(train_rows, args.max_train_samples, args.split_seed)
    if files.pseudo is not None:  # pseudo-labelled test rows join the train split only, never validation
        pseudo = read_with_args(pseudo_task(task), files.pseudo, True, args, labels)
        logger.info("%s: %d pseudo-labelled rows added to train", task.name, len(pseudo))
        train_rows.extend(pseudo)
    test_name = predict_test_name(task, args)
    predict = tests[test_name] if test_name else Table({c: [] for c in task.columns(False)}, [])
    backend = truncating_backend(tokenizer, args.max_seq_length)
    splits = {
        "train": _split_features(task, train_rows, backend, label2id),
        "val": _split_features(task, val_rows, backend, label2id),
        "predict": _split_features(task, predict, backend, label2id, keep_texts=True),
    }
    out_dir = cache_dir(task, args.data_save_dir)
    digests = {f"{name}.pt": _save_split(out_dir / f"{name}.pt", features) for name, features in splits.items()}
    write_text_atomic(out_dir / "label2id.json", json.dumps(label2id, ensure_ascii=False, indent=1))
    # Written last: a cache whose fingerprint file exists is complete; the hashes of its files let a load detect
    # a file damaged since (truncated by a full disk, overwritten by hand).
    record = {**fingerprint(task, files, tokenizer, args), "outputs": digests}
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
    """Each recorded split read once: hashed, and loaded from those bytes when the hash matches (weights_only, so
    a cache file cannot run code). Returns the splits loaded and the names of those missing or damaged."""
    splits, damaged = {}, []
    for name, digest in outputs.items():
        path = out_dir / name
        data = path.read_bytes() if path.is_file() else None
        if data is None or hashlib.sha256(data).hexdigest() != digest:
            damaged.append(name)
        else:
            splits[Path(name).stem] = torch.load(io.BytesIO(data), weights_only=True)
    return splits, damaged


def load_or_build_task(task: Task, tokenizer: PreTrainedTokenizerBase, args: DataTrainingArguments) -> dict[str, dict[str, Any]]:
    """The task's splits from a cache whose fingerprint matches, else freshly built (and cached)."""
    out_dir = cache_dir(task, args.data_save_dir)
    fp_path = out_dir / "fingerprint.json"
    if not args.overwrite_cache and fp_path.exists():
        expected = fingerprint(task, TaskFiles.of(task, args.data_dir, args.use_pseudo), tokenizer, args)
        record = json.loads(fp_path.read_text())
        outputs = record.pop("outputs", None)
        if record != expected:
            logger.info("%s: cache %s is stale; rebuilding", task.name, out_dir)
        else:
            splits, damaged = _load_verified(out_dir, outputs or {})
            if outputs and not damaged:
                logger.info("%s: reusing cache %s", task.name, out_dir)
                return splits
            logger.warning("%s: cache file(s) %s in %s are damaged or missing (their content no longer matches "
                           "fingerprint.json); rebuilding", task.name, ", ".join(damaged) or "?", out_dir)
    return build_task_cache(task, tokenizer, args)


def read_label2id(task: Task, data_save_dir: str) -> dict[str, int]:
    return json.loads((cache_dir(task, data_save_dir) / "label2id.json").read_text())
