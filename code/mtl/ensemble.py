"""Ensembles of runs (code/ensemble.py): each task's test probabilities averaged over the runs that predicted it,
with equal weights or weights from the runs' out-of-fold scores, and the out-of-fold score of the runs pooled.

A run is a directory holding `{task}_probs.csv` files (train.py's --prediction_dir) and, where train.py's
--output_dir is the same directory, their `oof/{task}_oof.csv` (mtl.probabilities); or one `{task}_probs.csv` file,
with the `oof/` folder beside it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from .errors import UsageError
from .metrics import task_scores
from .outputs import PARTIAL_ZIP
from .probabilities import (
    OOF_DIR,
    OOF_SUFFIX,
    PROBS_SUFFIX,
    Probabilities,
    oof_path,
    read_probabilities,
    task_of,
)

WEIGHTINGS = ("equal", "oof")
Metric = tuple[str, Optional[str]]  # (a metric name of mtl.metrics.SCORERS, the positive label for f1)


@dataclass
class Run:
    name: str  # the path as given
    probs: dict[str, Probabilities]  # task -> test probabilities
    oof: dict[str, Probabilities]  # task -> out-of-fold (validation) predictions, where the run has them


@dataclass
class TaskEnsemble:
    task: str
    members: list[str]  # run names
    weights: list[float]  # summing to 1
    test: Probabilities  # the weighted mean of the members' test probabilities
    member_scores: list[Optional[float]]  # each member's score on its own validation rows
    oof: Optional[Probabilities] = None  # the members' validation rows pooled (see pool_oof)
    score: Optional[float] = None  # of `oof`


def load_run(path: Path, name: str) -> Run:
    folder = path if path.is_dir() else path.parent
    if (folder / PARTIAL_ZIP).is_file():
        raise UsageError(f"{name}: a --debug run's predictions (its folder holds {PARTIAL_ZIP}: the first rows of "
                         "each test file only); an ensemble of it would be no submission: predict without --debug")
    if path.is_dir():
        probs = {p.task: p for p in map(read_probabilities, sorted(path.glob(f"*{PROBS_SUFFIX}")))}
        if not probs:
            raise UsageError(f"{name}: holds no TASK{PROBS_SUFFIX} file (train.py --do_predict writes them into its "
                             "--prediction_dir)")
        oof = {p.task: p for p in map(read_probabilities, sorted((path / OOF_DIR).glob(f"*{OOF_SUFFIX}")))}
        return Run(name, probs, oof)
    if not path.is_file():
        raise UsageError(f"{name}: no such file or directory")
    task, is_oof = task_of(path)
    if is_oof:
        raise UsageError(f"{name}: give test probabilities (TASK{PROBS_SUFFIX}); a run's out-of-fold file is read "
                         f"from the {OOF_DIR}/ folder beside them")
    oof_file = oof_path(path.parent, task)
    return Run(name, {task: read_probabilities(path)}, {task: read_probabilities(oof_file)} if oof_file.is_file() else {})


def aligned(reference: Probabilities, ref_name: str, other: Probabilities, name: str) -> np.ndarray:
    """`other`'s probabilities in `reference`'s row (id) and column (label) order; runs of different label sets or
    of different rows are refused."""
    if set(other.labels) != set(reference.labels):
        raise UsageError(f"{reference.task}: {name} has the labels {sorted(other.labels)}, {ref_name} "
                         f"{sorted(reference.labels)}: an ensemble averages runs of the same label set")
    if set(other.ids) != set(reference.ids):
        only = sorted(set(other.ids) ^ set(reference.ids))[0]
        raise UsageError(f"{reference.task}: {name} holds {len(other.ids)} ids, {ref_name} {len(reference.ids)}, "
                         f"not the same (id {only!r} is in only one): an ensemble averages predictions of the same "
                         "test file")
    rows = {row_id: i for i, row_id in enumerate(other.ids)}
    columns = [other.labels.index(label) for label in reference.labels]
    return other.values[np.ix_([rows[i] for i in reference.ids], columns)]


def score(oof: Probabilities, metric: Metric) -> float:
    """The task's metric of out-of-fold predictions (mtl.metrics, as train.py scores its evaluation)."""
    name, pos = metric
    column = {label: i for i, label in enumerate(oof.labels)}
    unknown = sorted(set(oof.gold or ()) - set(column))
    if unknown:
        raise UsageError(f"{oof.task}: its out-of-fold rows have the label {unknown[0]!r}, which has no "
                         "probability column")
    gold = np.array([column[label] for label in oof.gold or ()])
    if pos is not None and pos not in column:
        raise UsageError(f"{oof.task}: the metric's pos_label {pos!r} is not one of the labels {oof.labels}")
    metrics = {oof.task: (name, None if pos is None else column[pos])}
    return task_scores(oof.values, gold, [(oof.task, len(gold), len(oof.labels))], metrics)[oof.task]


def pool_oof(members: list[tuple[str, Probabilities]], weights: list[float]) -> Probabilities:
    """The members' validation rows together, each row's probabilities the weighted mean over the members that
    validated it: the folds of one K-fold split each validate a row once (their out-of-fold predictions, joined);
    runs on one validation split (seeds, models) all validate it (their ensemble's validation predictions)."""
    (ref_name, ref), labels = members[0], members[0][1].labels
    ids = list(dict.fromkeys(row_id for _, p in members for row_id in p.ids))
    index = {row_id: i for i, row_id in enumerate(ids)}
    sums, totals, gold = np.zeros((len(ids), len(labels))), np.zeros(len(ids)), {}
    for (name, p), weight in zip(members, weights):
        if set(p.labels) != set(labels):
            raise UsageError(f"{p.task}: {name}'s out-of-fold file has the labels {sorted(p.labels)}, {ref_name}'s "
                             f"{sorted(labels)}: an ensemble averages runs of the same label set")
        for row_id, label in zip(p.ids, p.gold or ()):
            if gold.setdefault(row_id, (label, name))[0] != label:
                raise UsageError(f"{p.task}: id {row_id!r} has the label {gold[row_id][0]!r} in {gold[row_id][1]}'s "
                                 f"out-of-fold file and {label!r} in {name}'s: not validation rows of one train file")
        rows = [index[row_id] for row_id in p.ids]
        sums[rows] += weight * p.values[:, [p.labels.index(label) for label in labels]]
        totals[rows] += weight
    return Probabilities(ref.task, ids, list(labels), sums / totals[:, None], [gold[i][0] for i in ids])


def ensemble_task(task: str, runs: list[Run], weighting: str, metric: Metric) -> TaskEnsemble:
    """One task's ensemble over the runs that predicted it."""
    members = [run for run in runs if task in run.probs]
    member_scores = [score(run.oof[task], metric) if task in run.oof else None for run in members]
    if weighting == "oof":
        missing = [run.name for run, s in zip(members, member_scores) if s is None]
        if missing:
            raise UsageError(f"--weights oof: {missing[0]} has no out-of-fold predictions for {task} "
                             f"({OOF_DIR}/{task}{OOF_SUFFIX} beside its probabilities: train.py writes them with "
                             "--do_eval into --output_dir; give --prediction_dir the same directory)")
        raw = [float(s) for s in member_scores]
        if not sum(raw) > 0:
            raise UsageError(f"--weights oof: every run scores 0 on {task}'s validation rows; use --weights equal")
    else:
        raw = [1.0] * len(members)
    weights = [w / sum(raw) for w in raw]
    first = members[0]
    reference = first.probs[task]
    mean = sum(w * aligned(reference, first.name, run.probs[task], run.name) for run, w in zip(members, weights))
    result = TaskEnsemble(task, [run.name for run in members], weights,
                          Probabilities(task, list(reference.ids), list(reference.labels), mean), member_scores)
    with_oof = [(run.name, run.oof[task], w) for run, w in zip(members, weights) if task in run.oof]
    if with_oof:
        result.oof = pool_oof([(name, p) for name, p, _ in with_oof], [w for _, _, w in with_oof])
        if set(result.oof.labels) != set(reference.labels):
            raise UsageError(f"{task}: the out-of-fold files have the labels {sorted(result.oof.labels)}, the test "
                             f"probabilities {sorted(reference.labels)}: not the files of one run")
        result.score = score(result.oof, metric)
    return result
