"""K-fold ensemble against the single model on rows none of them trained on (bench/kfold.sh).

`prepare DATA_DIR OUT_DIR`: a copy of the competition data whose train files lack the rows train.py's default split
validates on (--train_val_split_ratio 0.1, --split_seed 2020) and whose test A files are exactly those rows, without
their label; the labels go to OUT_DIR/heldout_labels.json. A model trained on OUT_DIR with --do_predict then
predicts the rows a default run validates on, and K fold models of OUT_DIR's train files never see them.
`score OUT_DIR RUN...`: each run's (a folder of {task}_probs.csv) macro-F1 on the held-out rows, per task and mean."""
from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "code"))

from sklearn.metrics import f1_score  # noqa: E402

from mtl.task_files import ReadSettings, TaskFiles, train_validation_tables  # noqa: E402
from mtl.tasks import get_tasks  # noqa: E402

TASKS = ("ocnli", "ocemotion", "tnews")


def prepare(data_dir: Path, out: Path) -> None:
    shutil.copytree(data_dir, out, dirs_exist_ok=True)
    labels = {}
    for task in get_tasks(list(TASKS)):
        files = TaskFiles.of(task, data_dir, None)
        _, _, validation, _ = train_validation_tables(task, files, ReadSettings())
        held = dict(zip(validation.columns["id"], validation.columns["label"]))
        labels[task.name] = held
        lines = files.train.read_text(encoding="utf-8").splitlines(keepends=True)
        keep, test = [], []
        for line in lines:
            (test if line.split("\t", 1)[0] in held else keep).append(line)
        assert len(test) == len(held), (task.name, len(test), len(held))  # one raw line per held-out row
        (out / files.train.relative_to(data_dir)).write_text("".join(keep), encoding="utf-8")
        test_a = out / files.tests["a"].relative_to(data_dir)
        test_a.write_text("".join(line.rstrip("\r\n").rsplit("\t", 1)[0] + "\n" for line in test), encoding="utf-8")
    (out / "heldout_labels.json").write_text(json.dumps(labels), encoding="utf-8")


def score(out: Path, runs: list[Path]) -> None:
    labels = json.loads((out / "heldout_labels.json").read_text(encoding="utf-8"))
    print("| run | " + " | ".join(TASKS) + " | avg |\n|---|" + "---|" * (len(TASKS) + 1))
    for run in runs:
        scores = []
        for task in TASKS:
            with open(run / f"{task}_probs.csv", encoding="utf-8") as f:
                rows = list(csv.reader(f))
            header, rows = rows[0], rows[1:]
            predicted = [header[1 + max(range(len(r) - 1), key=lambda i: float(r[1 + i]))] for r in rows]
            truth = [labels[task][r[0]] for r in rows]
            assert len(truth) == len(labels[task])
            scores.append(f1_score(truth, predicted, average="macro"))
        print(f"| {run} | " + " | ".join(f"{s:.4f}" for s in scores) + f" | {sum(scores) / len(scores):.4f} |")


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        prepare(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        score(Path(sys.argv[2]), [Path(p) for p in sys.argv[3:]])
