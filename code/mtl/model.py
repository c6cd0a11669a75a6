"""A shared BERT encoder with one attention-pooling classifier per task.

This file needs torch, transformers and two small modules of its own (errors.py, heads.py): `save_pretrained` copies
the three beside the weights and records this one in the config's `auto_map`, so `AutoModel.from_pretrained(dir, trust_remote_code=True)` loads the full multi-task
model where this repository is absent. The config has a `model_type` of its own, so without `trust_remote_code` every
Auto class refuses the directory instead of building a BERT with a fresh random head.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict
from typing import Any, Optional

import torch
from torch import nn
from transformers import BertConfig, BertModel, BertPreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from .errors import UsageError
from .heads import TaskHead

logger = logging.getLogger(__name__)


class Attention(nn.Module):
    """Score every token with a linear map, softmax over the real tokens, return the weighted sum."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.score = nn.Linear(hidden_size, 1, bias=False)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        scores = self.score(hidden_states).squeeze(-1)
        scores = scores.masked_fill(attention_mask == 0, float("-inf"))  # padding gets exactly zero weight
        weights = torch.softmax(scores.float(), dim=-1).to(hidden_states.dtype)
        return torch.einsum("bs,bsh->bh", weights, hidden_states)


class AttentionClassifier(nn.Module):
    """Attention pooling, then a linear layer to the task's classes."""

    def __init__(self, hidden_size: int, num_labels: int):
        super().__init__()
        self.attention = Attention(hidden_size)
        self.classifier = nn.Linear(hidden_size, num_labels)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.attention(hidden_states, attention_mask))

    def sampled_logits(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor, samples: int,
                       rate: float) -> torch.Tensor:
        """Multi-sample dropout (Inoue 2019): the pooled vector through `samples` dropout masks, each classified;
        (samples, batch, classes). The attention pooling runs once: the samples differ only after it."""
        pooled = self.attention(hidden_states, attention_mask)
        return torch.stack([self.classifier(nn.functional.dropout(pooled, rate, training=True))
                            for _ in range(samples)])


class BertMultiTaskConfig(BertConfig):
    """BERT's config plus one record per task (`tasks`, TaskHead: labels and their readable names, the text columns
    the task reads, its cleaner, its train-split class frequencies), the truncation length used in training, and the
    strength tau of the post-hoc logit adjustment. Inference needs nothing else."""

    model_type = "bert_multitask"

    def __init__(self, tasks: Optional[list[TaskHead | dict]] = None, max_seq_length: Optional[int] = None,
                 logit_adjustment: float = 0.0, multi_sample_dropout: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.multi_sample_dropout = int(multi_sample_dropout)  # dropout samples per head in training; 1: off
        # config.json holds each record as a dict; from_pretrained hands them back as such
        self.tasks = [t if isinstance(t, TaskHead) else TaskHead(**t) for t in tasks or []]
        self.max_seq_length = max_seq_length
        self.logit_adjustment = float(logit_adjustment)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "tasks": [asdict(t) for t in self.tasks]}

    @property
    def task_names(self) -> list[str]:
        """The heads' tasks; `task_id` in the model's inputs indexes this list."""
        return [t.name for t in self.tasks]

    def task_index(self, task: str) -> int:
        if task not in self.task_names:
            raise UsageError(f"the model has no head for task {task!r}; its tasks are {self.task_names}")
        return self.task_names.index(task)

    def head(self, task: str) -> TaskHead:
        """The record of a task the model has a head for (a UsageError naming its tasks otherwise)."""
        return self.tasks[self.task_index(task)]


# what save_pretrained writes for the multi-task model itself; an encoder's values are not carried over
_WRITTEN_ON_SAVE = ("model_type", "architectures", "auto_map")


def multitask_config(config: BertConfig, heads: list[TaskHead]) -> BertMultiTaskConfig:
    """A BertMultiTaskConfig with the encoder settings of `config` and these heads, so save_pretrained /
    from_pretrained round-trip without arguments."""
    return _config_from({**config.to_dict(), "tasks": list(heads)})


def _config_from(values: dict[str, Any]) -> BertMultiTaskConfig:
    return BertMultiTaskConfig(**{k: v for k, v in values.items() if k not in _WRITTEN_ON_SAVE})


def head_names(config: dict[str, Any], source: str) -> list[str]:
    """The tasks a saved config.json (read as JSON) has heads for; an encoder's: none."""
    _refuse_parallel_lists(config, source)
    return [t["name"] for t in config.get("tasks") or []]


def _refuse_parallel_lists(config: dict[str, Any], source: str) -> None:
    if "task_names" in config:
        raise UsageError(f"{source}: its config.json keeps the tasks in parallel lists (task_names, task_num_labels, "
                         "...), as this project's versions before one record per task saved models; those no longer "
                         "load: train the model again, or convert its config.json (docs/using-a-model.md: Models saved "
                         "before one record per task)")


class BertMultiTaskModel(BertPreTrainedModel):
    """`bert` (shared encoder) + dropout + `heads[task]`; `task_id` indexes `config.tasks`."""

    config_class = BertMultiTaskConfig
    # The loss is a per-batch mean; Trainer then scales it for gradient accumulation (as the 2020 code did).
    accepts_loss_kwargs = False

    def __init__(self, config: BertMultiTaskConfig):
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.heads = nn.ModuleDict({t.name: AttentionClassifier(config.hidden_size, t.num_labels) for t in config.tasks})
        self.post_init()

    def freeze_encoder(self) -> None:
        """Stage 2: only the task heads train."""
        for p in self.bert.parameters():
            p.requires_grad_(False)

    def forward(
        self,
        input_ids: torch.Tensor,
        task_id: torch.Tensor | int,
        attention_mask: Optional[torch.Tensor] = None,
        token_type_ids: Optional[torch.Tensor] = None,
        labels: Optional[torch.Tensor] = None,
    ) -> SequenceClassifierOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.encode(input_ids, attention_mask, token_type_ids)
        loss = None
        if self.training and self.config.multi_sample_dropout > 1:
            head = self.heads[self.config.tasks[int(task_id)].name]
            sampled = head.sampled_logits(hidden, attention_mask, self.config.multi_sample_dropout,
                                          multi_sample_dropout_rate(self.config))
            logits = sampled.mean(0)
            if labels is not None:  # the mean of the samples' losses, as Inoue's
                loss = torch.stack([nn.functional.cross_entropy(s.float(), labels.view(-1)) for s in sampled]).mean()
        else:
            logits = self.head_logits(hidden, attention_mask, int(task_id))
            if labels is not None:
                loss = nn.functional.cross_entropy(logits.float(), labels.view(-1))
        if not self.training:
            logits = self.adjust_logits(logits, int(task_id))
        return SequenceClassifierOutput(loss=loss, logits=logits)

    # forward is encode -> head_logits -> (eval) adjust_logits; the ONNX export (mtl.onnx_export) calls the same
    # three for every head, so the exported graph computes what forward computes.
    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
               token_type_ids: Optional[torch.Tensor]) -> torch.Tensor:
        """The shared encoder's last hidden states, as the heads read them (after dropout)."""
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
        return self.dropout(hidden)

    def head_logits(self, hidden: torch.Tensor, attention_mask: torch.Tensor, task_id: int) -> torch.Tensor:
        """The raw (unadjusted) logits of task `task_id`'s head."""
        return self.heads[self.config.tasks[task_id].name](hidden, attention_mask)

    def adjust_logits(self, logits: torch.Tensor, task_id: int) -> torch.Tensor:
        """Post-hoc logit adjustment (Menon et al., 2021, "Long-tail learning via logit adjustment"): at inference,
        logits - tau * log(train-split class frequency), so rare classes are predicted more often. Cross-entropy fits
        the train split's imbalance; macro-F1 weighs every class equally. Training (and its loss) sees raw logits."""
        tau, priors = self.config.logit_adjustment, self.config.tasks[task_id].class_priors
        if not tau or not priors:
            return logits
        log_prior = torch.tensor(priors, dtype=torch.float32, device=logits.device).log()
        return (logits.float() - tau * log_prior).to(logits.dtype)


def multi_sample_dropout_rate(config: BertConfig) -> float:
    """The dropout rate of the multi-sample heads: the config's classifier_dropout, else hidden_dropout_prob (as HF's
    sequence-classification heads choose theirs)."""
    rate = getattr(config, "classifier_dropout", None)
    return float(config.hidden_dropout_prob if rate is None else rate)


def refuse_multi_sample_dropout_without_rate(config: BertMultiTaskConfig) -> None:
    if config.multi_sample_dropout > 1 and multi_sample_dropout_rate(config) == 0:
        raise UsageError(f"--multi_sample_dropout {config.multi_sample_dropout} needs a dropout rate, and the model's "
                         "classifier_dropout (else hidden_dropout_prob) is 0: give one, e.g. --config_overrides "
                         "classifier_dropout=0.3")


def max_positions(model_name_or_path: Optional[str], config_name: Optional[str], cache_dir: Optional[str] = None) -> Optional[int]:
    """The longest input the model's position embeddings allow, read from its config (None: no model given)."""
    source = model_name_or_path or config_name
    if not source:
        return None
    config_dict, _ = BertConfig.get_config_dict(source, cache_dir=cache_dir)
    return config_dict.get("max_position_embeddings", BertConfig().max_position_embeddings)


def load_model(model_name_or_path: Optional[str], config_name: Optional[str], heads: list[TaskHead],
               cache_dir: Optional[str] = None, drop_other_heads: bool = False,
               config_overrides: Optional[str] = None, multi_sample_dropout: Optional[int] = None) -> BertMultiTaskModel:
    """A model with a head for each of `heads`, from one of three sources, as in the HF examples.

    - a saved multi-task checkpoint: encoder and heads restored; a task it has no head for gets a new one
      (initialised at random, logged); its heads for tasks not asked for are kept (and saved again) unless
      `drop_other_heads`;
    - any BERT-architecture checkpoint (e.g. hfl/chinese-roberta-wwm-ext-large), a checkpoint with no heads: encoder
      loaded, heads new;
    - `config_name` with no weights: random initialisation from the config.
    A local directory is read from disk only; a hub id is fetched only when it is not a local path.
    `config_overrides`: "key=value,..." applied to the encoder's config before loading (HF run_mlm's option), e.g.
    "hidden_dropout_prob=0,attention_probs_dropout_prob=0"; a key the config does not have is an error.
    `multi_sample_dropout`: dropout samples per head in training (None: the checkpoint's, 1 for a new model).
    """
    source = model_name_or_path or config_name
    if not source:
        raise UsageError("give --model_name_or_path (weights) or --config_name (random initialisation)")
    config_dict, _ = BertConfig.get_config_dict(source, cache_dir=cache_dir)
    model_type = config_dict.get("model_type", "bert")
    if model_type not in ("bert", BertMultiTaskConfig.model_type):
        raise UsageError(f"{source}: model_type {model_type!r}; a BERT-architecture encoder is required")
    _refuse_parallel_lists(config_dict, source)
    config = _config_from(config_dict)
    override_config(config, config_overrides)
    if multi_sample_dropout is not None:
        config.multi_sample_dropout = multi_sample_dropout
        refuse_multi_sample_dropout_without_rate(config)
    config.tasks = _with_heads(config.tasks, heads, drop_other_heads, source)
    if model_name_or_path:
        return BertMultiTaskModel.from_pretrained(model_name_or_path, config=config, cache_dir=cache_dir)
    return BertMultiTaskModel(config)


def override_config(config: BertConfig, overrides: Optional[str]) -> None:
    """--config_overrides "key=value,..." (HF run_mlm's option) applied to `config`; a bad one is a UsageError."""
    if not overrides:
        return
    # transformers' update_from_string cannot set a key whose value is None (e.g. BERT's classifier_dropout): such
    # keys take the value as JSON (a number, true/false), else as a string
    typed = []
    for item in overrides.split(","):
        key, sep, value = item.partition("=")
        if sep and hasattr(config, key) and getattr(config, key) is None:
            try:
                setattr(config, key, json.loads(value))
            except json.JSONDecodeError:
                setattr(config, key, value)
        else:
            typed.append(item)
    try:
        if typed:
            config.update_from_string(",".join(typed))
    except ValueError as error:
        raise UsageError(f"--config_overrides {overrides!r}: {error}") from None


def _with_heads(have: list[TaskHead], wanted: list[TaskHead], drop_others: bool, source: str) -> list[TaskHead]:
    """The heads a run needs: the model's own (checked to have the same classes; its records kept), new ones for
    the tasks it lacks after them, and, unless `drop_others`, its heads for other tasks."""
    own = {t.name: t for t in have}
    for head in wanted:
        if head.name in own and own[head.name].labels != head.labels:
            raise UsageError(f"{source}: its {head.name!r} head has the classes {own[head.name].labels}, the task's "
                             f"data has {head.labels}; give the task another name for a new head")
    new = [t for t in wanted if t.name not in own]
    if new and have:
        logger.info("%s has no head for task(s) %s: new head(s) initialised at random; encoder and its heads %s "
                    "kept", source, [t.name for t in new], list(own))
    if not drop_others:
        return [*have, *new]
    dropped = [name for name in own if name not in {t.name for t in wanted}]
    if dropped:
        logger.info("dropping the head(s) %s of %s (--drop_other_heads)", dropped, source)
    return [own.get(t.name, t) for t in wanted]


# save_pretrained copies this file beside the weights and writes the auto_map that trust_remote_code follows.
BertMultiTaskConfig.register_for_auto_class()
BertMultiTaskModel.register_for_auto_class("AutoModel")
