"""Adversarial training on the word embeddings: FGM (Miyato et al. 2017) and PGD (Madry et al. 2018), in the form
the 2020-era Chinese competition solutions used: the perturbation is added to the word-embedding matrix, along its
gradient normalised over the whole matrix, and the step's gradient is the clean batch's plus the perturbed batch's.

Written here rather than taken from a library: no maintained package does this inside HF's Trainer step, and it
must hold with gradient accumulation and DDP. The direction is this micro-batch's own embedding gradient (a tensor
hook sees it before it accumulates into `.grad`, which may hold earlier micro-batches'), averaged over the
processes when there are several, so every process applies the same perturbation: the one a single process
computing the whole batch would. The matrix is restored from a copy, bit for bit, before the optimizer step.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch


def unit(grad: torch.Tensor) -> Optional[torch.Tensor]:
    """grad / its Frobenius norm; None when the norm is 0 or not finite (no gradient, or an fp16 overflow the
    loss scaler will skip the step for)."""
    norm = torch.linalg.vector_norm(grad)
    if not torch.isfinite(norm) or norm == 0:
        return None
    return grad / norm


def clip_to_ball(delta: torch.Tensor, epsilon: float) -> torch.Tensor:
    """PGD's projection: `delta` scaled back onto the ball of radius epsilon when it lies outside."""
    norm = torch.linalg.vector_norm(delta)
    return delta * (epsilon / norm) if norm > epsilon else delta


def adversarial_step(weight: torch.Tensor, clean_step: Callable[[], torch.Tensor],
                     adversarial_step: Callable[[], torch.Tensor], inner_loss: Callable[[], torch.Tensor], *,
                     method: str, epsilon: float, steps: int,
                     mean: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> torch.Tensor:
    """One training step with an embedding attack; returns `clean_step`'s loss.

    weight: the word-embedding matrix (a leaf parameter).
    clean_step / adversarial_step: the Trainer's step on the batch (forward, loss scaled for accumulation,
        backward: gradients accumulate); the second runs with the matrix perturbed.
    inner_loss: the batch's loss on the unwrapped model, for PGD's inner steps (their gradient moves the
        perturbation only; it is taken with autograd.grad and never reaches `.grad`).
    mean: averages a tensor over the processes (None in one process).
    """
    captured: list[torch.Tensor] = []
    handle = weight.register_hook(lambda g: captured.append(g.detach().float().clone()))
    try:
        loss = clean_step()
    finally:
        handle.remove()
    direction = _direction(sum(captured) if captured else None, mean)
    if direction is None:  # the same on every process: the gradient was averaged first
        return loss
    step_size = epsilon if method == "fgm" else 2.5 * epsilon / steps  # Madry et al.'s step: the ball's edge is reached
    backup = weight.detach().clone()
    delta = torch.zeros_like(backup, dtype=torch.float32)
    try:
        for t in range(1 if method == "fgm" else steps):
            delta = clip_to_ball(delta + step_size * direction, epsilon)
            with torch.no_grad():
                weight.copy_(backup + delta.to(backup.dtype))
            if t == steps - 1 or method == "fgm":
                break
            (grad,) = torch.autograd.grad(inner_loss(), weight)
            direction = _direction(grad.float(), mean)
            if direction is None:
                break
        adversarial_step()
    finally:
        with torch.no_grad():
            weight.copy_(backup)
    return loss


def _direction(grad: Optional[torch.Tensor], mean) -> Optional[torch.Tensor]:
    if grad is None:
        return None
    if mean is not None:
        grad = mean(grad)
    return unit(grad)
