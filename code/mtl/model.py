"""A shared BERT encoder with one attention-pooling classifier per task."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn
from transformers import BertConfig, BertModel, BertPreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput


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


def add_tasks_to_config(config: BertConfig, task_names: list[str], task_num_labels: list[int],
                        task_id2label: Optional[list[dict[int, str]]] = None) -> BertConfig:
    """Record the tasks in the config, so save_pretrained / from_pretrained round-trip without arguments."""
    config.task_names = list(task_names)
    config.task_num_labels = [int(n) for n in task_num_labels]
    config.task_id2label = [{str(k): v for k, v in m.items()} for m in task_id2label] if task_id2label else None
    config.architectures = ["BertMultiTaskModel"]
    return config


class BertMultiTaskModel(BertPreTrainedModel):
    """`bert` (shared encoder) + dropout + `heads[task]`; `task_id` indexes `config.task_names`."""

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
        return SequenceClassifierOutput(loss=loss, logits=logits)


def load_model(model_name_or_path: Optional[str], config_name: Optional[str], task_names: list[str],
               task_num_labels: list[int], task_id2label: list[dict[int, str]],
               cache_dir: Optional[str] = None) -> BertMultiTaskModel:
    """The three ways to get a model, as in the HF examples.

    - a saved multi-task checkpoint (its config names tasks): everything restored;
    - any BERT-architecture checkpoint (e.g. hfl/chinese-roberta-wwm-ext-large): encoder loaded, heads new;
    - `config_name` with no weights: random initialisation from the config.
    A local directory is read from disk only; a hub id is fetched only when it is not a local path.
    """
    if model_name_or_path:
        config = BertConfig.from_pretrained(model_name_or_path, cache_dir=cache_dir)
        if getattr(config, "model_type", "bert") != "bert":
            raise ValueError(f"{model_name_or_path}: model_type {config.model_type!r}; a BERT-architecture encoder is required")
        if getattr(config, "task_names", None):
            missing = [t for t in task_names if t not in config.task_names]
            if missing:
                raise ValueError(f"{model_name_or_path} has no head for task(s) {missing}; it has {config.task_names}")
        else:
            add_tasks_to_config(config, task_names, task_num_labels, task_id2label)
        return BertMultiTaskModel.from_pretrained(model_name_or_path, config=config, cache_dir=cache_dir)
    if config_name:
        config = BertConfig.from_pretrained(config_name, cache_dir=cache_dir)
        add_tasks_to_config(config, task_names, task_num_labels, task_id2label)
        return BertMultiTaskModel(config)
    raise ValueError("give --model_name_or_path (weights) or --config_name (random initialisation)")
