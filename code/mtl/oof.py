"""Out-of-fold predictions: the class probabilities of the validation rows at the final evaluation, saved with the
model (`OUTPUT_DIR/oof/{task}_oof.csv`, mtl.probabilities). With --num_folds they are the fold's out-of-fold
predictions; code/ensemble.py pools the folds' into one out-of-fold score and weighs runs by them."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from .data import MultiTaskDataset
from .metrics import split_by_task
from .probabilities import Probabilities, oof_path, write_probabilities


@contextlib.contextmanager
def capturing_evaluation(trainer: Any) -> Iterator[list[Any]]:
    """Collects the EvalLoopOutput of every evaluation run inside the block. Trainer.evaluate returns only the
    metrics; its loop's output holds the predictions, so the validation split is not run through the model twice."""
    outputs: list[Any] = []
    loop = trainer.evaluation_loop

    def capture(*args: Any, **kwargs: Any) -> Any:
        output = loop(*args, **kwargs)
        outputs.append(output)
        return output

    trainer.evaluation_loop = capture
    try:
        yield outputs
    finally:
        del trainer.evaluation_loop  # the class's own method again


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
