"""Layer-wise learning-rate decay (Howard & Ruder 2018; ELECTRA's and the competition solutions' fine-tuning
recipe): the task heads train at the full rate, encoder layer i of L at lr * decay^(L - i), the embeddings at
lr * decay^(L + 1), so the lower layers, which hold the most general features, move least."""
from __future__ import annotations

import re
from typing import Any

from torch import nn

_LAYER = re.compile(r"(?:^|\.)bert\.encoder\.layer\.(\d+)\.")
_EMBEDDINGS = re.compile(r"(?:^|\.)bert\.embeddings\.")
_HEADS = re.compile(r"(?:^|\.)heads\.")


def parameter_depths(model: nn.Module) -> dict[int, int]:
    """id(parameter) -> depth from the top: 0 for the heads, L - i for encoder layer i, L + 1 for the embeddings.
    A parameter elsewhere is an error (a decay that skipped it would train it at the full rate unnoticed)."""
    layers = model.config.num_hidden_layers
    depths = {}
    for name, param in model.named_parameters():
        if _HEADS.search(name):
            depth = 0
        elif match := _LAYER.search(name):
            depth = layers - int(match.group(1))
        elif _EMBEDDINGS.search(name):
            depth = layers + 1
        else:
            raise ValueError(f"--layerwise_lr_decay: no depth for parameter {name!r}")
        depths[id(param)] = depth
    return depths


def layerwise_groups(groups: list[dict[str, Any]], model: nn.Module, decay: float) -> list[dict[str, Any]]:
    """The optimizer's parameter groups (the Trainer's: with and without weight decay) split by depth, each with
    lr * decay^depth and its depth under "layer_depth"; groups already split are returned as they are."""
    if any("layer_depth" in group for group in groups):
        return groups
    depths = parameter_depths(model)
    split = []
    for group in groups:
        by_depth: dict[int, list] = {}
        for param in group["params"]:
            by_depth.setdefault(depths[id(param)], []).append(param)
        for depth, params in sorted(by_depth.items()):
            split.append({**group, "params": params, "lr": group["lr"] * decay ** depth, "layer_depth": depth})
    return split
