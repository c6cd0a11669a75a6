"""Multi-task fine-tuning (by default on OCNLI, OCEMOTION and TNEWS; any task given by a spec file): `python code/train.py --help`.

Reads like HF's run_glue.py: arguments, data, model, Trainer, then train / evaluate / predict.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import transformers
from transformers import set_seed
from transformers.trainer_utils import IntervalStrategy

from mtl.args import (
    TRAIN_ARGUMENTS,
    DataTrainingArguments,
    ModelArguments,
    MultiTaskTrainingArguments,
    PredictionArguments,
    check_model_settings,
    check_position_limit,
    check_writable_dirs,
    parse_cli,
    tasks_of,
)
from mtl.cache import DataSettings, load_or_build_task, read_label2id
from mtl.checkpoints import newest_complete, remove_checkpoints, resolve_resume, save_final_model
from mtl.curves import plot_curves
from mtl.data import MultiTaskCollator, MultiTaskDataset, SingleTaskDataset
from mtl.errors import UsageError, run_cli
from mtl.labels import class_frequencies
from mtl.metrics import format_scores
from mtl.model import head_names, load_model
from mtl.oof import validation_probabilities, write_oof
from mtl.outputs import PARTIAL_ZIP, SUBMISSION_ZIP, write_predictions, write_pseudo_labels, write_submission_zip
from mtl.paths import model_path, resolve
from mtl.probabilities import Probabilities, probs_path, write_probabilities
from mtl.support import refuse_unsupported
from mtl.task_files import DEBUG_ROWS
from mtl.tasks import Task
from mtl.tokenizer import load_tokenizer, tokenizer_source
from mtl.trainer import MultiTaskTrainer

logger = logging.getLogger("train")


def parse_args(argv: list[str] | None = None):
    # A JSON file of arguments first (as run_glue.py), then flags that override it (as nanoGPT's configs); a
    # misspelt flag or key is a one-line error with the closest name.
    return parse_cli(TRAIN_ARGUMENTS, argv, description=__doc__)


def checkpoint_to_resume(args: MultiTaskTrainingArguments) -> str | bool | None:
    """--resume_from_checkpoint (a path, or true: the last one), else run_glue's rule: a training run into an
    output_dir that holds checkpoints continues from the last one unless --overwrite_output_dir."""
    if args.resume_from_checkpoint is not None:
        return resolve_resume(args.resume_from_checkpoint, args.output_dir) if args.do_train else None
    if not args.do_train or args.overwrite_output_dir:
        return None
    last = newest_complete(args.output_dir)  # a checkpoint a kill cut short is skipped (mtl/checkpoints.py)
    if last is not None:
        logger.info("resuming from %s, the newest complete checkpoint in %s (--overwrite_output_dir starts over)",
                    last, args.output_dir)
    return last


def resolve_paths(model_args: ModelArguments, data_args: DataTrainingArguments,
                  training_args: MultiTaskTrainingArguments, prediction_args: PredictionArguments) -> DataSettings:
    """Every path of the arguments resolved once (mtl.paths), here; the data layer's settings built from them."""
    training_args.output_dir = str(resolve(training_args.output_dir))
    prediction_args.prediction_dir = str(resolve(prediction_args.prediction_dir))
    if model_args.model_name_or_path:
        model_args.model_name_or_path = model_path(model_args.model_name_or_path)
    for name in ("config_name", "tokenizer_name"):
        if getattr(model_args, name):
            setattr(model_args, name, str(resolve(getattr(model_args, name))))
    data_args.tokenizer_dir = str(resolve(data_args.tokenizer_dir))
    return data_args.data_settings()


def check_start_up(model_args: ModelArguments, data: DataSettings, training_args: MultiTaskTrainingArguments,
                   prediction_args: PredictionArguments) -> None:
    """The checks that need more than the arguments (which checked themselves): this machine's GPUs, the model's
    position embeddings, and every directory this run will write, so that none is found unwritable after training."""
    refuse_unsupported(training_args, freeze=model_args.freeze)
    if training_args.should_save:  # the processes that write (under torchrun the others write nothing, not even a probe)
        check_writable_dirs({"--output_dir": training_args.output_dir, "--data_save_dir": data.data_save_dir,
                             "--cleaned_dir": data.cleaned_dir,
                             "--prediction_dir": prediction_args.prediction_dir if training_args.do_predict else None})
    check_position_limit(model_args, data.max_seq_length)
    check_model_settings(model_args, training_args)


def check_heads(model: str | None, task_names: list[str]) -> None:
    """A run that does not train evaluates and predicts with the model's heads: a task without one would get a head
    initialised at random, and a submission from it."""
    config = Path(model or "") / "config.json"
    if not model or not config.is_file():
        return
    heads = head_names(json.loads(config.read_text(encoding="utf-8")), model)
    missing = [name for name in task_names if name not in heads]
    if missing:
        raise UsageError(f"{model} has no head for task(s) {missing} (its heads: {heads or 'none'}); evaluate or "
                         f"predict with --tasks among its heads, or train one first with --do_train")


def task_metric(task: Task, label2id: dict[str, int]) -> tuple[str, int | None]:
    """The spec's metric as the trainer takes it: (name, class id of the positive label or None)."""
    pos = task.metric.pos_label
    if pos is not None and pos not in label2id:
        raise UsageError(f"{task.name}: the metric's pos_label {pos!r} is not one of the task's labels {sorted(label2id)}")
    return task.metric.name, None if pos is None else label2id[pos]


def set_logit_adjustment(config, tau: float | None, train_labels: dict[str, Any]) -> None:
    """The priors of the post-hoc logit adjustment: this run's tasks' class frequencies in their train split (heads
    of other tasks keep theirs); tau from --logit_adjustment, else the checkpoint's."""
    for head in config.tasks:
        if head.name in train_labels:
            head.class_priors = class_frequencies(train_labels[head.name], head.num_labels)
    if tau is not None:
        config.logit_adjustment = float(tau)
    if config.logit_adjustment:
        logger.info("logit adjustment: tau %g; predictions lowered by tau * log(train class frequency)",
                    config.logit_adjustment)


def without_evaluation(training_args: MultiTaskTrainingArguments) -> None:
    """No task has validation rows (--train_val_split_ratio 0: a final retrain on every row): evaluation, on by
    default and in run.sh's profiles, is switched off, and the final model is the last step's."""
    logger.info("--train_val_split_ratio 0: training on every row of each train file; there is no validation split, "
                "so no evaluation (--do_eval, --eval_strategy and --load_best_model_at_end are off) and the final "
                "model is the last step's")
    training_args.do_eval = False
    training_args.eval_strategy = IntervalStrategy.NO
    training_args.load_best_model_at_end = False


def main(argv: list[str] | None = None) -> dict[str, float]:
    model_args, data_args, prediction_args, training_args = parse_args(argv)
    # Under torchrun every process runs this script; only the main one logs progress (the others warn).
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        level=logging.INFO if training_args.should_log else logging.WARNING, force=True)
    transformers.utils.logging.set_verbosity_warning()
    data = resolve_paths(model_args, data_args, training_args, prediction_args)
    check_start_up(model_args, data, training_args, prediction_args)
    resume = checkpoint_to_resume(training_args)  # before any work: a missing or incomplete checkpoint is one line
    if training_args.do_train and training_args.overwrite_output_dir and resume is None and training_args.should_save:
        remove_checkpoints(training_args.output_dir)  # starting over: an old run's checkpoints would be resumed later
    set_seed(training_args.seed)

    # ---- data ----
    tasks = tasks_of(data_args.tasks)
    if not training_args.do_train:
        check_heads(model_args.model_name_or_path, [t.name for t in tasks])
    # --tokenizer_name, else the model's own tokenizer, else --tokenizer_dir
    tokenizer = load_tokenizer(model_args.tokenizer_name
                               or tokenizer_source(model_args.model_name_or_path, data_args.tokenizer_dir))
    # Caches are built by one process while the others wait, then read by all: once in all when output storage
    # is shared between nodes, once per node with --save_on_each_node (storage local to each node).
    with training_args.main_process_first(local=training_args.save_on_each_node, desc="task caches"):
        cached = {t.name: load_or_build_task(t, tokenizer, data) for t in tasks}
    label2id = {t.name: read_label2id(t, data.data_save_dir) for t in tasks}  # the spec's labels, or train's
    id2label = {t.name: {i: label for label, i in label2id[t.name].items()} for t in tasks}
    validated = [t for t in tasks if len(cached[t.name]["val"]["ids"])]  # none with --train_val_split_ratio 0
    if not validated:
        without_evaluation(training_args)

    # ---- model ----
    model = load_model(model_args.model_name_or_path, model_args.config_name, [t.head(label2id[t.name]) for t in tasks],
                       model_args.cache_dir, model_args.drop_other_heads, model_args.config_overrides,
                       model_args.multi_sample_dropout)
    if training_args.do_train:  # predict.py truncates new texts as training did
        model.config.max_seq_length = data.max_seq_length
    # The priors are the train split's of the run that trains; evaluating or predicting keeps the model's own (a
    # different --max_train_samples or train file must not change what a saved model predicts).
    set_logit_adjustment(model.config, model_args.logit_adjustment,
                         {t.name: cached[t.name]["train"]["labels"] for t in tasks} if training_args.do_train else {})
    if model_args.freeze:
        model.freeze_encoder()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    logger.info("model: %d parameters, %d trainable; tasks %s", model.num_parameters(), trainable, model.config.task_names)

    def dataset(split: str, among: list[Task] = tasks) -> MultiTaskDataset:
        return MultiTaskDataset({t.name: SingleTaskDataset(cached[t.name][split], model.config.task_names.index(t.name))
                                 for t in among})

    # ---- trainer ----
    trainer = MultiTaskTrainer(
        model=model,
        args=training_args,
        train_dataset=dataset("train") if training_args.do_train else None,
        eval_dataset=dataset("val", validated) if training_args.do_eval or training_args.eval_strategy != "no" else None,
        data_collator=MultiTaskCollator(tokenizer.pad_token_id, training_args.pad_to_multiple_of),
        processing_class=tokenizer,
        task_metrics={t.name: task_metric(t, label2id[t.name]) for t in tasks},
    )
    task_names = [t.name for t in tasks]
    metrics: dict[str, float] = {}

    if training_args.do_train:
        result = trainer.train(resume_from_checkpoint=resume)
        save_final_model(trainer)  # trainer.save_model(), crash-safe: EMA weights (or the best checkpoint's), config, tokenizer
        trainer.log_metrics("train", result.metrics)
        trainer.save_metrics("train", result.metrics)
        trainer.save_state()
        if trainer.is_world_process_zero():
            curves = plot_curves(trainer.state.log_history, task_names, Path(training_args.output_dir) / "curves.png",
                                 title=f"{training_args.output_dir} ({', '.join(task_names)})")
            logger.info("curves: %s", curves)

    if training_args.do_eval:
        metrics = trainer.final_evaluation()
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
        if trainer.is_world_process_zero():  # the validation rows' probabilities, for ensembles (code/ensemble.py)
            files = write_oof(training_args.output_dir,
                              validation_probabilities(trainer.last_evaluation.predictions, trainer.eval_dataset,
                                                       id2label))
            logger.info("out-of-fold (validation) predictions: %s", ", ".join(str(f) for f in files))

    predicted = [t for t in tasks if len(cached[t.name]["predict"]["ids"])]
    if training_args.do_predict and not predicted:
        logger.warning("--do_predict: no task names a test file in its spec; nothing to predict")
    elif training_args.do_predict:
        skipped = [t.name for t in tasks if t not in predicted]
        if skipped:
            logger.info("--do_predict: task(s) %s name no test file in their spec; not predicted", skipped)
        predict_set = dataset("predict", predicted)
        predictions = trainer.predict_tasks(predict_set)  # every process takes part
        if trainer.is_world_process_zero():  # one process writes
            out_dir = Path(prediction_args.prediction_dir)
            files = [write_predictions(t, predictions[t.name], id2label[t.name], out_dir) for t in predicted]
            for t in predicted:  # beside the submission: what code/ensemble.py averages
                names = id2label[t.name]
                write_probabilities(probs_path(out_dir, t.name), Probabilities(
                    t.name, predictions[t.name].ids, [names[i] for i in range(len(names))],
                    predictions[t.name].probabilities))
            # --debug predicts the first rows of each test file only: never let that pass for a submission
            zip_name = PARTIAL_ZIP if data.reading.debug else SUBMISSION_ZIP
            if data.reading.debug:
                logger.warning("--debug: the predictions cover only the first %d rows of each test file; they are "
                               "written to %s, which is NOT a submission (drop --debug for one)", DEBUG_ROWS,
                               out_dir / zip_name)
            zip_path = write_submission_zip(files, out_dir / zip_name)
            logger.info("wrote %s and %s", ", ".join(str(f) for f in files), zip_path)
            if prediction_args.pseudo:
                pseudo_dir = Path(training_args.output_dir) / "pseudo"
                for t in predicted:
                    write_pseudo_labels(t, predictions[t.name], predict_set.datasets[t.name], id2label[t.name],
                                        prediction_args.pseudo_threshold, pseudo_dir)

    if metrics and trainer.is_world_process_zero():
        print(format_scores(metrics, task_names, title=trainer.score_title()))  # the final table, on stdout for run.sh
    # Every process reaches this point before any tears the process group down (rank 0 may still be writing files;
    # a process leaving gloo while its peer is mid-collective aborts with "terminate called without an active exception").
    trainer.accelerator.wait_for_everyone()
    trainer.end()  # ends trackers and, under torchrun, the process group
    return metrics


if __name__ == "__main__":
    run_cli(main, "train.py")  # a user's error: one line and exit status 1, no traceback
