"""The support matrix's refusals: option combinations this kit does not run, refused at start-up in one line that
names the flags and says what to use instead (docs/support-matrix.md lists every cell; tests/test_support_matrix.py
runs them pairwise).

Checked by train.py before any cache or file is written, and again by MultiTaskTrainer for library users.
"""
from __future__ import annotations

import torch
from transformers import TrainingArguments
from transformers.training_args import ParallelMode

from .errors import UsageError


def refuse_backends(args: TrainingArguments) -> None:
    """FSDP and DeepSpeed: refused in TrainingArguments.__post_init__, before transformers sets them up (DeepSpeed's
    set-up imports the deepspeed package)."""
    if args.fsdp:
        # The EMA keeps the parameter objects from before wrapping, evaluation runs ranks through different batch
        # counts on the sharded module (a hang), and checkpoints would need FSDP's sharded state dicts.
        raise UsageError("--fsdp is not supported (the EMA, the sharded evaluation and the checkpoints assume whole "
                         "parameters on every process); use torchrun with DDP, --bf16 and --gradient_checkpointing to "
                         "fit a larger model (docs/support-matrix.md)")
    if args.deepspeed:
        raise UsageError("--deepspeed is not supported (resume would skip the EMA's training weights and PCGrad "
                         "would take no optimizer step); use torchrun with DDP (docs/support-matrix.md)")


def refuse_unsupported(args: TrainingArguments, *, freeze: bool) -> None:
    """Raise UsageError for the first unsupported combination in `args` (a MultiTaskTrainingArguments)."""
    refuse_backends(args)
    if args.parallel_mode == ParallelMode.NOT_DISTRIBUTED and args.n_gpu > 1:
        # The Trainer would wrap the model in nn.DataParallel: the loss comes back as one value per GPU, the task
        # batches are split across replicas of a module whose head is picked by a Python int, and the sampler's
        # sharding assumes one process per device.
        raise UsageError(f"{args.n_gpu} GPUs are visible to one process, which would train with nn.DataParallel "
                         f"(not supported); start one process per GPU: torchrun --nproc_per_node {args.n_gpu} "
                         "code/train.py ... (bash run.sh does this by default), or pick one GPU with "
                         "CUDA_VISIBLE_DEVICES=0")
    if args.fp16 and not torch.cuda.is_available():
        # accelerate runs fp16 on the CPU without autocast or a loss scaler: it would train in fp32 while saying fp16.
        raise UsageError("--fp16 needs a CUDA GPU (on the CPU it would silently train in fp32); use --bf16 on the CPU")
    if args.adversarial != "no":
        if freeze:
            raise UsageError(f"--adversarial {args.adversarial} perturbs the word embeddings along their gradient, and "
                             "--freeze freezes the encoder: drop --adversarial for a heads-only stage")
        if args.pcgrad:
            # PCGrad's surgery runs its own backward per task; an attack would need one per task as well
            raise UsageError(f"--adversarial {args.adversarial} does not combine with --pcgrad (each takes the step's "
                             "backward passes in its own way): drop one of them")
    if args.pcgrad:
        if freeze:
            raise UsageError("--pcgrad projects the tasks' encoder gradients, and --freeze freezes the encoder: "
                             "drop --pcgrad for a heads-only stage")
        if args.max_tokens_per_batch:
            raise UsageError("--pcgrad takes one batch of every task per step; it does not combine with "
                             "--max_tokens_per_batch (use --per_device_train_batch_size)")
        if args.gradient_accumulation_steps != 1:
            raise UsageError("--pcgrad takes one batch of every task per optimizer step; use it with "
                             "--gradient_accumulation_steps 1 (raise --per_device_train_batch_size instead)")
        if args.task_sampling != "proportional":
            raise UsageError(f"--pcgrad takes one batch of every task per step (uniform by construction); it does "
                             f"not combine with --task_sampling {args.task_sampling}: drop one of them")


def refuse_without_dropout(args: TrainingArguments, config) -> None:
    """R-Drop compares two dropout passes: a model with no dropout anywhere makes them equal (a KL term of 0, twice
    the compute for nothing). `config`: the model's (a BertMultiTaskConfig, or a BertConfig with the run's
    multi_sample_dropout set)."""
    if not args.rdrop_alpha:
        return
    from .model import multi_sample_dropout_rate  # here, not at the top: args.py imports this module early

    heads = getattr(config, "multi_sample_dropout", 1) > 1 and multi_sample_dropout_rate(config) > 0
    if not (config.hidden_dropout_prob > 0 or config.attention_probs_dropout_prob > 0 or heads):
        raise UsageError(f"--rdrop_alpha {args.rdrop_alpha:g} compares two dropout passes, and the model has no dropout "
                         "(hidden_dropout_prob and attention_probs_dropout_prob are 0): give it some, e.g. "
                         "--config_overrides hidden_dropout_prob=0.1, or drop --rdrop_alpha")
