"""A shared BERT encoder with one attention-pooling classifier per task.

This file is self-contained (torch and transformers only): `save_pretrained` copies it beside the weights and records
it in the config's `auto_map`, so `AutoModel.from_pretrained(dir, trust_remote_code=True)` loads the full multi-task
model where this repository is absent. The config has a `model_type` of its own, so without `trust_remote_code` every
Auto class refuses the directory instead of building a BERT with a fresh random head.
"""
from __future__ import annotations

import logging
from typing import Optional

import torch
from torch import nn
from transformers import BertConfig, BertModel, BertPreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from .errors import UsageError

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


class BertMultiTaskConfig(BertConfig):
    """BERT's config plus the tasks: names, class counts, raw labels and their readable names, the text columns each
    task reads, its cleaner, the truncation length used in training, and the post-hoc logit adjustment (each task's
    train-split class frequencies and the strength tau). Inference needs nothing else."""

    model_type = "bert_multitask"

    def __init__(self, task_names: Optional[list[str]] = None, task_num_labels: Optional[list[int]] = None,
                 task_id2label: Optional[list[dict[str, str]]] = None,
                 task_label_names: Optional[list[dict[str, str]]] = None,
                 task_text_columns: Optional[list[list[str]]] = None, task_cleaners: Optional[list[Optional[str]]] = None,
                 max_seq_length: Optional[int] = None, task_class_priors: Optional[list[Optional[list[float]]]] = None,
                 logit_adjustment: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.task_names = list(task_names or [])
        self.task_num_labels = [int(n) for n in task_num_labels or []]
        self.task_id2label = task_id2label
        self.task_label_names = task_label_names
        self.task_text_columns = task_text_columns
        self.task_cleaners = task_cleaners
        self.max_seq_length = max_seq_length
        self.task_class_priors = task_class_priors
        self.logit_adjustment = float(logit_adjustment)

    def task_index(self, task: str) -> int:
        if task not in self.task_names:
            raise UsageError(f"the model has no head for task {task!r}; its tasks are {self.task_names}")
        return self.task_names.index(task)

    def labels_of(self, task: str) -> list[str]:
        """The task's raw label strings by class id (as in the training data)."""
        t = self.task_index(task)
        id2label = (self.task_id2label or [None] * len(self.task_names))[t] or {}
        return [id2label.get(str(i), str(i)) for i in range(self.task_num_labels[t])]

    def label_names_of(self, task: str) -> list[str]:
        """Readable names by class id (the raw label where none was given)."""
        names = (self.task_label_names or [None] * len(self.task_names))[self.task_index(task)] or {}
        return [names.get(label, label) for label in self.labels_of(task)]


def add_tasks_to_config(config: BertConfig, task_names: list[str], task_num_labels: list[int],
                        task_id2label: Optional[list[dict[int, str]]] = None,
                        task_label_names: Optional[list[dict[str, str]]] = None,
                        task_text_columns: Optional[list[list[str]]] = None,
                        task_cleaners: Optional[list[Optional[str]]] = None) -> BertMultiTaskConfig:
    """A BertMultiTaskConfig with the encoder settings of `config` and these tasks, so save_pretrained /
    from_pretrained round-trip without arguments."""
    values = {k: v for k, v in config.to_dict().items() if k not in ("model_type", "architectures", "auto_map")}
    values.update(task_names=list(task_names), task_num_labels=[int(n) for n in task_num_labels],
                  task_id2label=[{str(k): v for k, v in m.items()} for m in task_id2label] if task_id2label else None,
                  task_label_names=task_label_names, task_text_columns=task_text_columns, task_cleaners=task_cleaners,
                  architectures=["BertMultiTaskModel"])
    return BertMultiTaskConfig(**values)


def as_multitask_config(config: BertConfig) -> BertMultiTaskConfig:
    """Checkpoints saved before the config had a model_type of its own (model_type 'bert' with task_names)."""
    if isinstance(config, BertMultiTaskConfig):
        return config
    values = {k: v for k, v in config.to_dict().items() if k not in ("model_type", "auto_map")}
    return BertMultiTaskConfig(**values)


class BertMultiTaskModel(BertPreTrainedModel):
    """`bert` (shared encoder) + dropout + `heads[task]`; `task_id` indexes `config.task_names`."""

    config_class = BertMultiTaskConfig
    # The loss is a per-batch mean; Trainer then scales it for gradient accumulation (as the 2020 code did).
    accepts_loss_kwargs = False

    def __init__(self, config: BertConfig):
        super().__init__(config)
        if not getattr(config, "task_names", None):
            raise ValueError("config has no task_names; call add_tasks_to_config first")
        self.bert = BertModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.heads = nn.ModuleDict({
            name: AttentionClassifier(config.hidden_size, n)
            for name, n in zip(config.task_names, config.task_num_labels)
        })
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
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
        task = self.config.task_names[int(task_id)]
        logits = self.heads[task](self.dropout(hidden), attention_mask)
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.float(), labels.view(-1))
        if not self.training:
            logits = self.adjust_logits(logits, int(task_id))
        return SequenceClassifierOutput(loss=loss, logits=logits)

    def adjust_logits(self, logits: torch.Tensor, task_id: int) -> torch.Tensor:
        """Post-hoc logit adjustment (Menon et al., 2021, "Long-tail learning via logit adjustment"): at inference,
        logits - tau * log(train-split class frequency), so rare classes are predicted more often. Cross-entropy fits
        the train split's imbalance; macro-F1 weighs every class equally. Training (and its loss) sees raw logits."""
        tau, priors = self.config.logit_adjustment, self.config.task_class_priors
        priors = priors[task_id] if priors else None
        if not tau or not priors:
            return logits
        log_prior = torch.tensor(priors, dtype=torch.float32, device=logits.device).log()
        return (logits.float() - tau * log_prior).to(logits.dtype)


def max_positions(model_name_or_path: Optional[str], config_name: Optional[str], cache_dir: Optional[str] = None) -> Optional[int]:
    """The longest input the model's position embeddings allow, read from its config (None: no model given)."""
    source = model_name_or_path or config_name
    if not source:
        return None
    config_dict, _ = BertConfig.get_config_dict(source, cache_dir=cache_dir)
    return config_dict.get("max_position_embeddings", BertConfig().max_position_embeddings)


def load_model(model_name_or_path: Optional[str], config_name: Optional[str], task_names: list[str],
               task_num_labels: list[int], task_id2label: list[dict[int, str]],
               cache_dir: Optional[str] = None, drop_other_heads: bool = False, config_overrides: Optional[str] = None,
               **task_metadata) -> BertMultiTaskModel:
    """The three ways to get a model, as in the HF examples.

    - a saved multi-task checkpoint (its config names tasks): encoder and heads restored; a task it has no head for
      gets a new one (initialised at random, logged); its heads for tasks not asked for are kept (and saved again)
      unless `drop_other_heads`;
    - any BERT-architecture checkpoint (e.g. hfl/chinese-roberta-wwm-ext-large): encoder loaded, heads new;
    - `config_name` with no weights: random initialisation from the config.
    A local directory is read from disk only; a hub id is fetched only when it is not a local path.
    `config_overrides`: "key=value,..." applied to the encoder's config before loading (HF run_mlm's option), e.g.
    "hidden_dropout_prob=0,attention_probs_dropout_prob=0"; a key the config does not have is an error.
    `task_metadata`: the other add_tasks_to_config fields (label names, text columns, cleaners) for new heads.
    """
    if model_name_or_path:
        config_dict, _ = BertConfig.get_config_dict(model_name_or_path, cache_dir=cache_dir)
        model_type = config_dict.get("model_type", "bert")
        if model_type not in ("bert", BertMultiTaskConfig.model_type):
            raise UsageError(f"{model_name_or_path}: model_type {model_type!r}; a BERT-architecture encoder is required")
        config = BertConfig.from_dict({k: v for k, v in config_dict.items() if k != "model_type"})
        override_config(config, config_overrides)
        if getattr(config, "task_names", None):
            config = _with_tasks(as_multitask_config(config), model_name_or_path, task_names, task_num_labels,
                                 task_id2label, drop_other_heads, task_metadata)
        else:
            config = add_tasks_to_config(config, task_names, task_num_labels, task_id2label, **task_metadata)
        return BertMultiTaskModel.from_pretrained(model_name_or_path, config=config, cache_dir=cache_dir)
    if config_name:
        config = BertConfig.from_pretrained(config_name, cache_dir=cache_dir)
        override_config(config, config_overrides)
        return BertMultiTaskModel(add_tasks_to_config(config, task_names, task_num_labels, task_id2label, **task_metadata))
    raise UsageError("give --model_name_or_path (weights) or --config_name (random initialisation)")


def override_config(config: BertConfig, overrides: Optional[str]) -> None:
    """--config_overrides "key=value,..." (HF run_mlm's option) applied to `config`; a bad one is a UsageError."""
    if not overrides:
        return
    try:
        config.update_from_string(overrides)
    except ValueError as error:
        raise UsageError(f"--config_overrides {overrides!r}: {error}") from None


_TASK_LISTS = ("task_names", "task_num_labels", "task_id2label", "task_label_names", "task_text_columns", "task_cleaners",
               "task_class_priors")


def _with_tasks(config: BertMultiTaskConfig, source: str, task_names: list[str], task_num_labels: list[int],
                task_id2label: list[dict[int, str]], drop_other_heads: bool, metadata: dict) -> BertMultiTaskConfig:
    """A checkpoint's config with the heads this run needs: the ones it has (checked to have the same classes), new
    ones for tasks it lacks, and, unless `drop_other_heads`, the others it has."""
    n = len(config.task_names)
    lists = {name: list(getattr(config, name, None) or [None] * n) for name in _TASK_LISTS}
    for task, classes, id2label in zip(task_names, task_num_labels, task_id2label):
        if task in config.task_names:
            i = config.task_names.index(task)
            old = {str(k): v for k, v in (lists["task_id2label"][i] or {}).items()}
            new = {str(k): v for k, v in id2label.items()}
            if lists["task_num_labels"][i] != classes or (old and new and old != new):
                raise UsageError(f"{source}: its {task!r} head has the classes {old or lists['task_num_labels'][i]}, "
                                 f"the task's data has {new or classes}; give the task another name for a new head")
    new_tasks = [t for t in task_names if t not in config.task_names]
    for j, task in enumerate(task_names):
        if task in new_tasks:
            lists["task_names"].append(task)
            lists["task_num_labels"].append(int(task_num_labels[j]))
            lists["task_id2label"].append({str(k): v for k, v in task_id2label[j].items()})
            for key in _TASK_LISTS[3:]:
                values = metadata.get(key)
                lists[key].append(values[j] if values else None)
    if new_tasks:
        logger.info("%s has no head for task(s) %s: new head(s) initialised at random; encoder and its heads %s "
                    "kept", source, new_tasks, config.task_names)
    if drop_other_heads:
        keep = [lists["task_names"].index(t) for t in task_names]
        dropped = [t for t in lists["task_names"] if t not in task_names]
        lists = {key: [values[i] for i in keep] for key, values in lists.items()}
        if dropped:
            logger.info("dropping the head(s) %s of %s (--drop_other_heads)", dropped, source)
    for key, values in lists.items():
        setattr(config, key, values if key in ("task_names", "task_num_labels") or any(v is not None for v in values)
                else None)
    return config


# save_pretrained copies this file beside the weights and writes the auto_map that trust_remote_code follows.
BertMultiTaskConfig.register_for_auto_class()
BertMultiTaskModel.register_for_auto_class("AutoModel")
