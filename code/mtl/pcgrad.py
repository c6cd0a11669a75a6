"""PCGrad (Yu et al., 2020, "Gradient Surgery for Multi-Task Learning"): per optimizer step one batch of every task;
each task's gradient on the shared encoder loses its component along every other task's gradient it conflicts with
(negative inner product), the others taken in random order; the projected gradients are summed. Each head gets its
own task's gradient unchanged.

Pieces: `project_conflicting` (the surgery, on flat vectors), `TaskGroupBatchSampler` (each step: one batch of each
task), `TaskGroupCollator` (the group as a list of single-task batches); MultiTaskTrainer wires them up (`--pcgrad`).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterator

import torch

from .data import MultiTaskBatchSampler


def project_conflicting(grads: list[torch.Tensor], generator: torch.Generator) -> list[torch.Tensor]:
    """Algorithm 1 of the paper on flat gradients, one per task: g_i -= min(g_i·g_j, 0) / |g_j|² · g_j over the other
    tasks j in a random order, against the original g_j. min(·, 0) instead of an `if`: no device sync."""
    projected = []
    for i, grad in enumerate(grads):
        g = grad.clone()
        for j in torch.randperm(len(grads), generator=generator).tolist():
            if j == i:
                continue
            other = grads[j]
            dot = torch.dot(g, other).clamp(max=0.0)
            g -= dot / other.dot(other).clamp(min=1e-20) * other
        projected.append(g)
    return projected


class TaskGroupBatchSampler(MultiTaskBatchSampler):
    """Training batches for PCGrad: each step holds one batch of every task that has rows (this rank's slice of it).

    An epoch has ceil(B / K) steps, B the proportional epoch's batch count and K the number of tasks, so it reads
    about as many rows as a proportional epoch; every task contributes one batch per step (uniform mixing, as
    PCGrad needs), a large task a fresh subset each epoch, a small one its batches again in new orders.
    """

    def task_count(self) -> int:
        return sum(1 for n in self.sizes if n > 0)

    def __len__(self) -> int:
        return math.ceil(super().__len__() / max(1, self.task_count()))

    def batches(self, epoch: int) -> list[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + epoch)
        streams = [_cycle(batches, generator) for batches in self.task_batches(generator) if batches]
        return [[i for stream in streams for i in self._slice(next(stream))] for _ in range(len(self))]


def _cycle(batches: list[list[int]], generator: torch.Generator) -> Iterator[list[int]]:
    """The task's batches in order, then again and again, each round in a new random order."""
    yield from batches
    while True:
        yield from (batches[i] for i in torch.randperm(len(batches), generator=generator).tolist())


class TaskGroupCollator:
    """Examples of several tasks -> {"task_batches": [one padded batch per task, in task order]}."""

    def __init__(self, collate: Callable[[list[dict[str, Any]]], dict[str, Any]]):
        self.collate = collate

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        by_task: dict[int, list[dict[str, Any]]] = {}
        for e in examples:
            by_task.setdefault(e["task_id"], []).append(e)
        return {"task_batches": [self.collate(by_task[t]) for t in sorted(by_task)]}
