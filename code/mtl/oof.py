"""Out-of-fold predictions: the class probabilities of the validation rows at the final evaluation, saved with the
model (`OUTPUT_DIR/oof/{task}_oof.csv`, mtl.probabilities). With --num_folds they are the fold's out-of-fold
predictions; code/ensemble.py pools the folds' into one out-of-fold score and weighs runs by them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .data import MultiTaskDataset
from .metrics import split_by_task
from .probabilities import Probabilities, oof_path, write_probabilities


def validation_probabilities(predictions: np.ndarray, dataset: MultiTaskDataset,
                             id2label: dict[str, dict[int, str]]) -> dict[str, Probabilities]:
    """An evaluation's logits (rows of `dataset` in its order) -> each task's softmax probabilities with its rows'
    ids and true labels (computed as MultiTaskTrainer.predict_tasks computes the test probabilities)."""
    tasks = [(name, len(ds), len(id2label[name])) for name, ds in dataset.datasets.items()]
    logits = split_by_task(predictions, tasks)
    result = {}
    for name, ds in dataset.datasets.items():
        names = id2label[name]
        probs = torch.softmax(torch.from_numpy(logits[name]).float(), dim=-1).numpy()
        result[name] = Probabilities(name, list(ds.ids), [names[i] for i in range(len(names))], probs,
                                     [names[int(k)] for k in ds.labels])
    return result


def write_oof(model_dir: str | Path, probabilities: dict[str, Probabilities]) -> list[Path]:
    return [write_probabilities(oof_path(model_dir, name), probs) for name, probs in probabilities.items()]
