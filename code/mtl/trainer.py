"""MultiTaskTrainer: transformers.Trainer with task-homogeneous batches, per-task macro-F1 and an EMA of the weights.

Only documented hooks are overridden (dataloaders, evaluate, predict, checkpoint save/load); the training loop is
transformers' own, so its flags (bf16, gradient accumulation and checkpointing, report_to, resume) all apply.
"""
from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Any, Iterator, Optional

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader
from transformers import EvalPrediction, Trainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .data import MultiTaskBatchSampler, MultiTaskDataset
from .ema import EMACallback, WeightEMA
from .metrics import format_scores, split_by_task, task_scores

logger = logging.getLogger(__name__)

# Checkpoints hold the EMA weights as their model (what evaluation and inference use); the raw training
# weights travel beside them so resume_from_checkpoint continues both exactly.
TRAINING_WEIGHTS_NAME = "training_weights.safetensors"


@dataclass
class TaskPrediction:
    """One task's predictions, in file order."""

    ids: list[str]
    label_ids: np.ndarray  # (rows,)
    probabilities: np.ndarray  # (rows, classes), softmax


class MultiTaskTrainer(Trainer):
    def __init__(self, *args: Any, ema_decay: float = 0.0, ema_start_step: int = 0, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.ema: Optional[WeightEMA] = None
        if ema_decay > 0:
            self.ema = WeightEMA(self.model, ema_decay, ema_start_step)
            self.add_callback(EMACallback(self.ema))
        if self.compute_metrics is None:
            self.compute_metrics = self._task_metrics
        self._metric_tasks: list[tuple[str, int, int]] = []

    # ---- data -------------------------------------------------------------------------------------------
    def _dataloader(self, dataset: MultiTaskDataset, batch_size: int, training: bool) -> DataLoader:
        lengths = None
        if training:
            strategy = self.args.train_sampling_strategy
            if strategy == "group_by_length":
                lengths = [d.lengths for d in dataset.datasets.values()]
            elif strategy != "random":
                raise ValueError(f"train_sampling_strategy {strategy!r} is not supported; use random or group_by_length")
        sampler = MultiTaskBatchSampler(
            dataset.sizes, batch_size, shuffle=training, seed=self.args.data_seed or self.args.seed,
            drop_last=training and self.args.dataloader_drop_last, lengths=lengths)
        loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=self.data_collator,
                            num_workers=self.args.dataloader_num_workers,
                            pin_memory=self.args.dataloader_pin_memory and torch.cuda.is_available())
        if not training:
            # Left unprepared: accelerate would cut the last batch to len(dataset) % batch_size rows (its
            # padding-removal for even sharding), which is wrong for task-homogeneous batches. The Trainer moves
            # each batch to the device itself. Evaluation therefore runs on one process.
            return loader
        return self.accelerator.prepare(loader)

    def get_train_dataloader(self) -> DataLoader:
        if self.train_dataset is None:
            raise ValueError("MultiTaskTrainer: training requires a train_dataset")
        return self._dataloader(self.train_dataset, self._train_batch_size, training=True)

    def get_eval_dataloader(self, eval_dataset: Optional[MultiTaskDataset] = None) -> DataLoader:
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        if dataset is None:
            raise ValueError("MultiTaskTrainer: evaluation requires an eval_dataset")
        return self._dataloader(dataset, self.args.eval_batch_size, training=False)

    def get_test_dataloader(self, test_dataset: MultiTaskDataset) -> DataLoader:
        return self._dataloader(test_dataset, self.args.eval_batch_size, training=False)

    # ---- EMA weights for evaluation, prediction and checkpoints -----------------------------------------
    @contextlib.contextmanager
    def ema_weights(self) -> Iterator[None]:
        with self.ema.applied() if self.ema is not None else contextlib.nullcontext():
            yield

    def _tasks_of(self, dataset: MultiTaskDataset) -> list[tuple[str, int, int]]:
        config = self.accelerator.unwrap_model(self.model).config
        classes = dict(zip(config.task_names, config.task_num_labels))
        return [(name, len(ds), classes[name]) for name, ds in dataset.datasets.items()]

    def _task_metrics(self, prediction: EvalPrediction) -> dict[str, float]:
        return task_scores(prediction.predictions, prediction.label_ids, self._metric_tasks)

    def evaluate(self, eval_dataset: Optional[MultiTaskDataset] = None, ignore_keys: Optional[list[str]] = None,
                 metric_key_prefix: str = "eval") -> dict[str, float]:
        """Macro-F1 per task (`eval_<task>`), their mean (`eval_avg`) and `eval_loss`, on the EMA weights."""
        self._metric_tasks = self._tasks_of(eval_dataset if eval_dataset is not None else self.eval_dataset)
        with self.ema_weights():
            metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        logger.info("step %d\n%s", self.state.global_step,
                    format_scores(metrics, [t[0] for t in self._metric_tasks], metric_key_prefix))
        return metrics

    def predict_tasks(self, dataset: MultiTaskDataset) -> dict[str, TaskPrediction]:
        """Predicted class ids and softmax probabilities per task, in file order, on the EMA weights."""
        tasks = self._tasks_of(dataset)
        with self.ema_weights():
            output = self.predict(dataset)
        logits = split_by_task(output.predictions, tasks)
        result = {}
        for name, ds in dataset.datasets.items():
            probs = torch.softmax(torch.from_numpy(logits[name]).float(), dim=-1).numpy()
            result[name] = TaskPrediction(list(ds.ids), probs.argmax(-1), probs)
        return result

    def _save_checkpoint(self, model: torch.nn.Module, trial: Any) -> None:
        with self.ema_weights():
            super()._save_checkpoint(model, trial)
        if self.ema is not None and self.args.should_save:
            folder = os.path.join(self._get_output_dir(trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
            save_file(self.ema.training_state(), os.path.join(folder, TRAINING_WEIGHTS_NAME))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Optional[torch.nn.Module] = None) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        if self.ema is None:
            return
        self.ema.reset_from_model()  # the checkpoint's model weights are the EMA
        path = os.path.join(resume_from_checkpoint, TRAINING_WEIGHTS_NAME)
        if os.path.exists(path):
            self.ema.load_training_state(load_file(path))
        else:
            logger.warning("%s has no %s: training resumes from the EMA weights", resume_from_checkpoint,
                           TRAINING_WEIGHTS_NAME)

    def _load_best_model(self) -> None:
        super()._load_best_model()
        if self.ema is not None:
            self.ema.reset_from_model()  # the best checkpoint holds EMA weights; keep them as the final model

    def train(self, *args: Any, **kwargs: Any):
        """Train; afterwards the model holds the EMA weights (or the best checkpoint's), ready to save."""
        output = super().train(*args, **kwargs)
        if self.ema is not None:
            self.ema.copy_to_model()
        return output
