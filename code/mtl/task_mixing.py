"""How an epoch mixes the tasks' batches: the sampler's mixing seam (MultiTaskBatchSampler(mixing=...)).

- proportional (2020, the default): every batch of every task once per epoch, in one random order; a task's share
  of the steps is its share of the rows.
- temperature T (jiant's and T5's temperature sampling): task t gets a share p_t ∝ n_t^(1/T) of the epoch's
  batches, n_t its rows (capped at `cap` when given). T = 1 is proportional, T → ∞ uniform; T > 1 up-samples
  small tasks and down-samples large ones.
- uniform: every task the same share.

An epoch keeps its length: the same number of batches as a proportional epoch, so `num_train_epochs`, the
learning-rate schedule and `len(dataloader)` mean what they always did. The shares are turned into whole batch
counts by largest remainders (deterministic, summing to the epoch's length); a task down-sampled takes the first
c_t batches of its fresh permutation (a different subset each epoch); a task up-sampled repeats its batches, each
round in a new random order. Every draw comes from the sampler's generator, seeded by seed + epoch: the same on
every rank, so under DDP all ranks mix identically.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import torch

from .errors import UsageError

Mixing = Callable[[list[list[list[int]]], torch.Generator], list[list[int]]]
STRATEGIES = ("proportional", "temperature", "uniform")


def proportional_mixing(task_batches: list[list[list[int]]], generator: torch.Generator) -> list[list[int]]:
    """All tasks' batches in one seeded random order: each task appears in proportion to its batch count."""
    batches = [b for per_task in task_batches for b in per_task]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def task_shares(sizes: Sequence[int], temperature: float, cap: Optional[int] = None) -> list[float]:
    """p_t ∝ min(n_t, cap)^(1/T); T = inf gives uniform shares. Tasks with no rows get no share."""
    capped = [min(n, cap) if cap else n for n in sizes]
    if math.isinf(temperature):
        weights = [1.0 if n > 0 else 0.0 for n in capped]
    else:
        weights = [n ** (1.0 / temperature) if n > 0 else 0.0 for n in capped]
    total = sum(weights)
    return [w / total for w in weights]


def batch_counts(shares: Sequence[float], total: int) -> list[int]:
    """Whole numbers summing to `total`, each the floor of share * total plus one for the largest remainders."""
    exact = [p * total for p in shares]
    counts = [math.floor(x) for x in exact]
    for t in sorted(range(len(exact)), key=lambda t: (counts[t] - exact[t], t))[: total - sum(counts)]:
        counts[t] += 1
    return counts


def sampled_mixing(sizes: Sequence[int], temperature: float, cap: Optional[int] = None) -> Mixing:
    """A mixing function giving task t round(p_t * epoch batches) batches per epoch (see the module's text)."""
    shares = task_shares(sizes, temperature, cap)

    def mix(task_batches: list[list[list[int]]], generator: torch.Generator) -> list[list[int]]:
        counts = batch_counts(shares, sum(len(b) for b in task_batches))
        chosen: list[list[int]] = []
        for batches, count in zip(task_batches, counts):
            taken: list[list[int]] = []
            while batches and len(taken) < count:
                round_ = batches if not taken else [batches[i] for i in torch.randperm(len(batches), generator=generator)]
                taken.extend(round_[: count - len(taken)])
            chosen.extend(taken)
        return [chosen[i] for i in torch.randperm(len(chosen), generator=generator).tolist()]

    return mix


def mixing_for(strategy: str, sizes: Sequence[int], temperature: float = 1.0, cap: Optional[int] = None) -> Mixing:
    if strategy == "proportional" or (strategy == "temperature" and temperature == 1.0 and not cap):
        return proportional_mixing  # exactly every batch once
    if strategy == "temperature":
        return sampled_mixing(sizes, temperature, cap)
    if strategy == "uniform":
        return sampled_mixing(sizes, math.inf)
    raise UsageError(f"--task_sampling {strategy!r}: use one of {', '.join(STRATEGIES)}")
