"""The run's curves as a PNG beside its metrics: the training loss (overall and per task), and each task's score
and their average at every evaluation, read from the Trainer's log history (what trainer_state.json holds)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a training machine
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)


def plot_curves(log_history: list[dict], task_names: list[str], path: Path, title: str = "") -> Path:
    """Two panels: loss by optimizer step (training, each task's training loss, and validation when evaluated); the
    validation score of each task and `avg` by step. Written atomically enough for its purpose: to a temporary name, then renamed."""
    train = [(e["step"], e["loss"]) for e in log_history if "loss" in e and "step" in e]
    evals = [e for e in log_history if "eval_avg" in e and "step" in e]
    fig, (loss_ax, score_ax) = plt.subplots(1, 2, figsize=(11, 4))
    if train:
        loss_ax.plot(*zip(*train), label="training loss", linewidth=2.5)
    for name in task_names:  # each task's own (unweighted) training loss, as MultiTaskTrainer logs it
        points = [(e["step"], e[f"loss_{name}"]) for e in log_history if f"loss_{name}" in e and "step" in e]
        if points:
            loss_ax.plot(*zip(*points), label=f"{name} (training)", linewidth=1.0)
    if any("eval_loss" in e for e in evals):
        loss_ax.plot([e["step"] for e in evals if "eval_loss" in e], [e["eval_loss"] for e in evals if "eval_loss" in e],
                     "o-", label="validation loss")
    loss_ax.set_xlabel("optimizer step")
    loss_ax.set_ylabel("loss")
    _legend_or_note(loss_ax, "no loss logged (--logging_steps)")
    for name in [*task_names, "avg"]:
        points = [(e["step"], e[f"eval_{name}"]) for e in evals if f"eval_{name}" in e]
        if points:
            score_ax.plot(*zip(*points), "o-", label=name, linewidth=2.5 if name == "avg" else 1.2)
    score_ax.set_xlabel("optimizer step")
    score_ax.set_ylabel("validation macro-F1")
    _legend_or_note(score_ax, "no evaluation in this run (--eval_strategy)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path


def _legend_or_note(ax, note: str) -> None:
    if ax.get_lines():
        ax.legend()
    else:
        ax.text(0.5, 0.5, note, ha="center", va="center", transform=ax.transAxes)
