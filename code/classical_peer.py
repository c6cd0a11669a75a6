"""Score the classical peers (majority class; TF-IDF char 1-3-grams + logistic regression) on the validation split
that train.py uses, with each task's metric (macro-F1 for the competition's): `python code/classical_peer.py --help`."""
from __future__ import annotations

import json
import logging

from mtl.args import DataTrainingArguments, check_writable_dirs, parse_cli, tasks_of
from mtl.classical import classical_scores
from mtl.errors import run_cli


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    (args,) = parse_cli((DataTrainingArguments,), argv, description=__doc__, profile=False)
    check_writable_dirs({"--data_save_dir": args.data_save_dir, "--cleaned_dir": args.cleaned_dir})  # the caches
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    tasks = tasks_of(args.tasks)
    scores = classical_scores(tasks, args.data_settings())
    names = [t.name for t in tasks] + ["avg"]
    metric = "macro-F1" if all(t.metric.name == "macro_f1" for t in tasks) else "score"
    print(f"| {metric} (validation) | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for peer, values in scores.items():
        print(f"| {peer} | " + " | ".join(f"{values[n]:.4f}" for n in names) + " |")
    print(json.dumps(scores))
    return scores


if __name__ == "__main__":
    run_cli(main, "classical_peer.py")  # a user's error: one line and exit status 1, no traceback
