"""Label ids and the stratified train/validation split."""
from __future__ import annotations

import logging
import math
from typing import Any, Iterable

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

logger = logging.getLogger(__name__)

IGNORE_LABEL = -100  # label of prediction rows (no gold label); ignored by cross-entropy


def label_text(value: Any) -> str:
    """A label as read from a file, as the string that names its class ('' for none).

    A JSON number is written in one form, integral ones without a fraction: 1 and 1.0 -> '1'. In JSON they are the
    same number (RFC 8259 has no integer type; pandas writes an integer column holding a missing value as floats,
    JavaScript has no integers), so their spelling carries no meaning and must not split one class in two; and '1'
    is what the same label reads as from a CSV or TSV file, so a task gets the same classes from any format. Strings
    are kept as written (stripped): their spelling is the user's, and mtl.rows.LabelSpellings refuses two spellings of one
    number rather than guess which was meant."""
    if value is None:
        return ""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def label2id_for(labels: Iterable[str]) -> dict[str, int]:
    """Sorted label strings -> 0..n-1, as the 2020 baseline (OCNLI {"0": 0, "1": 1, "2": 2}).

    Given the spec's label set where it has one rather than the labels seen in train, so a debug subset that misses
    a rare class still gets the same ids as a full run.
    """
    return {label: i for i, label in enumerate(sorted(labels))}


def stratified_split(labels: list[str], ratio: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded shuffle, then train/val indices with every class in proportion (both sorted to file order)."""
    indices = np.arange(len(labels))
    if ratio <= 0 or len(labels) < 2:
        return indices.tolist(), []
    try:
        train, val = train_test_split(indices, test_size=ratio, random_state=seed, shuffle=True, stratify=labels)
    except ValueError as err:  # a class with a single row (debug subsets): split without stratification
        logger.warning("stratified split impossible (%s); splitting without stratification", err)
        train, val = train_test_split(indices, test_size=ratio, random_state=seed, shuffle=True)
    return sorted(train.tolist()), sorted(val.tolist())


def stratified_kfold(labels: list[str], num_folds: int, fold: int, seed: int) -> tuple[list[int], list[int]]:
    """Fold `fold` of a seeded, stratified `num_folds`-fold split: (train, val) indices, both in file order. The K
    folds' validation indices partition the rows. A class with fewer rows than folds cannot be in every fold:
    sklearn then warns and stratifies the others; a split no class allows falls back to plain shuffled folds."""
    indices = np.arange(len(labels))
    if len(labels) < num_folds:
        raise ValueError(f"{len(labels)} rows cannot be cut into {num_folds} folds")
    try:
        folds = list(StratifiedKFold(num_folds, shuffle=True, random_state=seed).split(indices, labels))
    except ValueError as err:  # every class smaller than num_folds (debug subsets)
        logger.warning("stratified %d-fold split impossible (%s); folds without stratification", num_folds, err)
        folds = list(KFold(num_folds, shuffle=True, random_state=seed).split(indices))
    train, val = folds[fold]
    return sorted(train.tolist()), sorted(val.tolist())


def class_frequencies(label_ids: Iterable[int] | np.ndarray, num_classes: int) -> list[float]:
    """Each class's share of the labelled rows (a cache's label tensor or any sequence of ids), add-one smoothed so a
    class absent from them keeps a finite log (the priors of mtl.model.BertMultiTaskModel.adjust_logits)."""
    ids = np.asarray(label_ids, dtype=np.int64)
    counts = np.bincount(ids[ids != IGNORE_LABEL], minlength=num_classes)[:num_classes] + 1
    return (counts / counts.sum()).round(6).tolist()
