"""PCGrad (Yu et al., 2020, "Gradient Surgery for Multi-Task Learning"): per optimizer step one batch of every task;
each task's gradient on the shared encoder loses its component along every other task's gradient it conflicts with
(negative inner product), the others taken in random order; the projected gradients are summed. Each head gets its
own task's gradient unchanged.

Pieces: `project_conflicting` (the surgery, on flat vectors), `pcgrad_backward` (a step's gradients: collection,
the all-reduce under DDP, the surgery), `TaskGroupBatchSampler` (each step: one batch of each task),
`TaskGroupCollator` (the group as a list of single-task batches); MultiTaskTrainer wires them up (`--pcgrad`).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterator, Optional

import torch
from torch import nn

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


def pcgrad_backward(shared: list[nn.Parameter], tasks: list[tuple[Callable[[], torch.Tensor], list[nn.Parameter]]],
                    generator: torch.Generator, scaler: Optional[torch.amp.GradScaler] = None,
                    mean_over_processes: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> torch.Tensor:
    """One PCGrad step's gradients into `.grad`: the surgery's sum on the `shared` parameters, each task's own on its
    head. `tasks`: (a callable computing the task's loss, its head's trainable parameters). Returns the mean loss.

    Each task's gradients come from its own autograd.grad: a DDP reducer would sum the tasks before the surgery, so
    the caller passes the unwrapped module's parameters and `mean_over_processes` under DDP (the tasks' shared
    gradients and their heads' are averaged first, so every process projects the same vectors). Under fp16 the
    losses are scaled by `scaler`, as accelerator.backward does: the Trainer's clipping and optimizer step unscale
    every gradient, and the scaler's overflow check works as in any fp16 step (the projection is linear in the
    gradients' common scale, so scaling first changes nothing else)."""
    task_grads, losses, step_heads = [], [], []
    for loss_of, head in tasks:
        loss = loss_of()
        grads = torch.autograd.grad(scaler.scale(loss) if scaler is not None else loss, shared + head,
                                    allow_unused=True)
        task_grads.append(torch.cat([_or_zeros(g, p).reshape(-1) for g, p in zip(grads[:len(shared)], shared)]))
        for p, g in zip(head, grads[len(shared):]):
            if g is not None:
                p.grad = g if p.grad is None else p.grad + g
        step_heads += head
        losses.append(loss.detach())
    stacked = torch.stack(task_grads)
    if mean_over_processes is not None:
        stacked = _mean_with_heads(stacked, step_heads, mean_over_processes)
    combined = torch.stack(project_conflicting(list(stacked), generator)).sum(0)
    for p, piece in zip(shared, combined.split([p.numel() for p in shared])):
        piece = piece.view_as(p).to(p.dtype)
        p.grad = piece if p.grad is None else p.grad + piece
    return torch.stack(losses).mean()


def _or_zeros(grad: Optional[torch.Tensor], param: nn.Parameter) -> torch.Tensor:
    return grad if grad is not None else torch.zeros_like(param)


def _mean_with_heads(stacked: torch.Tensor, heads: list[nn.Parameter],
                     mean_over_processes: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """One all-reduce for the tasks' shared gradients and the heads of this step's tasks (every process has the same
    tasks in a step); the heads' means go into their `.grad`. Heads of other tasks kept in the model get no
    gradient, as in one process (a zero gradient would let AdamW's weight decay act on them)."""
    flat = mean_over_processes(torch.cat([stacked.reshape(-1)] + [_or_zeros(p.grad, p).reshape(-1) for p in heads]))
    pieces = flat.split([stacked.numel()] + [p.numel() for p in heads])
    for p, piece in zip(heads, pieces[1:]):
        p.grad = piece.view_as(p).clone()
    return pieces[0].view_as(stacked)


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
