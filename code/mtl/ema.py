"""Exponential moving average of the trainable weights, with fused foreach ops, and its Trainer callback."""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.distributed as dist
from torch import nn
from transformers import TrainerCallback


class WeightEMA:
    """shadow = decay * shadow + (1 - decay) * weight after every optimizer step (as timm's ModelEmaV3).

    One `torch._foreach_lerp_` call per step over all tensors: no per-parameter Python `clone()` as in 2020.
    Covers the parameters that require grad when it is created (in stage 2, only the task heads).
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, start_step: int = 0):
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.shadow = [p.detach().clone() for p in self.params]
        self.decay = decay
        self.start_step = start_step

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Fold in the weights after optimizer step `step` (1-based); before `start_step` just copy them."""
        if step <= self.start_step:
            torch._foreach_copy_(self.shadow, self.params)
        else:
            torch._foreach_lerp_(self.shadow, self.params, 1.0 - self.decay)

    @torch.no_grad()
    def copy_to_model(self) -> None:
        torch._foreach_copy_(self.params, self.shadow)

    @torch.no_grad()
    def reset_from_model(self) -> None:
        torch._foreach_copy_(self.shadow, self.params)

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """Inside, the model holds the EMA weights; on exit the training weights come back bit-exactly."""
        with torch.no_grad():
            backup = [p.detach().clone() for p in self.params]
            torch._foreach_copy_(self.params, self.shadow)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self.params, backup)

    def training_state(self) -> dict[str, torch.Tensor]:
        """The raw (non-averaged) training weights, by parameter name."""
        return {n: p.detach().contiguous() for n, p in zip(self.names, self.params)}

    @torch.no_grad()
    def load_training_state(self, state: dict[str, torch.Tensor]) -> None:
        missing = [n for n in self.names if n not in state]
        if missing:
            raise KeyError(f"training weights missing for {missing[:3]}{'...' if len(missing) > 3 else ''}")
        torch._foreach_copy_(self.params, [state[n].to(p.device, p.dtype) for n, p in zip(self.names, self.params)])


    @torch.no_grad()
    def broadcast_from_main(self) -> None:
        """Every process takes rank 0's EMA. DDP broadcasts the weights when it wraps the model; the EMA is ours to
        keep in step (its copy was taken before wrapping, from each rank's own initialisation)."""
        if _distributed():
            for tensor in self.shadow:
                dist.broadcast(tensor, src=0)

    @torch.no_grad()
    def check_same_on_all_ranks(self) -> None:
        """Raise if any rank's EMA differs from rank 0's (one all_gather of per-tensor float64 sums)."""
        if not _distributed() or not self.shadow:
            return
        local = torch.stack([t.double().sum() for t in self.shadow])
        gathered = [torch.empty_like(local) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, local)
        differ = [rank for rank, sums in enumerate(gathered) if not torch.equal(sums, gathered[0])]
        if differ:
            raise RuntimeError(f"the EMA weights of rank(s) {differ} differ from rank 0's: the processes trained "
                               "different models (a desynchronised run); its checkpoints cannot be trusted")


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class EMACallback(TrainerCallback):
    """Keeps the EMA in step with training: the same on every rank at the start, updated after every optimizer
    step (on_step_end runs right after optimizer.step)."""

    def __init__(self, ema: WeightEMA):
        self.ema = ema

    def on_train_begin(self, args, state, control, **kwargs):
        self.ema.broadcast_from_main()

    def on_step_end(self, args, state, control, **kwargs):
        self.ema.update(state.global_step)
