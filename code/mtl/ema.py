"""Exponential moving average of the trainable weights, with fused foreach ops; its Trainer callback (the update)
and Trainer mixin (evaluation, checkpoints and the final model on the EMA weights)."""
from __future__ import annotations

import contextlib
import logging
import os
from typing import Any, Iterator, Optional

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import TrainerCallback

from .checkpoints import checkpoint_folder
from .errors import UsageError

logger = logging.getLogger(__name__)

# Checkpoints hold the EMA weights as their model (what evaluation and inference use); the raw training
# weights travel beside them so resume_from_checkpoint continues both exactly.
TRAINING_WEIGHTS_NAME = "training_weights.safetensors"


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


class EMATrainerMixin:
    """A transformers.Trainer mixin (listed before Trainer) keeping an EMA of the weights when `args.ema_decay` > 0:
    evaluation and prediction during training see the EMA weights, a checkpoint holds them as its model and the raw
    training weights beside (resume continues both exactly), and training ends with the EMA weights in the model
    (or the best checkpoint's, which are EMA weights too). `_save_checkpoint`, `_load_from_checkpoint` and
    `_load_best_model` are private Trainer methods: there is no public hook for keeping the two sets together."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.ema: Optional[WeightEMA] = None
        if self.args.ema_decay > 0:
            self.ema = WeightEMA(self.model, self.args.ema_decay, self.args.ema_start_step)
            self.add_callback(EMACallback(self.ema))

    @contextlib.contextmanager
    def ema_weights(self) -> Iterator[None]:
        """The EMA weights in the model, during training. Outside training the model holds them already: train()
        ends by copying them in, and a loaded checkpoint's weights are its EMA. (Swapping outside training would
        also meet a model that evaluation-only set-up has moved or cast, e.g. by --bf16_full_eval.)"""
        with self.ema.applied() if self.ema is not None and self.is_in_train else contextlib.nullcontext():
            yield

    def evaluate(self, *args: Any, **kwargs: Any) -> dict[str, float]:
        with self.ema_weights():
            return super().evaluate(*args, **kwargs)

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        with self.ema_weights():
            return super().predict(*args, **kwargs)

    def _save_checkpoint(self, model: nn.Module, trial: Any) -> None:
        with self.ema_weights():
            super()._save_checkpoint(model, trial)
        if self.ema is not None and self.args.should_save:
            save_file(self.ema.training_state(), os.path.join(checkpoint_folder(self, trial), TRAINING_WEIGHTS_NAME))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Optional[nn.Module] = None) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        if self.ema is None:
            return
        self.ema.reset_from_model()  # the checkpoint's model weights are the EMA
        path = os.path.join(resume_from_checkpoint, TRAINING_WEIGHTS_NAME)
        if not os.path.exists(path):
            logger.warning("%s has no %s: training resumes from the EMA weights", resume_from_checkpoint,
                           TRAINING_WEIGHTS_NAME)
            return
        state = load_file(path)
        if set(state) != set(self.ema.names):
            raise UsageError(f"{resume_from_checkpoint} holds the training weights of other parameters than this "
                             "run trains (another --freeze setting?): resume with the settings it was written "
                             "with, or start over with --overwrite_output_dir")
        self.ema.load_training_state(state)

    def _load_best_model(self) -> None:
        super()._load_best_model()
        if self.ema is not None:
            self.ema.reset_from_model()  # the best checkpoint holds EMA weights; keep them as the final model

    def train(self, *args: Any, **kwargs: Any) -> Any:
        output = super().train(*args, **kwargs)
        if self.ema is not None:
            self.ema.check_same_on_all_ranks()
            self.ema.copy_to_model()
        return output
