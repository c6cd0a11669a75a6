"""MultiTaskTrainer: transformers.Trainer with task-homogeneous batches and per-task scores.

The training loop is transformers' own, so its flags (bf16, gradient accumulation and checkpointing, report_to,
resume, DDP under torchrun or accelerate launch) all apply. The trainer keeps the dataloaders (our sampler shards
task batches across processes), the loss with its task weights and per-task logging, and `evaluation_loop` (exact
row accounting, each task scored from the dataset evaluated, the Trainer's evaluation-only set-up). Beside it: the
EMA's evaluation and checkpoint handling (mtl/ema.py's mixin), PCGrad's step (mtl/pcgrad.py), crash-safe saves
(mtl/checkpoints.py, around the private `_save_checkpoint`), and the refusals of unsupported option combinations
(mtl/support.py). `_load_from_checkpoint` refuses another run's checkpoint; `_run_epoch` takes no extra step in a
resumed, finished run.
"""
from __future__ import annotations

import functools
import json
import logging
import os
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch
from accelerate.utils import gather_object
from torch.utils.data import DataLoader
from transformers import Trainer
from transformers.trainer_utils import EvalLoopOutput, denumpify_detensorize

from . import checkpoints
from .adversarial import adversarial_step
from .args import MultiTaskTrainingArguments
from .data import MultiTaskBatchSampler, MultiTaskDataset
from .ema import EMATrainerMixin
from .errors import UsageError
from .labels import IGNORE_LABEL
from .llrd import layerwise_groups
from .metrics import format_scores, split_by_task, task_scores
from .model import head_names
from .pcgrad import TaskGroupBatchSampler, TaskGroupCollator, pcgrad_backward
from .rdrop import rdrop_inputs, symmetric_kl
from .support import refuse_unsupported, refuse_without_dropout
from .task_mixing import mixing_for, proportional_mixing

logger = logging.getLogger(__name__)


@dataclass
class TaskPrediction:
    """One task's predictions, in file order."""

    ids: list[str]
    label_ids: np.ndarray  # (rows,)
    probabilities: np.ndarray  # (rows, classes), softmax


class EpochDataLoader(DataLoader):
    """A DataLoader whose `set_epoch` reaches its batch sampler: the Trainer calls it at every epoch, also after
    resuming at an epoch boundary, where the sampler's own epoch counter would start again from 0."""

    def set_epoch(self, epoch: int) -> None:
        self.batch_sampler.set_epoch(epoch)


class MultiTaskTrainer(EMATrainerMixin, Trainer):
    args: MultiTaskTrainingArguments

    def __init__(self, model: torch.nn.Module, args: MultiTaskTrainingArguments,
                 task_metrics: Optional[dict[str, tuple[str, Optional[int]]]] = None, **kwargs: Any):
        """`task_metrics`: task -> (metric name, positive class id) that eval_<task> reports (default macro-F1)."""
        if not isinstance(args, MultiTaskTrainingArguments):
            raise TypeError(f"MultiTaskTrainer takes mtl.args.MultiTaskTrainingArguments, not {type(args).__name__}")
        if kwargs.get("compute_metrics") is not None:
            raise ValueError("MultiTaskTrainer scores each task itself (task_metrics); compute_metrics is not used")
        super().__init__(model=model, args=args, **kwargs)
        self.task_metrics = dict(task_metrics or {})
        module = self.accelerator.unwrap_model(self.model)
        self.task_names: list[str] = list(module.config.task_names)
        self.task_loss_weights = parse_task_loss_weights(self.args.task_loss_weights, self.task_names)
        # per-task training loss (unweighted cross-entropy) since the last log: sums and batch counts, on the device
        self._task_loss_stats: Optional[torch.Tensor] = None
        self._record_task_loss = True  # off for the extra passes of adversarial training
        refuse_unsupported(self.args, freeze=not any(p.requires_grad for p in module.bert.parameters()))
        refuse_without_dropout(self.args, module.config)
        self._eval_model: Optional[torch.nn.Module] = None  # the model evaluation-only runs prepare (see there)
        self.last_evaluation: Optional[EvalLoopOutput] = None  # the latest evaluation loop's output (predictions)
        # the latest evaluation of the validation set inside train(): (global step, metrics, loop output)
        self._training_evaluation: Optional[tuple[int, dict[str, float], EvalLoopOutput]] = None

    # ---- data -------------------------------------------------------------------------------------------
    def _dataloader(self, dataset: MultiTaskDataset, batch_size: int, training: bool) -> DataLoader:
        args = self.args
        max_tokens = args.max_tokens_per_batch if training else None
        # a token budget implies length grouping (args.py refuses strategies other than random and group_by_length)
        grouped = training and (args.train_sampling_strategy == "group_by_length" or max_tokens is not None)
        mixing = proportional_mixing
        if training:
            mixing = mixing_for(args.task_sampling, dataset.sizes, args.task_sampling_temperature,
                                args.task_sampling_cap)
        # Every process builds the same sampler and takes its own shard: whole task batches, never passed through
        # accelerator.prepare (its BatchSamplerShard would shard again, and with even_batches repeat batches).
        pcgrad = training and args.pcgrad
        sampler = (TaskGroupBatchSampler if pcgrad else MultiTaskBatchSampler)(
            dataset.sizes, batch_size, shuffle=training, seed=args.data_seed or args.seed,
            drop_last=training and args.dataloader_drop_last,
            lengths=[d.lengths for d in dataset.datasets.values()] if grouped else None, mixing=mixing,
            num_replicas=args.world_size, rank=args.process_index,
            max_tokens=max_tokens, pad_multiple=args.pad_to_multiple_of or 1)
        collate = TaskGroupCollator(self.data_collator) if pcgrad else self.data_collator
        # The Trainer moves each batch to the device itself (_prepare_inputs).
        return EpochDataLoader(dataset, batch_sampler=sampler, collate_fn=collate,
                               num_workers=args.dataloader_num_workers,
                               pin_memory=args.dataloader_pin_memory and torch.cuda.is_available())

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

    # ---- the loss: task weights, per-task logging ----------------------------------------------------------
    def compute_loss(self, model: torch.nn.Module, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Optional[torch.Tensor] = None):
        """The model's cross-entropy, times the batch's task weight in training (the one place weights apply).

        A batch holds one task, so the weight scales the whole micro-batch loss; under gradient accumulation and
        DDP each micro-batch keeps its own task's weight, so a weight means the same with any number of
        processes or accumulation steps. `task_id` is a Python int: picking the weight costs no device sync."""
        task_id = inputs["task_id"]
        rdrop = model.training and self.args.rdrop_alpha > 0
        if rdrop:  # both dropout passes in one forward of the doubled batch
            inputs = rdrop_inputs(inputs)
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        if rdrop:  # the model's loss is already the mean cross-entropy of the two halves
            first, second = outputs.logits.float().chunk(2)
            loss = loss + self.args.rdrop_alpha * symmetric_kl(first, second)
        if model.training and self._record_task_loss:
            if self._task_loss_stats is None:
                self._task_loss_stats = torch.zeros(2, len(self.task_names), device=loss.device)
            self._task_loss_stats[0, task_id] += loss.detach().float()
            self._task_loss_stats[1, task_id] += 1
            weight = self.task_loss_weights[task_id]
            if weight != 1.0:
                loss = loss * weight
        return (loss, outputs) if return_outputs else loss

    def training_step(self, model: torch.nn.Module, inputs: dict[str, Any],
                      num_items_in_batch: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The Trainer's step, or with --pcgrad one PCGrad step over the step's task batches (mtl/pcgrad.py)."""
        if self.args.adversarial != "no":
            return self._adversarial_training_step(model, inputs, num_items_in_batch)
        if not self.args.pcgrad:
            return super().training_step(model, inputs, num_items_in_batch)
        model.train()
        # The unwrapped module: DDP's reducer would sum the tasks' gradients before the surgery. Heads are found by
        # parameter identity, not by name (under --torch_compile names would start with `_orig_mod.`).
        module = self.accelerator.unwrap_model(model, keep_torch_compile=False)
        head_ids = {id(p) for p in module.heads.parameters()}
        shared = [p for p in module.parameters() if p.requires_grad and id(p) not in head_ids]

        def task_loss(batch: dict[str, Any]) -> torch.Tensor:
            with self.compute_loss_context_manager():
                return self.compute_loss(module, batch)

        tasks = [(functools.partial(task_loss, batch),
                  [p for p in module.heads[self.task_names[batch["task_id"]]].parameters() if p.requires_grad])
                 for batch in self._prepare_inputs(inputs)["task_batches"]]
        mean = functools.partial(self.accelerator.reduce, reduction="mean") if self.args.world_size > 1 else None
        return pcgrad_backward(shared, tasks, torch.Generator().manual_seed(self.args.seed + self.state.global_step),
                               self.accelerator.scaler, mean)

    def _adversarial_training_step(self, model: torch.nn.Module, inputs: dict[str, Any],
                                   num_items_in_batch: Optional[torch.Tensor]) -> torch.Tensor:
        """--adversarial fgm|pgd (mtl/adversarial.py): the Trainer's own step on the clean batch, then again with
        the word embeddings perturbed (its loss not logged); the returned loss is the clean one."""
        module = self.accelerator.unwrap_model(model, keep_torch_compile=False)
        inputs = self._prepare_inputs(inputs)
        trainer_step = functools.partial(Trainer.training_step, self, model, inputs, num_items_in_batch)

        def adversarial_pass() -> torch.Tensor:
            self._record_task_loss = False
            try:
                return trainer_step()
            finally:
                self._record_task_loss = True

        def inner_loss() -> torch.Tensor:
            self._record_task_loss = False
            try:
                with self.compute_loss_context_manager():
                    return self.compute_loss(module, inputs)
            finally:
                self._record_task_loss = True

        mean = functools.partial(self.accelerator.reduce, reduction="mean") if self.args.world_size > 1 else None
        return adversarial_step(module.bert.embeddings.word_embeddings.weight, trainer_step, adversarial_pass,
                                inner_loss, method=self.args.adversarial, epsilon=self.args.adversarial_epsilon,
                                steps=self.args.adversarial_steps, mean=mean)

    def create_optimizer(self, model: Optional[torch.nn.Module] = None) -> torch.optim.Optimizer:
        """The Trainer's optimizer; with --layerwise_lr_decay its parameter groups split by depth (mtl/llrd.py),
        before the scheduler is built from their learning rates."""
        optimizer = super().create_optimizer(model)
        if self.args.layerwise_lr_decay != 1.0:
            module = self.model if model is None else model
            optimizer.param_groups[:] = layerwise_groups(optimizer.param_groups, module, self.args.layerwise_lr_decay)
        return optimizer

    def log(self, logs: dict[str, float], start_time: Optional[float] = None) -> None:
        """Training logs also get `loss_{task}`: each task's mean unweighted loss since the last log, over all
        processes (every process logs at the same steps, so the reduction is collective)."""
        if "loss" in logs and self._task_loss_stats is not None:
            stats = self._task_loss_stats
            if self.args.world_size > 1:
                stats = self.accelerator.reduce(stats.clone(), reduction="sum")
            sums, counts = stats.tolist()
            for name, total, count in zip(self.task_names, sums, counts):
                if count:
                    logs[f"loss_{name}"] = round(total / count, 4)
            self._task_loss_stats.zero_()
        super().log(logs, start_time)

    # ---- evaluation and prediction -----------------------------------------------------------------------
    def _tasks_of(self, dataset: MultiTaskDataset) -> list[tuple[str, int, int]]:
        """(name, rows, classes) of each task in `dataset`, in its order: how its evaluation output splits."""
        config = self.accelerator.unwrap_model(self.model).config
        classes = {t.name: t.num_labels for t in config.tasks}
        return [(name, len(ds), classes[name]) for name, ds in dataset.datasets.items()]

    def score_title(self) -> str:
        """The header of the scores table: what eval_<task> is."""
        names = {metric for metric, _ in self.task_metrics.values()} or {"macro_f1"}
        return "macro-F1" if names == {"macro_f1"} else "score"

    def evaluation_loop(self, dataloader: DataLoader, description: str, prediction_loss_only: Optional[bool] = None,
                        ignore_keys: Optional[list[str]] = None, metric_key_prefix: str = "eval") -> EvalLoopOutput:
        """Every row of the dataset exactly once, in dataset order, with any number of processes.

        Each process runs its own whole task batches (the sampler's shard) on the unwrapped model; every batch's
        row indices, logits, labels and loss are gathered (accelerate's gather_object) and placed by row index,
        and a row seen other than once is an error. The Trainer's own loop instead trims gathered rows with
        gather_for_metrics, whose count follows whichever prepared dataloader is active: the training one right
        after an epoch ends, which cut every evaluation batch to len(train) % batch_size rows.
        """
        model = self._evaluation_model()
        model.eval()
        if hasattr(self.optimizer, "eval") and callable(self.optimizer.eval):
            self.optimizer.eval()  # schedule-free optimizers evaluate their averaged weights (the Trainer's own step)
        batch_rows = list(dataloader.batch_sampler)  # deterministic when not shuffling: the dataloader's order
        records = []
        for rows, inputs in zip(batch_rows, dataloader, strict=True):
            loss, logits, labels = self.prediction_step(model, inputs, prediction_loss_only=False,
                                                        ignore_keys=ignore_keys)
            records.append((rows, logits.float().cpu().numpy(), None if labels is None else labels.cpu().numpy(),
                            None if loss is None else float(loss) * len(rows)))
            self.control = self.callback_handler.on_prediction_step(self.args, self.state, self.control)
        if self.args.world_size > 1:
            records = gather_object(records)

        dataset = dataloader.dataset
        rows_total = len(dataset)
        width = max((logits.shape[1] for _, logits, _, _ in records), default=0)
        # narrower tasks' logits are padded with -100, as the Trainer's own loop does (split_by_task crops them)
        predictions = np.full((rows_total, width), -100, dtype=np.float32)
        labelled = all(labels is not None for _, _, labels, _ in records)
        label_ids = np.full(rows_total, IGNORE_LABEL, dtype=np.int64) if labelled else None
        seen = np.zeros(rows_total, dtype=np.int64)
        for rows, logits, labels, _ in records:
            predictions[rows, :logits.shape[1]] = logits
            seen[rows] += 1
            if label_ids is not None:
                label_ids[rows] = labels
        if not (seen == 1).all():
            raise RuntimeError(f"{description}: {int((seen == 0).sum())} of {rows_total} rows were not evaluated and "
                               f"{int((seen > 1).sum())} more than once; the evaluation sampler lost rows")

        metrics = {}
        if label_ids is not None:
            metrics = denumpify_detensorize(task_scores(predictions, label_ids, self._tasks_of(dataset),
                                                        self.task_metrics))
        losses = [loss for _, _, _, loss in records if loss is not None]
        if losses:  # the mean over rows, not over batches (a task's last batch is short)
            metrics["loss"] = sum(losses) / sum(len(rows) for rows, _, _, loss in records if loss is not None)
        metrics = {k if k.startswith(f"{metric_key_prefix}_") else f"{metric_key_prefix}_{k}": v
                   for k, v in metrics.items()}
        # kept for callers of evaluate(), which returns the metrics only (train.py writes the out-of-fold file from it)
        self.last_evaluation = EvalLoopOutput(predictions=predictions, label_ids=label_ids, metrics=metrics,
                                              num_samples=rows_total)
        return self.last_evaluation

    def _evaluation_model(self) -> torch.nn.Module:
        """The module evaluation runs: never the DDP wrapper (ranks run different numbers of batches, with no
        collective inside), but set up as the Trainer's own evaluation_loop sets it up. In training, accelerate
        has prepared `self.model` (device, autocast under --bf16/--fp16). Without training nothing has, so this
        does the Trainer's evaluation-only set-up: prepare_model in evaluation mode (device, autocast,
        --torch_compile; no DDP wrapper), then the --fp16_full_eval / --bf16_full_eval cast."""
        if self.is_in_train:
            return self.model
        if self._eval_model is None:
            prepared = bool(self.accelerator._models)  # trained in this process already
            self._eval_model = self.model if prepared else self.accelerator.prepare_model(self.model, evaluation_mode=True)
        if self.args.fp16_full_eval:
            self.model.to(dtype=torch.float16, device=self.args.device)
        elif self.args.bf16_full_eval:
            self.model.to(dtype=torch.bfloat16, device=self.args.device)
        return self._eval_model

    def evaluate(self, eval_dataset: Optional[MultiTaskDataset] = None, ignore_keys: Optional[list[str]] = None,
                 metric_key_prefix: str = "eval") -> dict[str, float]:
        """Each task's metric (`eval_<task>`, with `eval_<task>_accuracy` / `_macro_f1`), their mean (`eval_avg`) and
        `eval_loss`, on the EMA weights (mtl/ema.py); the scores table goes to the log."""
        metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        logger.info("step %d\n%s", self.state.global_step,
                    format_scores(metrics, list(dataset.datasets), metric_key_prefix, self.score_title()))
        if self.is_in_train and eval_dataset is None and metric_key_prefix == "eval":
            self._training_evaluation = (self.state.global_step, metrics, self.last_evaluation)
        return metrics

    def final_evaluation(self) -> dict[str, float]:
        """evaluate() of the trained model, without a second pass over the validation rows where the Trainer has just
        made it: under eval_strategy "steps" HF evaluates at the last step of train(), and the weights it scored (EMA
        ones included) are the ones train() leaves, unless load_best_model_at_end swapped in an earlier checkpoint's.
        Not under --fp16_full_eval / --bf16_full_eval: HF casts the model for evaluations outside train() only, so the
        final one must be made. `last_evaluation` is that evaluation's output when reused, as after evaluate()."""
        if self._training_evaluation is not None and not (self.args.fp16_full_eval or self.args.bf16_full_eval):
            step, metrics, output = self._training_evaluation
            best = self.state.best_global_step if self.args.load_best_model_at_end else step
            if step == self.state.global_step == best:
                logger.info("the final evaluation is the one at step %d, the last step of training", step)
                self.last_evaluation = output
                return metrics
        return self.evaluate()

    def predict_tasks(self, dataset: MultiTaskDataset) -> dict[str, TaskPrediction]:
        """Predicted class ids and softmax probabilities per task, in file order, on the EMA weights."""
        logits = split_by_task(self.predict(dataset).predictions, self._tasks_of(dataset))
        result = {}
        for name, ds in dataset.datasets.items():
            probs = torch.softmax(torch.from_numpy(logits[name]).float(), dim=-1).numpy()
            result[name] = TaskPrediction(list(ds.ids), probs.argmax(-1), probs)
        return result

    # ---- checkpoints: crash-safe saves, another run's checkpoint refused, a finished run not continued ----------
    def _save_checkpoint(self, model: torch.nn.Module, trial: Any) -> None:
        folder = checkpoints.checkpoint_folder(self, trial)
        with checkpoints.saving_checkpoint(self, os.path.dirname(folder), folder):  # complete when marked, last
            super()._save_checkpoint(model, trial)  # the EMA mixin's: EMA weights and the raw training weights

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Optional[torch.nn.Module] = None) -> None:
        config_path = os.path.join(resume_from_checkpoint, "config.json")
        saved_tasks = head_names(json.loads(open(config_path, encoding="utf-8").read()), resume_from_checkpoint) \
            if os.path.exists(config_path) else None
        if saved_tasks is not None and list(saved_tasks) != list(self.task_names):
            raise UsageError(f"{resume_from_checkpoint} was written by a run with the heads {saved_tasks}, this run "
                             f"has {self.task_names}: resume with that run's --tasks, or start over with "
                             "--overwrite_output_dir (or another --output_dir)")
        super()._load_from_checkpoint(resume_from_checkpoint, model)

    def _load_optimizer_and_scheduler(self, checkpoint: Optional[str]) -> None:
        try:
            super()._load_optimizer_and_scheduler(checkpoint)
        except ValueError:  # torch: "loaded state dict contains a parameter group that doesn't match ..."
            raise UsageError(f"{checkpoint}: its optimizer state does not fit this run's trainable parameters "
                             "(another --tasks or --freeze setting?): resume with the settings it was written with, "
                             "or start over with --overwrite_output_dir") from None

    def _run_epoch(self, *args: Any, **kwargs: Any) -> None:
        if self.state.global_step >= self.state.max_steps:  # resumed from the last checkpoint: not one step more
            self.control.should_training_stop = True
            return
        super()._run_epoch(*args, **kwargs)

    def train(self, resume_from_checkpoint: Optional[str | bool] = None, *args: Any, **kwargs: Any):
        """Train; afterwards the model holds the EMA weights (or the best checkpoint's), ready to save.
        `resume_from_checkpoint`: true takes the newest complete checkpoint, a path must be a complete one."""
        resume_from_checkpoint = checkpoints.resolve_resume(resume_from_checkpoint, self.args.output_dir)
        return super().train(resume_from_checkpoint, *args, **kwargs)


def parse_task_loss_weights(spec: Optional[str], task_names: list[str]) -> list[float]:
    """`ocnli=1.0,ocemotion=1.5,tnews=1.5` -> a weight per task in `task_names` order (a task not named: 1.0)."""
    weights = dict.fromkeys(task_names, 1.0)
    for item in (spec or "").split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        name = name.strip().lower()
        try:
            weight = float(value) if sep else float("nan")
        except ValueError:
            weight = float("nan")
        if name not in weights or not weight >= 0:
            raise UsageError(f"--task_loss_weights {spec!r}: {item.strip()!r} must be TASK=WEIGHT with a weight >= 0 "
                             f"and TASK one of {', '.join(task_names)}")
        weights[name] = weight
    return [weights[n] for n in task_names]
