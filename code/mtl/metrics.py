"""Per-task macro-F1 and their mean (the competition score), and the table the CLIs print."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.metrics import f1_score


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


def task_scores(logits: np.ndarray, labels: np.ndarray, tasks: Sequence[tuple[str, int, int]]) -> dict[str, float]:
    """Macro-F1 per task (sklearn) and `avg`, their unweighted mean: the competition's score."""
    per_logits, per_labels = split_by_task(logits, tasks), split_by_task(labels, tasks)
    scores = {name: float(f1_score(per_labels[name], per_logits[name].argmax(-1), average="macro"))
              for name, _, _ in tasks}
    scores["avg"] = float(np.mean(list(scores.values())))
    return scores


def format_scores(metrics: dict[str, float], task_names: Sequence[str], prefix: str = "eval") -> str:
    """A small Markdown table of the per-task scores, their average and the loss."""
    names = [*task_names, "avg", "loss"]
    present = [n for n in names if f"{prefix}_{n}" in metrics]
    header = "| " + " | ".join(["macro-F1", *present]) + " |"
    rule = "|" + "---|" * (len(present) + 1)
    row = "| " + " | ".join([prefix, *(f"{metrics[f'{prefix}_{n}']:.4f}" for n in present)]) + " |"
    return "\n".join([header, rule, row])
