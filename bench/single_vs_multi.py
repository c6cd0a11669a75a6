"""Single- vs multi-task fine-tuning: each task trained alone and all tasks trained together, with the same encoder,
model size, recipe (run.sh's demo stage 1 profile) and number of examples seen per task (--max_train_samples rows,
--epochs epochs, in both arms); validation score of each task (its spec's metric) side by side, and a chart.

    python bench/single_vs_multi.py                      # the tasks of RESULTS.md, sized to ~20 min on 2 CPU cores
    python bench/single_vs_multi.py --smoke              # tiny model and sizes (the tests run it)
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from common import REPO_ROOT, header, results_path, table, work_dir, write_section

DEFAULT_TASKS = ["data/extra/shopping_cat.json", "data/extra/shopping_sentiment.json",
                 "data/extra/waimai_sentiment.json", "ocnli"]
PROFILE = "code/assets/profiles/demo_stage1.json"


def run(args: list[str], log: Path) -> float:
    """A CLI of the project as a subprocess; returns its wall time. Its output goes to `log`."""
    start = time.perf_counter()
    with log.open("w") as f:
        result = subprocess.run([sys.executable, *args], cwd=REPO_ROOT, stdout=f, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        sys.exit(f"single_vs_multi: {' '.join(args[:2])} failed; see {log}")
    return time.perf_counter() - start


def encoder(out: Path, smoke: bool, model: str | None) -> list[str]:
    """The encoder both arms start from: --model, else the demo model pretrained as run.sh does (reused if there)."""
    if smoke:
        return ["--config_name", "code/assets/configs/tiny.json"]
    path = Path(model) if model else out / "demo_model"
    if not (path / "model.safetensors").exists():
        if model:
            sys.exit(f"single_vs_multi: --model {model}: no model.safetensors")
        print(f"pretraining the demo encoder -> {path} (run.sh's step 2/5)", flush=True)
        run(["code/pretrain.py", "--config_name", "code/assets/configs/demo.json", "--output_dir", str(path),
             "--num_train_epochs", "0.3", "--train_sampling_strategy", "group_by_length"], out / "pretrain.log")
    return ["--model_name_or_path", str(path)]


def chart(rows: list[dict], path: Path) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return ""
    fig, ax = plt.subplots(figsize=(8, 3.4))
    for k, (arm, key) in enumerate((("single-task", "single"), ("multi-task", "multi"))):
        bars = ax.bar([i + (k - 0.5) * 0.38 for i in range(len(rows))], [float(r[key]) for r in rows], 0.38, label=arm)
        ax.bar_label(bars, fmt="%.3f", fontsize=8)
    ax.set_xticks(range(len(rows)), [f"{r['task']}\n({r['metric']})" for r in rows], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("validation score")
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title("Each task alone vs all together (same encoder, recipe and examples per task)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return f"\n![single vs multi-task]({path.name})\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default=",".join(DEFAULT_TASKS), help="Tasks (names or spec files), comma-separated.")
    parser.add_argument("--max_train_samples", type=int, default=8000, help="Train rows per task, in both arms.")
    parser.add_argument("--epochs", type=float, default=2.0, help="Epochs over those rows, in both arms.")
    # EMA off by default: the profile's 0.999 averages over ~1,000 steps, longer than a single-task run here (a quarter
    # of the multi-task run's steps), so its evaluated weights would still be mostly the initial ones.
    parser.add_argument("--ema_decay", type=float, default=0.0, help="EMA decay in both arms (default 0: off).")
    parser.add_argument("--model", help="Encoder to start from (default: the demo model, pretrained if missing).")
    parser.add_argument("--smoke", action="store_true", help="Tiny model and sizes, results left alone.")
    parser.add_argument("--out", help="Results file (default bench/results/single_vs_multi.md).")
    args = parser.parse_args()
    if args.smoke:
        args.max_train_samples, args.epochs = 48, 1.0
    out = work_dir("single_vs_multi")
    out.mkdir(parents=True, exist_ok=True)
    start = encoder(out, args.smoke, args.model)
    tasks = args.tasks.split(",")
    common = [PROFILE, *start, "--max_train_samples", str(args.max_train_samples), "--num_train_epochs", str(args.epochs),
              "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "false",
              "--ema_decay", str(args.ema_decay), "--do_train", "--do_eval", "--overwrite_output_dir", "--report_to", "none", "--disable_tqdm", "true",
              "--data_save_dir", str(out / "cache"), "--cleaned_dir", str(out / "cache")]
    if args.smoke:
        # --debug: the first rows of each file, so each arm's cache and evaluation are small too
        common += ["--max_seq_length", "32", "--per_device_train_batch_size", "16", "--debug"]
    arms = {"multi": tasks, **{f"single_{i}": [t] for i, t in enumerate(tasks)}}
    results, walls = {}, {}
    for name, arm_tasks in arms.items():
        print(f"{name}: {','.join(arm_tasks)}", flush=True)
        walls[name] = run(["code/train.py", *common, "--tasks", ",".join(arm_tasks), "--output_dir", str(out / name)],
                          out / f"{name}.log")
        results[name] = json.loads((out / name / "eval_results.json").read_text())
        results[name]["steps"] = json.loads((out / name / "trainer_state.json").read_text())["global_step"]

    config = json.loads((out / "multi" / "config.json").read_text())
    rows = []
    for i, task_name in enumerate(t["name"] for t in config["tasks"]):
        single, multi = results[f"single_{i}"], results["multi"]
        metric = _metric_of(tasks[i])
        rows.append({"task": task_name, "metric": metric, "single": f"{single[f'eval_{task_name}']:.4f}",
                     "multi": f"{multi[f'eval_{task_name}']:.4f}",
                     "multi − single": f"{multi[f'eval_{task_name}'] - single[f'eval_{task_name}']:+.4f}",
                     "single steps": single["steps"], "single wall s": f"{walls[f'single_{i}']:.0f}"})
    mean_single = sum(float(r["single"]) for r in rows) / len(rows)
    rows.append({"task": "**mean**", "metric": "", "single": f"{mean_single:.4f}", "multi": f"{results['multi']['eval_avg']:.4f}",
                 "multi − single": f"{results['multi']['eval_avg'] - mean_single:+.4f}",
                 "single steps": sum(results[f"single_{i}"]["steps"] for i in range(len(tasks))),
                 "single wall s": f"{sum(walls[f'single_{i}'] for i in range(len(tasks))):.0f}"})
    command = " ".join(["python bench/single_vs_multi.py", *sys.argv[1:]])
    text = header("Single- vs multi-task fine-tuning", command)
    described = ("the demo model pretrained as run.sh's step 2 does (code/assets/configs/demo.json: hidden 128, 4 layers; "
                 "0.3 epoch of whole-word-masking MLM on the competition texts)" if not args.smoke and not args.model
                 else " ".join(start))
    text += (f"Encoder: {described}; recipe `{PROFILE}` with `--max_train_samples {args.max_train_samples} "
             f"--num_train_epochs {args.epochs} --ema_decay {args.ema_decay}` in both arms (so every task's train rows "
             "are seen equally often), evaluated once at the end on each task's validation split. The multi-task run took "
             f"{results['multi']['steps']} optimizer steps in {walls['multi']:.0f} s.\n\n")
    text += table(rows, ["task", "metric", "single", "multi", "multi − single", "single steps", "single wall s"])
    if not args.smoke:
        text += chart(rows[:-1], REPO_ROOT / "bench" / "single_vs_multi.png")
    write_section(results_path("single_vs_multi", args.smoke, args.out), text)


def _metric_of(task: str) -> str:
    from mtl.tasks import get_tasks

    metric = get_tasks(task)[0].metric
    return metric.name + (f" (positive {metric.pos_label})" if metric.pos_label else "")


if __name__ == "__main__":
    main()
