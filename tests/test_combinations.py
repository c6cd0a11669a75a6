"""The combination defects of the support-matrix issue, one named test each: several GPUs in one process, fp16 with
PCGrad, throughput mode over several epochs, FSDP/DeepSpeed, PCGrad with torch.compile, evaluation-only set-up,
PCGrad with --freeze, PCGrad's kept heads under DDP, and the token budget of a task's last rows."""
from __future__ import annotations

import json
from collections import Counter

import pytest
import torch
from transformers import BertConfig

import train
from helpers import DATA_DIR, TINY_CONFIG, common, numbered_heads
from mtl.args import MultiTaskTrainingArguments
from mtl.data import MultiTaskBatchSampler, MultiTaskCollator, MultiTaskDataset
from mtl.errors import UsageError
from mtl.model import BertMultiTaskModel, multitask_config
from mtl.pcgrad import project_conflicting
from mtl.trainer import MultiTaskTrainer

TASKS = ["ocnli", "ocemotion", "tnews"]


def tiny_args(tmp, data_dir, name, *extra):
    return [*common(tmp, data_dir, name), "--config_name", str(TINY_CONFIG), *extra]


def refused(tmp, data_dir, *extra) -> str:
    with pytest.raises(UsageError) as err:
        train.main(tiny_args(tmp, data_dir, "refused", "--do_train", *extra))
    assert not any(tmp.iterdir()), "a refused run wrote something"
    return str(err.value)


# ---- 1. several GPUs under plain python ---------------------------------------------------------------------
def test_several_gpus_in_one_process_are_refused_before_anything_is_written(tmp_path, small_data_dir, monkeypatch):
    """Stub of a 4-GPU machine: the Trainer would wrap the model in nn.DataParallel, whose per-GPU losses crashed
    the per-task loss logging at step 1."""
    monkeypatch.setattr(MultiTaskTrainingArguments, "n_gpu", property(lambda self: 4))
    message = refused(tmp_path, small_data_dir)
    assert "4 GPUs" in message and "torchrun --nproc_per_node 4" in message


# ---- 2, 5 and 7: PCGrad's gradients -------------------------------------------------------------------------
def pcgrad_setup(tmp_path, extra_task: bool = False):
    torch.manual_seed(0)
    config = BertConfig.from_pretrained(str(TINY_CONFIG), hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    names = TASKS + (["kept"] if extra_task else [])
    model = BertMultiTaskModel(multitask_config(config, numbered_heads(**dict(zip(names, [3, 7, 15, 2])))))
    args = MultiTaskTrainingArguments(output_dir=str(tmp_path), report_to="none", eval_strategy="no",
                                      save_strategy="no", load_best_model_at_end=False, pcgrad=True)
    trainer = MultiTaskTrainer(model=model, args=args, data_collator=MultiTaskCollator())
    collate = MultiTaskCollator()
    batches = [collate([{"input_ids": torch.tensor([101, 100 + 7 * t + r, 200 + r, 102]),
                         "token_type_ids": torch.zeros(4), "labels": torch.tensor(r % 3), "task_id": t}
                        for r in range(4)]) for t in range(3)]
    return model, trainer, batches


def expected_pcgrad(model, batches, seed):
    """PCGrad by hand: each task's encoder gradient by its own backward, the surgery, the sum; heads their own."""
    shared = [p for n, p in model.named_parameters() if not n.startswith("heads.")]
    per_task, heads = [], {}
    for t, batch in enumerate(batches):
        model.zero_grad()
        model(**batch).loss.backward()
        per_task.append(torch.cat([p.grad.reshape(-1) for p in shared]))
        heads[TASKS[t]] = [p.grad.clone() for p in model.heads[TASKS[t]].parameters()]
    model.zero_grad()
    return shared, torch.stack(project_conflicting(per_task, torch.Generator().manual_seed(seed))).sum(0), heads


def test_fp16_pcgrad_scales_its_losses_as_any_fp16_backward(tmp_path):
    """The Trainer's clipping and optimizer step unscale every gradient by the loss scale; PCGrad's gradients must
    come scaled, else every update is divided by the scale (65,536 at the start) and the run stalls silently.
    A CPU GradScaler stands in for the GPU's."""
    model, trainer, batches = pcgrad_setup(tmp_path)
    shared, expected, heads = expected_pcgrad(model, batches, trainer.args.seed)
    trainer.accelerator.scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    trainer.training_step(model, {"task_batches": batches})
    torch.testing.assert_close(torch.cat([p.grad.reshape(-1) for p in shared]), 1024.0 * expected, rtol=1e-4, atol=1e-4)
    for name, grads in heads.items():
        for p, g in zip(model.heads[name].parameters(), grads):
            torch.testing.assert_close(p.grad, 1024.0 * g, rtol=1e-4, atol=1e-4)


def test_pcgrad_on_a_compiled_model_keeps_heads_out_of_the_surgery(tmp_path):
    """Under --torch_compile the parameter names start with `_orig_mod.`: matching heads by name made every head a
    shared parameter (its gradient added twice and projected with the other tasks')."""
    model, trainer, batches = pcgrad_setup(tmp_path)
    shared, expected, heads = expected_pcgrad(model, batches, trainer.args.seed)
    trainer.training_step(torch.compile(model, backend="eager"), {"task_batches": batches})
    torch.testing.assert_close(torch.cat([p.grad.reshape(-1) for p in shared]), expected, rtol=1e-5, atol=1e-6)
    for name, grads in heads.items():
        for p, g in zip(model.heads[name].parameters(), grads):
            torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-6)


def test_pcgrad_under_ddp_leaves_heads_of_tasks_not_trained_without_gradient(tmp_path, monkeypatch):
    """A kept head of a task not in --tasks gets no gradient in one process; under DDP the all-reduce gave it a zero
    gradient, which AdamW's weight decay then acts on. Two ranks are simulated: world_size 2, a mean over one."""
    model, trainer, batches = pcgrad_setup(tmp_path, extra_task=True)
    monkeypatch.setattr(MultiTaskTrainingArguments, "world_size", property(lambda self: 2))
    monkeypatch.setattr(trainer.accelerator, "reduce", lambda tensor, reduction: tensor)
    trainer.training_step(model, {"task_batches": batches})
    assert all(p.grad is None for p in model.heads["kept"].parameters())
    assert all(p.grad is not None for name in TASKS for p in model.heads[name].parameters())


def test_pcgrad_with_a_frozen_encoder_is_refused(tmp_path, small_data_dir):
    assert "drop --pcgrad" in refused(tmp_path, small_data_dir, "--pcgrad", "--freeze")


def test_pcgrad_with_task_sampling_is_refused(tmp_path, small_data_dir):
    """PCGrad's sampler takes one batch of every task per step and ignored --task_sampling without a word."""
    assert "--task_sampling temperature" in refused(tmp_path, small_data_dir, "--pcgrad", "--task_sampling", "temperature")


# ---- 3. throughput mode over several epochs ------------------------------------------------------------------
def test_token_budget_epochs_all_have_the_trainers_length_and_every_row_once():
    """The Trainer fixes the steps per epoch from len() once; an epoch's draw packs into a varying number of batches."""
    generator = torch.Generator().manual_seed(1)
    sizes = [300, 500, 120]
    lengths = [torch.randint(3, 120, (n,), generator=generator) for n in sizes]
    natural = MultiTaskBatchSampler(sizes, 4, seed=5, lengths=lengths, max_tokens=700)
    counts = {len(natural._draw(e)) for e in range(12)}
    assert len(counts) > 1  # the draws differ: the case that lost or repeated batches
    for replicas in (1, 2):
        samplers = [MultiTaskBatchSampler(sizes, 4, seed=5, lengths=lengths, max_tokens=700, num_replicas=replicas,
                                          rank=r) for r in range(replicas)]
        length = len(samplers[0])
        for epoch in range(12):
            per_rank = [s.batches(epoch) for s in samplers]
            assert all(len(b) == length for b in per_rank)
            assert sorted(i for b in per_rank for batch in b for i in batch) == list(range(sum(sizes)))


def test_a_tasks_last_rows_never_push_a_rank_over_the_token_budget():
    """Two ranks, rows of 10 tokens, budget 20: batches of 4 rows (2 per rank). The fifth row used to join the batch
    before it: 3 rows, 30 tokens, on one rank."""
    lengths = [torch.full((5,), 10)]
    for rank in range(2):
        sampler = MultiTaskBatchSampler([5], 1, seed=0, lengths=lengths, max_tokens=20, num_replicas=2, rank=rank)
        assert all(len(b) * 10 <= 20 for b in sampler.batches(0))
        assert sum(len(b) for b in sampler.batches(0)) in (2, 3)


@pytest.mark.slow
def test_three_token_budget_epochs_through_the_cli_see_every_row_once_each(tmp_path, monkeypatch):
    """The issue's command: --debug on the bundled data, 3 epochs, --max_tokens_per_batch 1024."""
    fetched: list[tuple[int, int]] = []
    original = MultiTaskDataset.__getitem__

    def record(self, i):
        fetched.append((id(self), i))
        return original(self, i)

    monkeypatch.setattr(MultiTaskDataset, "__getitem__", record)
    out = tmp_path / "budget"
    train.main(tiny_args(tmp_path, DATA_DIR, "budget", "--debug", "--do_train", "--num_train_epochs", "3",
                         "--max_tokens_per_batch", "1024", "--eval_strategy", "no", "--save_strategy", "no",
                         "--learning_rate", "1e-3", "--ema_decay", "0"))
    rows = Counter(i for _, i in fetched)  # one dataset: training only
    assert len({d for d, _ in fetched}) == 1
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["epoch"] == 3.0
    size = max(rows) + 1
    assert set(rows.values()) == {3} and len(rows) == size  # every training row, 3 times
    order = [i for _, i in fetched]
    for epoch in range(3):
        assert sorted(order[epoch * size:(epoch + 1) * size]) == list(range(size))  # once in each epoch


# ---- 4. FSDP and DeepSpeed -----------------------------------------------------------------------------------
@pytest.mark.parametrize("flags, message", [(["--fsdp", "full_shard"], "--fsdp is not supported"),
                                            (["--deepspeed", "ds.json"], "--deepspeed is not supported")])
def test_fsdp_and_deepspeed_are_refused_in_one_line(tmp_path, small_data_dir, flags, message):
    assert message in refused(tmp_path, small_data_dir, *flags)


def test_fp16_without_cuda_is_refused(tmp_path, small_data_dir):
    """accelerate runs --fp16 on the CPU with neither autocast nor a scaler: fp32 under an fp16 label."""
    assert "use --bf16 on the CPU" in refused(tmp_path, small_data_dir, "--fp16")


# ---- 6. evaluation-only runs ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bf16_model(tmp_path_factory, small_data_dir):
    tmp = tmp_path_factory.mktemp("bf16")
    metrics = train.main(tiny_args(tmp, small_data_dir, "model", "--do_train", "--do_eval", "--bf16", "true",
                                   "--max_steps", "8", "--eval_strategy", "no", "--save_strategy", "no",
                                   "--learning_rate", "1e-3"))
    return tmp, metrics


def test_evaluation_only_runs_in_bf16_as_evaluation_after_training(bf16_model, small_data_dir):
    """An evaluation-only run skipped the Trainer's evaluation set-up (accelerate's autocast): fp32 numbers that
    differed from the training run's own evaluation of the same weights."""
    tmp, trained = bf16_model
    again = train.main([*common(tmp, small_data_dir, "eval_only"), "--model_name_or_path", str(tmp / "model"),
                        "--do_eval", "--bf16", "true"])
    fp32 = train.main([*common(tmp, small_data_dir, "eval_fp32"), "--model_name_or_path", str(tmp / "model"),
                       "--do_eval"])
    assert again["eval_loss"] == pytest.approx(trained["eval_loss"], abs=1e-6)
    assert fp32["eval_loss"] != pytest.approx(trained["eval_loss"], abs=1e-6)  # bf16 is visible in the loss


def test_bf16_full_eval_evaluates_a_bf16_model(bf16_model, small_data_dir, monkeypatch):
    tmp, trained = bf16_model
    dtypes = set()
    original = MultiTaskTrainer.prediction_step

    def spy(self, model, *args, **kwargs):
        dtypes.add(next(model.parameters()).dtype)
        return original(self, model, *args, **kwargs)

    monkeypatch.setattr(MultiTaskTrainer, "prediction_step", spy)
    metrics = train.main([*common(tmp, small_data_dir, "full_eval"), "--model_name_or_path", str(tmp / "model"),
                          "--do_eval", "--bf16_full_eval", "true"])
    assert dtypes == {torch.bfloat16}
    assert metrics["eval_avg"] == pytest.approx(trained["eval_avg"], abs=0.05)
