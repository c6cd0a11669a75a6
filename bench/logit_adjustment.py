"""Post-hoc logit adjustment sweep: validation macro-F1 of a trained multi-task model at several tau (train.py
--logit_adjustment), on the whole validation split and on its even and odd rows separately. A tau that is best on
both halves is not an artefact of picking it on the rows it is scored on.

The model's logits are computed once with the adjustment off, then adjusted per tau by the model's own
BertMultiTaskModel.adjust_logits (priors: mtl.labels.class_frequencies of each task's train split in the cache, as
train.py sets them).

    python bench/logit_adjustment.py --model user_data/stage2 --data_save_dir user_data [--taus 0,0.1,...]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from sklearn.metrics import f1_score

from common import REPO_ROOT, commit, machine, table
from mtl.args import DataTrainingArguments
from mtl.cache import load_or_build_task
from mtl.data import MultiTaskCollator, SingleTaskDataset
from mtl.labels import class_frequencies
from mtl.model import load_model
from mtl.tasks import get_tasks
from mtl.tokenizer import load_tokenizer


def validation_logits(model, dataset: SingleTaskDataset, pad_id: int, batch_size: int = 128) -> torch.Tensor:
    collate = MultiTaskCollator(pad_id)
    out = []
    with torch.inference_mode():
        for start in range(0, len(dataset), batch_size):
            batch = collate([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
            batch.pop("labels", None)
            out.append(model(**batch).logits.float())
    return torch.cat(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a trained multi-task model directory (train.py's output)")
    parser.add_argument("--data_save_dir", required=True, help="the task caches it was trained with (run.sh: user_data)")
    parser.add_argument("--data_dir", default=str(REPO_ROOT / "tcdata"))
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--taus", default="0,0.1,0.2,0.25,0.3,0.4,0.5,1")
    args = parser.parse_args()
    taus = [float(t) for t in args.taus.split(",")]

    tokenizer = load_tokenizer(args.model)
    data = DataTrainingArguments(data_dir=args.data_dir, data_save_dir=args.data_save_dir,
                                 cleaned_dir=args.data_save_dir, max_seq_length=args.max_seq_length).data_settings()
    tasks = get_tasks(None)
    model = load_model(args.model, None, []).eval()
    config = model.config
    scores = {part: {tau: [] for tau in taus} for part in ("all", "even rows", "odd rows")}
    for task in tasks:
        cached = load_or_build_task(task, tokenizer, data)
        task_id = config.task_index(task.name)
        head = config.tasks[task_id]
        head.class_priors = class_frequencies(cached["train"]["labels"], head.num_labels)
        config.logit_adjustment = 0.0  # raw logits once; adjusted per tau below
        logits = validation_logits(model, SingleTaskDataset(cached["val"], task_id), tokenizer.pad_token_id)
        gold = cached["val"]["labels"].numpy()
        rows = {"all": np.arange(len(gold)), "even rows": np.arange(0, len(gold), 2),
                "odd rows": np.arange(1, len(gold), 2)}
        for tau in taus:
            config.logit_adjustment = tau
            predicted = model.adjust_logits(logits, task_id).argmax(-1).numpy()
            for part, index in rows.items():
                scores[part][tau].append(f1_score(gold[index], predicted[index], average="macro"))
    names = [t.name for t in tasks]
    lines = []
    for part, by_tau in scores.items():
        for tau, per_task in by_tau.items():
            lines.append({"rows": part, "tau": tau, **{n: f"{s:.4f}" for n, s in zip(names, per_task)},
                          "avg": f"{np.mean(per_task):.4f}"})
    print(f"{machine()}; commit {commit()}; model {args.model}\n")
    print(table(lines, ["rows", "tau", *names, "avg"]))


if __name__ == "__main__":
    main()
