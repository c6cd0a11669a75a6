"""Command-line arguments: the data (preprocess.py and train.py), the model, what --do_predict writes, and
transformers' TrainingArguments with the 2020 defaults and EMA.

The configuration boundary: each dataclass checks itself in `__post_init__` (a mistake is one line before anything is
read or written); the checks that need more than the arguments are functions a CLI calls at start-up (the model's
position limit here, the directories' writability here, this machine's GPUs in mtl.support). The library takes what
`DataTrainingArguments.data_settings` builds, never these classes: only the CLIs import this module."""
from __future__ import annotations

import dataclasses
import difflib
import json
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

import torch
from transformers import BertConfig, HfArgumentParser, TrainingArguments

from .cache import DataSettings
from .errors import OneLineArgumentErrors, UsageError
from .model import max_positions, override_config, refuse_multi_sample_dropout_without_rate
from .paths import DEFAULT_TOKENIZER_DIR, resolve
from .support import refuse_backends, refuse_without_dropout
from .task_files import DEBUG_ROWS, ReadSettings
from .task_mixing import STRATEGIES
from .tasks import DEFAULT_TASKS, REGISTRY, Task, get_tasks


@dataclass
class DataTrainingArguments:
    """Where the data is, how it is cleaned, tokenized, split and cached."""

    tasks: str = field(default=",".join(DEFAULT_TASKS), metadata={"help": "Comma-separated tasks: names of bundled specs (code/assets/tasks/), task spec files (.json) and folders of them, mixed (docs/tasks.md)."})
    data_dir: str = field(default="tcdata", metadata={"help": "Competition data root holding nlp_round1_data/ and nlp_round2_data/ (where spec paths starting with {data_dir}/ are read)."})
    cleaned_dir: str = field(default="user_data", metadata={"help": "Where cleaned_nlp_round{1,2}_data/ are written."})
    data_save_dir: str = field(default="user_data", metadata={"help": "Where the per-task caches {task}_processed/ are written."})
    tokenizer_dir: str = field(default=DEFAULT_TOKENIZER_DIR, metadata={"help": "Tokenizer used for the caches (a directory with vocab.txt or tokenizer.json). train.py uses the model's tokenizer when it has one."})
    max_seq_length: int = field(default=300, metadata={"help": "Longest tokenized input, [CLS] and [SEP]s included; longer inputs are truncated (longest_first)."})
    overwrite_cache: bool = field(default=False, metadata={"help": "Rebuild the caches even when their fingerprint matches."})
    train_val_split_ratio: float = field(default=0.1, metadata={"help": "Fraction of each train file held out for validation (stratified by label); 0: train on every row, with no validation and no evaluation (a final retrain)."})
    num_folds: Optional[int] = field(default=None, metadata={"help": "K-fold training: cut each train file into this many stratified folds (seeded by --split_seed); fold --fold is the validation split, the others train (replaces --train_val_split_ratio). Not for a task whose spec has its own validation file."})
    fold: Optional[int] = field(default=None, metadata={"help": "With --num_folds K: which fold validates, 0 to K-1."})
    split_seed: int = field(default=2020, metadata={"help": "Seed of the train/validation split (and of the --num_folds folds)."})
    test_b: bool = field(default=False, metadata={"help": "Predict the round-2 test B files instead of the round-1 test A files (= --predict_test b)."})
    predict_test: Optional[str] = field(default=None, metadata={"help": "Which named test file of each task's spec --do_predict labels (default: the spec's first; a task with no test file is not predicted)."})
    max_train_samples: Optional[int] = field(default=None, metadata={"help": "Train on at most this many rows of each task (a seeded random subset of its train split)."})
    debug: bool = field(default=False, metadata={"help": f"Use only the first {DEBUG_ROWS} rows of every file."})
    skip_bad_rows: bool = field(default=False, metadata={"help": "Drop malformed rows (reported by file and line) instead of stopping."})
    use_pseudo: Optional[str] = field(default=None, metadata={"help": "Directory of {TASK}_pseudo.csv files to add to the train split."})

    def __post_init__(self):
        if not any(name.strip() for name in self.tasks.split(",")):
            raise UsageError(f"--tasks {self.tasks!r} names no task; give task names, spec files or folders, "
                             "comma-separated (e.g. --tasks ocnli,tnews)")
        if not 0 <= self.train_val_split_ratio < 1:
            raise UsageError(f"--train_val_split_ratio {self.train_val_split_ratio}: must be at least 0 and below 1 "
                             "(e.g. 0.1; 0 trains on every row, without validation)")
        if (self.num_folds is None) != (self.fold is None):
            raise UsageError("--num_folds and --fold go together: --num_folds K --fold k trains on the other folds "
                             "and validates on fold k (0 <= k < K)")
        if self.num_folds is not None and not (self.num_folds >= 2 and 0 <= self.fold < self.num_folds):
            raise UsageError(f"--num_folds {self.num_folds} --fold {self.fold}: give K >= 2 folds and a fold "
                             f"0 <= k < K")
        if self.max_train_samples is not None and self.max_train_samples < 1:
            raise UsageError(f"--max_train_samples {self.max_train_samples}: must be at least 1 (leave it out for "
                             "every row)")

    def data_settings(self) -> DataSettings:
        """What the library's data layer takes: these arguments with their paths resolved (mtl.paths.resolve)."""
        return DataSettings(
            data_dir=resolve(self.data_dir), cleaned_dir=resolve(self.cleaned_dir),
            data_save_dir=resolve(self.data_save_dir), max_seq_length=self.max_seq_length,
            reading=ReadSettings(split_ratio=self.train_val_split_ratio, split_seed=self.split_seed,
                                 num_folds=self.num_folds, fold=self.fold,
                                 skip_bad_rows=self.skip_bad_rows, debug=self.debug),
            max_train_samples=self.max_train_samples, predict_test=self.predict_test or ("b" if self.test_b else None),
            use_pseudo=resolve(self.use_pseudo) if self.use_pseudo else None, overwrite_cache=self.overwrite_cache)


def tasks_of(value: str) -> list[Task]:
    """The tasks a --tasks value names, its spec files and folders resolved as command-line paths are."""
    items = (item.strip() for item in value.split(","))
    return get_tasks([item if item.lower() in REGISTRY else str(resolve(item)) for item in items if item])


@dataclass
class PredictionArguments:
    """What train.py's --do_predict writes (preprocess.py does not read these)."""

    prediction_dir: str = field(default="prediction_result", metadata={"help": "Where {task}_predict.json and submit.zip are written by --do_predict."})
    pseudo: bool = field(default=True, metadata={"help": "After prediction, write confident test predictions as pseudo-labelled train rows."})
    pseudo_threshold: float = field(default=0.99, metadata={"help": "Minimum top-class probability for a pseudo-label."})


@dataclass
class ModelArguments:
    """Which model to fine-tune, and how."""

    model_name_or_path: Optional[str] = field(default=None, metadata={"help": "Pretrained encoder or saved multi-task checkpoint: a local directory, or a hub id when online."})
    config_name: Optional[str] = field(default=None, metadata={"help": "Config (directory or .json) for a randomly initialised model, when no weights are given."})
    tokenizer_name: Optional[str] = field(default=None, metadata={"help": "Tokenizer, if not the model's own (default: the model's, else --tokenizer_dir)."})
    cache_dir: Optional[str] = field(default=None, metadata={"help": "Where hub downloads are stored."})
    config_overrides: Optional[str] = field(default=None, metadata={"help": "Override config settings of the encoder before loading, e.g. 'hidden_dropout_prob=0,attention_probs_dropout_prob=0' (as HF run_mlm's option)."})
    freeze: bool = field(default=False, metadata={"help": "Freeze the encoder and train only the task heads (stage 2)."})
    logit_adjustment: Optional[float] = field(default=None, metadata={"help": "Post-hoc logit adjustment tau: at evaluation and prediction a task's logits are lowered by tau * log(class frequency in its train split), which predicts rare classes more often (Menon et al. 2021; macro-F1 weighs classes equally); 0 turns it off, 1 is the balanced-error choice. Saved in the model's config; by default a checkpoint's value is kept (0 for a new model)."})
    multi_sample_dropout: Optional[int] = field(default=None, metadata={"help": "Multi-sample dropout (Inoue 2019) in every task head: in training the pooled vector goes through N dropout masks (rate: the config's classifier_dropout, else hidden_dropout_prob) and the loss is the mean of the N cross-entropies; inference uses the plain head. Saved in the model's config; by default a checkpoint's value is kept (1, off, for a new model)."})
    drop_other_heads: bool = field(default=False, metadata={"help": "Loading a multi-task checkpoint, drop its heads for tasks not in --tasks (by default they are kept, and saved with the model)."})

    def __post_init__(self):
        if self.multi_sample_dropout is not None and self.multi_sample_dropout < 1:
            raise UsageError(f"--multi_sample_dropout {self.multi_sample_dropout}: give a number of dropout samples "
                             ">= 1 (1 turns it off; 5 is usual)")
        if self.logit_adjustment is not None and self.logit_adjustment < 0:
            raise UsageError(f"--logit_adjustment {self.logit_adjustment}: give a tau >= 0 (0 turns it off)")


def check_position_limit(model_args: ModelArguments, max_seq_length: int) -> None:
    """--max_seq_length within the model's position embeddings (the one check that reads the model's config: an
    input past them fails late, on a GPU as a device-side assert). Call it once the model's path is resolved."""
    positions = max_positions(model_args.model_name_or_path, model_args.config_name, model_args.cache_dir)
    if positions is not None and max_seq_length > positions:
        raise UsageError(f"--max_seq_length {max_seq_length} exceeds the model's {positions} position "
                         f"embeddings; use --max_seq_length {positions} or less")


def check_model_settings(model_args: ModelArguments, training_args: "MultiTaskTrainingArguments") -> None:
    """The settings that need the model's config (its dropout rates, after --config_overrides): multi-sample dropout
    with a rate of 0, R-Drop with no dropout. Call it once the model's path is resolved, before anything is written."""
    source = model_args.model_name_or_path or model_args.config_name
    if not source or not (training_args.do_train and (training_args.rdrop_alpha or model_args.multi_sample_dropout)):
        return
    config_dict, _ = BertConfig.get_config_dict(source, cache_dir=model_args.cache_dir)
    config = BertConfig(**{k: v for k, v in config_dict.items() if k not in ("model_type", "tasks")})
    config.multi_sample_dropout = config_dict.get("multi_sample_dropout", 1)
    override_config(config, model_args.config_overrides)
    if model_args.multi_sample_dropout is not None:
        config.multi_sample_dropout = model_args.multi_sample_dropout
        refuse_multi_sample_dropout_without_rate(config)
    refuse_without_dropout(training_args, config)


@dataclass
class MultiTaskTrainingArguments(TrainingArguments):
    """transformers' TrainingArguments with the 2020 baseline's stage-1 hyperparameters as defaults."""

    output_dir: Optional[str] = field(default="user_data/stage1", metadata={"help": "Checkpoints, the final model, metrics and pseudo-labels."})
    learning_rate: float = field(default=3e-5, metadata={"help": "Peak AdamW learning rate (2020: 3e-5 stage 1, 1e-5 stage 2)."})
    per_device_train_batch_size: int = field(default=16, metadata={"help": "Train batch size per device."})
    per_device_eval_batch_size: int = field(default=64, metadata={"help": "Evaluation/prediction batch size per device."})
    num_train_epochs: float = field(default=6.0, metadata={"help": "Epochs over the union of the tasks' train splits."})
    seed: int = field(default=2020, metadata={"help": "Seed for initialisation, dropout and the batch order."})
    eval_strategy: str = field(default="steps", metadata={"help": "When to evaluate: no, steps or epoch."})
    eval_steps: Optional[float] = field(default=2500, metadata={"help": "Evaluate every this many optimizer steps."})
    save_steps: float = field(default=2500, metadata={"help": "Save a checkpoint every this many optimizer steps."})
    logging_steps: float = field(default=1000, metadata={"help": "Log the training loss every this many steps."})
    metric_for_best_model: Optional[str] = field(default="avg", metadata={"help": "Metric that picks the best checkpoint (eval_avg: mean macro-F1)."})
    greater_is_better: Optional[bool] = field(default=True, metadata={"help": "Whether a larger metric_for_best_model is better."})
    # None: on when the run both evaluates and saves (--eval_strategy and --save_strategy not 'no'), else off
    load_best_model_at_end: Optional[bool] = field(default=None, metadata={"help": "End training with the best checkpoint's (EMA) weights (by metric_for_best_model). Default: on when both --eval_strategy and --save_strategy are not 'no' (they must then match, and --save_steps be a multiple of --eval_steps), off otherwise."})
    # `--debug` belongs to DataTrainingArguments (the first rows of every file, as the 2020 scripts): HF's own debug
    # options (TPU metrics, underflow/overflow detection) are taken off the command line to free the name.
    debug: str = field(default="", init=False)
    save_total_limit: Optional[int] = field(default=2, metadata={"help": "Keep at most this many checkpoints (the best is always kept)."})
    # One head per step: under DDP the other heads get no gradient, which DDP must be told to expect.
    ddp_find_unused_parameters: Optional[bool] = field(default=True, metadata={"help": "DDP's find_unused_parameters; must stay true (each step uses one task head)."})
    ema_decay: float = field(default=0.999, metadata={"help": "Decay of the exponential moving average of the weights used for evaluation and saving; 0 turns EMA off."})
    ema_start_step: int = field(default=0, metadata={"help": "Until this optimizer step the EMA just copies the weights."})
    task_loss_weights: Optional[str] = field(default=None, metadata={"help": "Per-task loss weights, e.g. ocnli=1.0,ocemotion=1.5,tnews=1.5 (the 2020 baseline's); a task not named weighs 1."})
    task_sampling: str = field(default="proportional", metadata={"help": "How an epoch mixes the tasks: proportional (every batch once, 2020), temperature (a task's share of the batches ∝ rows^(1/T)) or uniform; an epoch keeps its number of batches."})
    task_sampling_temperature: float = field(default=2.0, metadata={"help": "T of --task_sampling temperature: 1 is proportional, larger moves toward uniform."})
    task_sampling_cap: Optional[int] = field(default=None, metadata={"help": "With --task_sampling temperature: count at most this many rows of a task in its share."})
    max_tokens_per_batch: Optional[int] = field(default=None, metadata={"help": "Throughput mode: a training batch holds as many rows of one task as fit this many padded tokens per process (length-grouped), instead of --per_device_train_batch_size rows. The learning rate is not rescaled (docs/training.md: 'Throughput mode')."})
    pad_to_multiple_of: Optional[int] = field(default=None, metadata={"help": "Pad every batch's width up to a multiple of this (e.g. 8 or 64): fewer shapes for --torch_compile, tensor-core friendly widths."})
    pcgrad: bool = field(default=False, metadata={"help": "PCGrad (Yu et al., 2020): each optimizer step takes one batch of every task and removes the conflicting components of the tasks' encoder gradients before summing them."})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Train from scratch even when output_dir holds checkpoints (by default training resumes from the last one, as run_glue.py)."})
    adversarial: str = field(default="no", metadata={"help": "Adversarial training on the word embeddings: fgm (one step of size --adversarial_epsilon along the normalised embedding gradient; Miyato et al. 2017), pgd (--adversarial_steps projected steps inside that ball; Madry et al. 2018) or no. Each step's gradient adds the perturbed batch's to the clean one (docs/toolkit.md)."})
    adversarial_epsilon: float = field(default=1.0, metadata={"help": "Size of the embedding perturbation (Frobenius norm over the embedding matrix; the 2020-era competition code's 1.0)."})
    adversarial_steps: int = field(default=3, metadata={"help": "PGD's number of steps (each of size 2.5 * epsilon / steps, projected back into the epsilon ball; the last one's gradient is added)."})
    rdrop_alpha: float = field(default=0.0, metadata={"help": "R-Drop (Liang et al. 2021): each training batch runs twice with different dropout masks (one forward of the doubled batch, one backward); the loss is their mean cross-entropy plus alpha times the symmetric KL divergence of their predictions. 0 turns it off; needs dropout in the model."})
    layerwise_lr_decay: float = field(default=1.0, metadata={"help": "Layer-wise learning-rate decay: the task heads get --learning_rate, encoder layer i of L gets lr * decay^(L - i) (the top layer decay^1), the embeddings lr * decay^(L + 1). 1 turns it off; 0.95 is usual for BERT-large."})

    def __post_init__(self):
        # On a machine without CUDA, train on the CPU explicitly: accelerate then sets up a gloo process group
        # under torchrun / accelerate launch (without it, N processes run N copies of the same one-process
        # training), and --bf16 is accepted on the CPU.
        if not self.use_cpu and not torch.cuda.is_available():
            self.use_cpu = True
        for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name} {getattr(self, name)}: must be at least 1")
        for name in ("max_tokens_per_batch", "pad_to_multiple_of"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise UsageError(f"--{name} {getattr(self, name)}: must be at least 1")
        if self.task_sampling not in STRATEGIES:
            raise UsageError(f"--task_sampling {self.task_sampling}: use one of {', '.join(STRATEGIES)}")
        if not 0 <= self.ema_decay < 1:
            raise UsageError(f"--ema_decay {self.ema_decay}: must be in [0, 1) (0 turns the EMA off; 0.999 is the "
                             "2020 value)")
        if self.train_sampling_strategy not in ("random", "group_by_length"):
            raise UsageError(f"--train_sampling_strategy {self.train_sampling_strategy}: use random or "
                             "group_by_length (the task sampler makes the batches)")
        if not self.task_sampling_temperature > 0 or (self.task_sampling_cap is not None and self.task_sampling_cap < 1):
            raise UsageError("--task_sampling_temperature must be > 0 and --task_sampling_cap at least 1")
        check_toolkit_flags(self)
        if isinstance(self.resume_from_checkpoint, str) and self.resume_from_checkpoint.lower() in ("true", "false"):
            # HF's `Trainer.train(resume_from_checkpoint=True)` means the last checkpoint in output_dir
            self.resume_from_checkpoint = True if self.resume_from_checkpoint.lower() == "true" else None
        if self.do_train:
            check_training_length(self)
        self.load_best_model_at_end = best_model_setting(self)
        refuse_backends(self)
        try:
            super().__post_init__()
        except ValueError as err:  # transformers' own checks of the arguments (UsageError is one of them)
            raise UsageError(" ".join(str(err).split())) from None


def check_toolkit_flags(args: "MultiTaskTrainingArguments") -> None:
    """Adversarial training, R-Drop and layer-wise decay: values in range (one line each)."""
    if args.adversarial not in ("no", "fgm", "pgd"):
        raise UsageError(f"--adversarial {args.adversarial}: use fgm, pgd or no")
    if not args.adversarial_epsilon > 0:
        raise UsageError(f"--adversarial_epsilon {args.adversarial_epsilon}: must be > 0 (e.g. 1.0)")
    if args.adversarial_steps < 1:
        raise UsageError(f"--adversarial_steps {args.adversarial_steps}: must be at least 1 (e.g. 3)")
    if not args.rdrop_alpha >= 0:
        raise UsageError(f"--rdrop_alpha {args.rdrop_alpha}: must be >= 0 (0 turns R-Drop off; 1 to 5 are usual)")
    if not 0 < args.layerwise_lr_decay <= 1:
        raise UsageError(f"--layerwise_lr_decay {args.layerwise_lr_decay}: must be in (0, 1] (1 turns it off; 0.95 "
                         "is usual)")


def check_training_length(args: TrainingArguments) -> None:
    """A training run that would run no step (and exit 0 having trained nothing)."""
    if args.max_steps <= 0 and args.num_train_epochs <= 0:
        raise UsageError(f"--num_train_epochs {args.num_train_epochs:g} trains nothing; give a number of epochs > 0 "
                         "(or --max_steps N)")


def _strategy(value: Any) -> str:
    return str(getattr(value, "value", value))  # "steps" given as a string or as transformers' enum


def best_model_setting(args: TrainingArguments) -> bool:
    """--load_best_model_at_end: as given, or (None) on when the run both evaluates and saves; the combinations
    transformers refuses with it, refused here in one line that says what to use instead."""
    evaluation, saving = _strategy(args.eval_strategy), _strategy(args.save_strategy)
    if args.load_best_model_at_end is None:
        if evaluation == "no" or saving == "no":
            return False
    elif not args.load_best_model_at_end:
        return False
    elif evaluation == "no" or saving == "no":
        raise UsageError(f"--load_best_model_at_end needs evaluations and checkpoints, but --eval_strategy is "
                         f"{evaluation} and --save_strategy {saving}; give both steps (or both epoch), or drop "
                         "--load_best_model_at_end")
    if saving != "best" and evaluation != saving:
        raise UsageError(f"--eval_strategy {evaluation} with --save_strategy {saving}: choosing the best checkpoint "
                         f"(--load_best_model_at_end, on by default) needs the same strategy for both; use "
                         f"--save_strategy {evaluation}, or --load_best_model_at_end false")
    eval_steps = args.eval_steps or args.logging_steps  # transformers evaluates every logging_steps without eval_steps
    if evaluation == "steps" and eval_steps >= 1 and args.save_steps >= 1 and args.save_steps % eval_steps:
        multiple = (args.save_steps // eval_steps + 1) * eval_steps
        raise UsageError(f"--save_steps {args.save_steps:g} is not a multiple of --eval_steps {eval_steps:g}: "
                         "choosing the best checkpoint (--load_best_model_at_end, on by default) needs every "
                         f"checkpoint evaluated; use --save_steps {multiple:g} or --eval_steps {args.save_steps:g}, "
                         "or --load_best_model_at_end false")
    return True


def json_to_flags(path: str, known: Optional[set[str]] = None, allowed: Optional[set[str]] = None) -> list[str]:
    """A JSON file of arguments as command-line flags, so that flags after it override it (as nanoGPT's config
    files): `train.py profile.json --max_steps 6`. `known`: keep only these keys (preprocess.py reads the data
    arguments of a training profile and leaves the rest). `allowed`: any other key (but `_comment`s) is a mistake."""
    try:
        values = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise UsageError(f"{path}: not a readable JSON file of arguments ({err})") from None
    if not isinstance(values, dict):
        raise UsageError(f"{path}: must hold one JSON object of argument names and values")
    flags: list[str] = []
    for key, value in values.items():
        if key.startswith("_"):  # "_comment" keys are notes
            continue
        if allowed is not None and key not in allowed:
            raise UsageError(f"{path}: unknown key {key!r}{did_you_mean(key, allowed, quote=repr)}")
        if known is not None and key not in known:
            continue
        if value is None:
            continue
        items = value if isinstance(value, list) else [value]
        flags += [f"--{key}", *(json.dumps(v) if isinstance(v, bool) else str(v) for v in items)]
    return flags


def expand_json_argument_file(argv: list[str], known: Optional[set[str]] = None,
                              allowed: Optional[set[str]] = None) -> list[str]:
    """`[file.json, *overrides]` -> the file's flags followed by the overrides; other argument lists unchanged."""
    if argv and argv[0].endswith(".json"):
        return json_to_flags(str(resolve(argv[0])), known, allowed) + argv[1:]
    return argv


def did_you_mean(word: str, choices: Iterable[str], quote=str) -> str:
    """"; did you mean X?" for the closest of `choices` (difflib), or ""."""
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f"; did you mean {quote(close[0])}?" if close else ""


class ArgumentParser(OneLineArgumentErrors, HfArgumentParser):
    """HfArgumentParser whose mistakes are one-line UsageErrors (exit status 1 under run_cli, not argparse's 2)."""


# train.py's argument dataclasses: the keys a training profile may hold (preprocess.py reads its data arguments)
TRAIN_ARGUMENTS = (ModelArguments, DataTrainingArguments, PredictionArguments, MultiTaskTrainingArguments)


def field_names(types: Iterable[type]) -> set[str]:
    return {f.name for t in types for f in dataclasses.fields(t) if f.init}


def parse_cli(types: tuple[type, ...], argv: Optional[list[str]] = None, description: Optional[str] = None,
              profile: bool = True, profile_keys: Iterable[str] = ()) -> tuple[Any, ...]:
    """A CLI's arguments as its dataclasses. With `profile`, a JSON file of arguments may come first (flags after it
    override it); `profile_keys`: keys a profile may hold that this CLI does not read (they are left out). A
    misspelt flag or profile key, a bad value: UsageError, one line with the closest name, before any dataclass is
    built (and so before anything is read or written)."""
    parser = ArgumentParser(types, description=description)
    argv = list(sys.argv[1:] if argv is None else argv)
    options = {s[2:] for s in parser._option_string_actions if s.startswith("--") and "-" not in s[2:]}
    if profile:
        ours = field_names(types)
        argv = expand_json_argument_file(argv, known=ours, allowed=ours | set(profile_keys))
    namespace, unknown = parser.parse_known_args(args=argv)
    if unknown:
        flags = [a.split("=", 1)[0] for a in unknown if a.startswith("-") and not _is_number(a)]
        if not flags:
            raise UsageError(f"unexpected argument(s) {' '.join(unknown)}: give each value after its flag "
                             f"({parser.prog} --help lists the flags)")
        raise UsageError("; ".join(f"{flag}: unknown flag{did_you_mean(flag[2:], options, quote=lambda o: '--' + o)}"
                                   for flag in flags) + f" ({parser.prog} --help lists the flags)")
    values = vars(namespace)
    return tuple(t(**{f.name: values[f.name] for f in dataclasses.fields(t) if f.init and f.name in values})
                 for t in types)


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def writable_dir_problem(path: str | Path) -> Optional[str]:
    """Why the directory `path` could not be created or written into, or None. Nothing is left behind: the nearest
    existing ancestor must be a directory in which a file can be made (an unnamed temporary file, removed at once)."""
    path = resolve(path)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a directory"
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        return f"cannot write in {existing} ({err.strerror})"
    return None


def check_writable_dirs(dirs: dict[str, Optional[str | Path]]) -> None:
    """{flag: directory} -> UsageError naming the first that cannot be created or written into; a CLI calls it at
    start-up for the directories it will write (not in __post_init__: the argument classes are also built by code
    that writes nothing)."""
    for flag, path in dirs.items():
        problem = None if path is None else writable_dir_problem(path)
        if problem:
            raise UsageError(f"{flag} {path}: cannot be written: {problem}; give a directory you can write to")
