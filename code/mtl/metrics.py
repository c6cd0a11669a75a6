"""Per-task scores (each task's chosen metric, plus accuracy and macro-F1), their mean, and the table the CLIs print."""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

# name -> fn(gold ids, predicted ids, positive class id); the names a task spec's "metric" may give (mtl.tasks.METRICS)
SCORERS: dict[str, Callable[[np.ndarray, np.ndarray, Optional[int]], float]] = {
    "macro_f1": lambda y, p, _: f1_score(y, p, average="macro"),
    "accuracy": lambda y, p, _: accuracy_score(y, p),
    "f1": lambda y, p, pos: f1_score(y, p, average="binary", pos_label=pos),
    "weighted_f1": lambda y, p, _: f1_score(y, p, average="weighted"),
    "matthews": lambda y, p, _: matthews_corrcoef(y, p),
}
ALWAYS_REPORTED = ("accuracy", "macro_f1")


def split_by_task(array: np.ndarray, tasks: Sequence[tuple[str, int, int]]) -> dict[str, np.ndarray]:
    """Rows of an evaluation output in task order -> per-task arrays, logits cropped to the task's classes.

    Evaluation batches come task by task in file order, and Trainer pads the narrower logits of earlier
    tasks to the widest with -100, so `tasks` = [(name, rows, classes), ...] undoes both.
    """
    out, start = {}, 0
    for name, rows, classes in tasks:
        part = array[start:start + rows]
        out[name] = part[:, :classes] if part.ndim == 2 else part
        start += rows
    if start != len(array):
        raise ValueError(f"expected {start} rows for tasks {[t[0] for t in tasks]}, got {len(array)}")
    return out


def task_scores(logits: np.ndarray, labels: np.ndarray, tasks: Sequence[tuple[str, int, int]],
                metrics: Optional[dict[str, tuple[str, Optional[int]]]] = None) -> dict[str, float]:
    """Per task: `<task>`, its chosen metric (`metrics[task]` = (name, positive class id), default macro-F1), and
    `<task>_<metric>` for the other metrics reported (accuracy, macro-F1); `avg`: the unweighted mean of the chosen
    metrics (for the competition's tasks, the competition's score)."""
    per_logits, per_labels = split_by_task(logits, tasks), split_by_task(labels, tasks)
    scores, chosen = {}, []
    for name, _, _ in tasks:
        metric, pos = (metrics or {}).get(name, ("macro_f1", None))
        gold, predicted = per_labels[name], per_logits[name].argmax(-1)
        scores[name] = float(SCORERS[metric](gold, predicted, pos))
        chosen.append(scores[name])
        for other in ALWAYS_REPORTED:
            if other != metric:
                scores[f"{name}_{other}"] = float(SCORERS[other](gold, predicted, None))
    scores["avg"] = float(np.mean(chosen))
    return scores


def format_scores(metrics: dict[str, float], task_names: Sequence[str], prefix: str = "eval", title: str = "macro-F1") -> str:
    """A small Markdown table of the per-task scores (each its chosen metric), their average and the loss."""
    names = [*task_names, "avg", "loss"]
    present = [n for n in names if f"{prefix}_{n}" in metrics]
    header = "| " + " | ".join([title, *present]) + " |"
    rule = "|" + "---|" * (len(present) + 1)
    row = "| " + " | ".join([prefix, *(f"{metrics[f'{prefix}_{n}']:.4f}" for n in present)]) + " |"
    return "\n".join([header, rule, row])
