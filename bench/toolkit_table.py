"""The table of bench/toolkit.sh: per variant, the validation macro-F1 per task and their mean over seeds, the spread
(max - min of the seeds' averages) and the seconds per optimizer step (train_runtime / global_step; the fastest of
the seeds' runs, since load from other work on a shared machine only ever slows a run down).
Usage: python bench/toolkit_table.py OUT_DIR"""
from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

TASKS = ("ocnli", "ocemotion", "tnews")


def main(out: Path) -> None:
    runs = defaultdict(list)
    for run in sorted(out.iterdir()):
        if (run / "eval_results.json").exists() and "_s" in run.name:
            variant, seed = run.name.rsplit("_s", 1)
            scores = json.loads((run / "eval_results.json").read_text())
            train = json.loads((run / "train_results.json").read_text())
            state = json.loads((run / "trainer_state.json").read_text())
            runs[variant].append((seed, scores, train["train_runtime"] / state["global_step"]))
    base = runs.get("baseline")
    base_step = min(r[2] for r in base) if base else None
    print("| variant | seeds | " + " | ".join(TASKS) + " | avg (mean) | spread | s/step | × baseline |")
    print("|---|---|" + "---|" * len(TASKS) + "---|---|---|---|")
    for variant, rows in runs.items():
        def mean(key: str, rows=rows) -> float:
            return sum(r[1][key] for r in rows) / len(rows)

        avgs = [r[1]["eval_avg"] for r in rows]
        step = min(r[2] for r in rows)
        ratio = f"{step / base_step:.2f}" if base_step else "-"
        print(f"| {variant} | {','.join(r[0] for r in rows)} | "
              + " | ".join(f"{mean(f'eval_{t}'):.4f}" for t in TASKS)
              + f" | {mean('eval_avg'):.4f} | {max(avgs) - min(avgs):.4f} | {step:.3f} | {ratio} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
