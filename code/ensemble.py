"""Average the class probabilities of several runs (the folds of --num_folds, seeds, different models) into the
competition's prediction files and submit.zip, and score the runs' out-of-fold predictions: `python code/ensemble.py --help`.

    python code/ensemble.py user_data/fold0/stage2 user_data/fold1/stage2 user_data/fold2/stage2 --output_dir prediction_result
    python code/ensemble.py runA/tnews_probs.csv runB/tnews_probs.csv --output_dir ens --weights oof

A run is a directory of `{task}_probs.csv` files (train.py --do_predict writes them into --prediction_dir), or one
such file. Its out-of-fold predictions are read from `oof/{task}_oof.csv` beside them (train.py --do_eval writes them
into --output_dir: give both flags one directory, as `FOLDS=K bash run.sh` does). Each task is averaged over the runs
that predicted it; runs whose ids or labels differ are refused. --weights oof weighs run r on task t by its score on
its own validation rows, s(r,t) / sum over runs of s(r,t). The out-of-fold score pools the runs' validation rows, each
scored with the weighted mean of the runs that validated it: for the folds of one split, the K folds' out-of-fold
predictions joined; for runs on one validation split, their ensemble's validation score.

Writes into --output_dir: {task}_predict.json and submit.zip, the ensemble's {task}_probs.csv and oof/{task}_oof.csv
(so an ensemble is itself a run), ensemble.json (members, weights, scores); prints the scores table.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Optional

from mtl.atomic_write import write_text_atomic
from mtl.ensemble import WEIGHTINGS, Metric, Run, TaskEnsemble, ensemble_task, load_run
from mtl.errors import ArgumentParser, UsageError, run_cli
from mtl.outputs import SUBMISSION_ZIP, write_prediction_file, write_submission_zip
from mtl.paths import resolve
from mtl.probabilities import oof_path, probs_path, write_probabilities
from mtl.tasks import REGISTRY

logger = logging.getLogger("ensemble")
SUMMARY = "ensemble.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR_OR_PROB_FILE",
                        help="Directories of {task}_probs.csv files, or such files.")
    parser.add_argument("--output_dir", required=True, help="Where the ensemble's files go (e.g. prediction_result).")
    parser.add_argument("--weights", choices=WEIGHTINGS, default="equal", help="equal (default), or oof: each run's "
                        "weight on a task proportional to its out-of-fold score on it.")
    parser.add_argument("--tasks", default=None, help="The task specs whose metrics score the out-of-fold "
                        "predictions (names, spec files, folders, as train.py's --tasks); default: the bundled spec "
                        "of each task's name, macro-F1 for a task without one.")
    return parser.parse_args(argv)


def metrics_for(names: list[str], tasks: Optional[str]) -> dict[str, Metric]:
    if tasks:
        from mtl.args import tasks_of  # here: mtl.args imports torch and transformers, seconds this CLI rarely needs

        specs = {t.name: t for t in tasks_of(tasks)}
    else:
        specs = dict(REGISTRY)
    metrics = {}
    for name in names:
        if name in specs:
            metrics[name] = (specs[name].metric.name, specs[name].metric.pos_label)
        else:
            logger.warning("%s: no task spec of that name; its out-of-fold predictions are scored by macro-F1 "
                           "(--tasks SPEC gives its metric)", name)
            metrics[name] = ("macro_f1", None)
    return metrics


def scores_table(results: list[TaskEnsemble], runs: list[Run], title: str) -> str:
    """Markdown: each run's score on its own validation rows, and the pooled out-of-fold score; avg where a row
    has every task."""
    def row(name: str, values: list[Optional[float]]) -> str:
        cells = [f"{v:.4f}" if v is not None else "-" for v in values]
        avg = f"{sum(values) / len(values):.4f}" if all(v is not None for v in values) else "-"
        return f"| {name} | {' | '.join(cells)} | {avg} |"

    lines = [f"| out-of-fold {title} | {' | '.join(r.task for r in results)} | avg |", "|---" * (len(results) + 2) + "|"]
    for run in runs:
        lines.append(row(run.name, [r.member_scores[r.members.index(run.name)] if run.name in r.members else None
                                    for r in results]))
    lines.append(row("ensemble", [r.score for r in results]))
    return "\n".join(lines)


def write_ensemble(results: list[TaskEnsemble], out_dir: Path, runs: list[str], weights: str,
                   metrics: dict[str, Metric]) -> None:
    """The prediction files and submit.zip, the ensemble's probabilities and pooled out-of-fold file, ensemble.json."""
    files = []
    for r in results:
        logger.info("%s: %d run(s), weights %s", r.task, len(r.members), ", ".join(f"{w:.4f}" for w in r.weights))
        files.append(write_prediction_file(r.task, r.test.ids, [r.test.labels[k] for k in r.test.label_ids()], out_dir))
        write_probabilities(probs_path(out_dir, r.task), r.test)
        if r.oof is not None:
            write_probabilities(oof_path(out_dir, r.task), r.oof)
    zip_path = write_submission_zip(files, out_dir / SUBMISSION_ZIP)
    summary = {"weights": weights, "runs": runs,
               "tasks": {r.task: {"runs": r.members, "weights": r.weights, "run_scores": r.member_scores,
                                  "metric": metrics[r.task][0], "oof_score": r.score} for r in results}}
    write_text_atomic(out_dir / SUMMARY, json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    logger.info("wrote %s and %s", ", ".join(str(f) for f in files), zip_path)


def main(argv: list[str] | None = None) -> list[TaskEnsemble]:
    args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    out_dir = resolve(args.output_dir)
    names = [str(resolve(r)) for r in args.runs]
    twice = next((r for r, n in zip(args.runs, names) if names.count(n) > 1), None)
    if twice is not None:
        raise UsageError(f"{twice}: given twice; each run counts once")
    if any(out_dir == (Path(n) if Path(n).is_dir() else Path(n).parent) for n in names):  # its files would be replaced
        raise UsageError(f"--output_dir {args.output_dir} holds one of the runs; give the ensemble a directory of its own")
    runs = [load_run(resolve(r), r) for r in args.runs]
    found = list(dict.fromkeys(task for run in runs for task in run.probs))
    bundled = list(REGISTRY)  # the competition's three first, as train.py orders them
    task_names = sorted(found, key=lambda t: (bundled.index(t) if t in bundled else len(bundled), found.index(t)))
    metrics = metrics_for(task_names, args.tasks)
    # every check (ids, labels, out-of-fold files) before the first file is written
    results = [ensemble_task(task, runs, args.weights, metrics[task]) for task in task_names]

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_ensemble(results, out_dir, args.runs, args.weights, metrics)
    except OSError as err:  # an unwritable --output_dir fails at its first file: nothing is half-written
        raise UsageError(f"--output_dir {args.output_dir}: cannot be written ({err.strerror}); give a directory "
                         "you can write to") from None
    title = "macro-F1" if all(m == "macro_f1" for m, _ in metrics.values()) else "score"
    print(scores_table(results, runs, title) if any(r.score is not None for r in results) else
          "ensemble.py: no out-of-fold predictions among the runs (oof/ beside their probabilities): no score")
    return results


if __name__ == "__main__":
    run_cli(main, "ensemble.py")  # a user's error: one line and exit status 1, no traceback
