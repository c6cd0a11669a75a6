"""Masked-language-model pretraining with Chinese whole-word masking: `python code/pretrain.py --help`.

Continued (task-adaptive) pretraining of an existing encoder, by default the bundled demo encoder, on the texts of
`--tasks` (names or spec files; their train splits and test files, never a validation row), or pretraining from
scratch (`--config_name` [+ `--config_overrides`]). The output directory loads with `from_pretrained` /
`AutoTokenizer` and is what `train.py --model_name_or_path` takes.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import transformers
from transformers import BertConfig, BertForMaskedLM, TrainingArguments, set_seed

from mtl.args import best_model_setting, check_training_length, check_writable_dirs, parse_cli, tasks_of
from mtl.errors import UsageError, run_cli
from mtl.model import max_positions, override_config
from mtl.paths import DEFAULT_TOKENIZER_DIR, REPO_ROOT, model_path, resolve
from mtl.pretraining import (
    SAVE_DTYPES,
    ChineseWholeWordMaskCollator,
    MaskedLMTrainer,
    MLMDataset,
    TokenKey,
    encode_with_words,
    file_texts,
    save_weights_as,
    task_texts,
)
from mtl.task_files import ReadSettings
from mtl.tasks import DEFAULT_TASKS, Task
from mtl.tokenizer import load_tokenizer, tokenizer_source

logger = logging.getLogger("pretrain")
DEMO_ENCODER_DIR = "code/assets/demo_encoder"  # the default encoder to continue pretraining (the demo profile's)


@dataclass
class PretrainArguments:
    model_name_or_path: Optional[str] = field(default=None, metadata={"help": f"Continue pretraining this BERT checkpoint (local directory, or hub id when online); default: the bundled demo encoder ({DEMO_ENCODER_DIR}), unless --config_name."})
    config_name: Optional[str] = field(default=None, metadata={"help": "Config (directory or .json) for pretraining from scratch (instead of --model_name_or_path)."})
    config_overrides: Optional[str] = field(default=None, metadata={"help": "Override config sizes when training from scratch, e.g. 'hidden_size=128,num_hidden_layers=4'."})
    tokenizer_dir: str = field(default=DEFAULT_TOKENIZER_DIR, metadata={"help": "Tokenizer, when the model has none of its own."})
    data_dir: str = field(default="tcdata", metadata={"help": "Competition data root; its task texts (train split + test files, labels unused) are the corpus."})
    train_val_split_ratio: float = field(default=0.1, metadata={"help": "train.py's validation fraction: those rows' texts are left out of the corpus (keep it equal to train.py's)."})
    split_seed: int = field(default=2020, metadata={"help": "train.py's split seed (keep it equal to train.py's)."})
    skip_bad_rows: bool = field(default=False, metadata={"help": "Drop malformed rows instead of stopping, as train.py's flag (keep it equal to train.py's: dropped rows shift the split)."})
    include_validation_texts: bool = field(default=False, metadata={"help": "Also pretrain on the validation rows' texts (then validation scores are no longer of unseen text)."})
    tasks: str = field(default=",".join(DEFAULT_TASKS), metadata={"help": "Tasks whose texts form the corpus, comma-separated: registry names, spec files (.json, .yaml) or folders of them, as train.py's --tasks. Each text column of a pair task gives texts of its own."})
    train_files: Optional[str] = field(default=None, metadata={"help": "Comma-separated plain-text files (a text per line) to use instead of the task texts."})
    max_seq_length: int = field(default=128, metadata={"help": "Longest tokenized text, [CLS] and [SEP] included; see --split_long_texts."})
    split_long_texts: bool = field(default=True, metadata={"help": "A text longer than --max_seq_length becomes near-equal consecutive windows of at most that length, so none of it is lost; false: only its first --max_seq_length tokens (how the demo encoder was made)."})
    mlm_probability: float = field(default=0.15, metadata={"help": "Fraction of tokens to mask (whole jieba words)."})
    validation_size: int = field(default=2000, metadata={"help": "Texts held out to report MLM loss and masked-token accuracy."})
    save_dtype: str = field(default="float32", metadata={"help": "Weights' type in the saved model.safetensors: float32, or float16 for a half-size file to ship (the config stays float32, so from_pretrained loads it as float32 for training)."})

    def __post_init__(self):
        if not self.train_files and not any(name.strip() for name in self.tasks.split(",")):
            raise UsageError(f"--tasks {self.tasks!r} names no task; give task names or spec files, comma-separated, "
                             "or --train_files")
        if self.model_name_or_path and self.config_name:
            raise UsageError("give --model_name_or_path (continued pretraining) or --config_name (from scratch), "
                             "not both")
        if self.max_seq_length < 3:
            raise UsageError(f"--max_seq_length {self.max_seq_length}: must be at least 3 ([CLS], a token, [SEP])")
        if self.save_dtype not in SAVE_DTYPES:
            raise UsageError(f"--save_dtype {self.save_dtype!r}: choose one of {sorted(SAVE_DTYPES)}")

    def resolve_paths(self) -> None:
        """Every path resolved once (mtl.paths), before the library sees it; a model path or hub id checked."""
        if self.config_name:
            self.config_name = str(resolve(self.config_name))
        else:
            self.model_name_or_path = model_path(self.model_name_or_path or str(REPO_ROOT / DEMO_ENCODER_DIR))
        self.tokenizer_dir, self.data_dir = str(resolve(self.tokenizer_dir)), str(resolve(self.data_dir))
        if self.train_files:
            self.train_files = ",".join(str(resolve(p)) for p in self.train_files.split(","))


@dataclass
class PretrainTrainingArguments(TrainingArguments):
    """TrainingArguments with defaults for a small model pretrained on the bundled text."""

    output_dir: Optional[str] = field(default="user_data/demo_model", metadata={"help": "Where the pretrained model, config and tokenizer are saved."})
    learning_rate: float = field(default=5e-4, metadata={"help": "Peak AdamW learning rate."})
    per_device_train_batch_size: int = field(default=64, metadata={"help": "Train batch size per device."})
    per_device_eval_batch_size: int = field(default=128, metadata={"help": "Evaluation batch size per device."})
    num_train_epochs: float = field(default=1.0, metadata={"help": "Epochs over the corpus."})
    warmup_steps: float = field(default=0.05, metadata={"help": "Warm-up steps (a value < 1 is a fraction of all steps)."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    seed: int = field(default=2020, metadata={"help": "Seed of initialisation, masking and batch order."})
    logging_steps: float = field(default=200, metadata={"help": "Log the training loss every this many steps."})
    save_strategy: str = field(default="no", metadata={"help": "Checkpointing: no, steps or epoch."})
    remove_unused_columns: bool = field(default=False, metadata={"help": "Must stay False: the collator needs word_ids, which the model's forward does not name."})

    def __post_init__(self):
        if not self.use_cpu and not torch.cuda.is_available():  # as train.py: --bf16 is accepted on the CPU
            self.use_cpu = True
        check_training_length(self)  # pretrain.py always trains
        self.load_best_model_at_end = best_model_setting(self)
        try:
            super().__post_init__()
        except ValueError as err:  # transformers' own checks of the arguments
            raise UsageError(" ".join(str(err).split())) from None


def build_model(args: PretrainArguments) -> BertForMaskedLM:
    """The model to continue pretraining (resolve_paths sets the default), or a new one of --config_name's size."""
    if args.model_name_or_path:
        return BertForMaskedLM.from_pretrained(args.model_name_or_path)
    config = BertConfig.from_pretrained(args.config_name)
    override_config(config, args.config_overrides)
    return BertForMaskedLM(config)


def corpus_texts(args: PretrainArguments, tasks: Optional[list[Task]], same: TokenKey) -> list[str]:
    """--train_files' lines, or the texts of `tasks` read and split as train.py reads and splits them, without a text
    whose tokens are those of a validation row's text."""
    if tasks is None:
        return file_texts(Path(p) for p in args.train_files.split(","))
    reading = ReadSettings(split_ratio=args.train_val_split_ratio, split_seed=args.split_seed,
                           skip_bad_rows=args.skip_bad_rows)
    return task_texts(tasks, Path(args.data_dir), reading, args.include_validation_texts, same)


def main(argv: list[str] | None = None) -> dict[str, float]:
    args, training_args = parse_cli((PretrainArguments, PretrainTrainingArguments), argv, description=__doc__,
                                    profile=False)
    check_writable_dirs({"--output_dir": training_args.output_dir})
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    transformers.utils.logging.set_verbosity_warning()
    training_args.output_dir = str(resolve(training_args.output_dir))
    args.resolve_paths()
    tasks = None if args.train_files else tasks_of(args.tasks)  # a bad --tasks stops here, before any work
    positions = max_positions(args.model_name_or_path, args.config_name)
    if positions is not None and args.max_seq_length > positions:
        raise UsageError(f"--max_seq_length {args.max_seq_length} exceeds the model's {positions} position "
                         f"embeddings; use --max_seq_length {positions} or less")
    set_seed(training_args.seed)

    tokenizer = load_tokenizer(tokenizer_source(args.model_name_or_path, args.tokenizer_dir))
    start = time.perf_counter()
    key = TokenKey(tokenizer)
    texts = corpus_texts(args, tasks, key)
    features = encode_with_words(tokenizer, texts, args.max_seq_length, args.split_long_texts,
                                 key.encoded if tasks else None)
    key.encoded.clear()  # every text's tokens and offsets as Python objects, no longer needed
    # whole texts are held out (never one window of a text in training and another in the held-out slice)
    held = min(args.validation_size, len(texts) // 10)
    held_texts = np.random.default_rng(training_args.seed).permutation(len(texts))[:held]
    in_held = np.isin(features["source"], held_texts)
    train_set, eval_set = MLMDataset(features, np.flatnonzero(~in_held)), MLMDataset(features, np.flatnonzero(in_held))
    logger.info("corpus: %d distinct texts, %d rows of at most %d tokens, %d tokens; %d texts held out; built in "
                "%.1fs", len(texts), len(in_held), args.max_seq_length, len(features["input_ids"]), held,
                time.perf_counter() - start)

    model = build_model(args)
    logger.info("model: %d parameters (hidden %d, %d layers)", model.num_parameters(), model.config.hidden_size,
                model.config.num_hidden_layers)
    collator = ChineseWholeWordMaskCollator(tokenizer, mlm_probability=args.mlm_probability, seed=training_args.seed)
    trainer = MaskedLMTrainer(model=model, args=training_args, train_dataset=train_set,
                              eval_dataset=eval_set if held else None, data_collator=collator,
                              processing_class=tokenizer)
    if held:
        before = trainer.evaluate(metric_key_prefix="eval_before")
    result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model()
    if args.save_dtype != "float32":
        save_weights_as(training_args.output_dir, args.save_dtype)
    metrics = dict(result.metrics)
    if held:
        metrics.update(before)
        metrics.update(trainer.evaluate())
        logger.info("held-out MLM: loss %.3f -> %.3f, masked-token accuracy %.3f -> %.3f",
                    before["eval_before_loss"], metrics["eval_loss"], before["eval_before_accuracy"], metrics["eval_accuracy"])
    trainer.save_metrics("all", metrics)
    return metrics


if __name__ == "__main__":
    run_cli(main, "pretrain.py")  # a user's error: one line and exit status 1, no traceback
