"""PCGrad: the surgery on vectors with a known answer, the one-batch-per-task sampler, and train.py --pcgrad
running, training and resuming to the uninterrupted result."""
from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file

import train
from helpers import TINY_CONFIG, common
from mtl.data import MultiTaskCollator
from mtl.errors import UsageError
from mtl.pcgrad import TaskGroupBatchSampler, TaskGroupCollator, pcgrad_backward, project_conflicting

SIZES = [37, 100, 9]


def task_of(index: int) -> int:
    return 0 if index < 37 else 1 if index < 137 else 2


def test_conflicting_gradients_are_projected_and_the_others_left_alone():
    g = torch.Generator().manual_seed(0)
    # conflicting (inner product -1): each loses its component along the other
    a, b = project_conflicting([torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])], g)
    assert torch.allclose(a, torch.tensor([0.5, 0.5])) and torch.allclose(b, torch.tensor([0.0, 1.0]))
    assert torch.dot(a, torch.tensor([-1.0, 1.0])) == pytest.approx(0.0)  # now orthogonal to the other
    # not conflicting (inner product >= 0): unchanged
    x, y = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 0.5])
    assert all(torch.equal(p, q) for p, q in zip(project_conflicting([x, y], g), [x, y]))
    # three tasks: only the conflicting pairs change
    grads = [torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]), torch.tensor([-1.0, 0.0, 1.0])]
    out = project_conflicting(grads, g)
    assert torch.allclose(out[1], grads[1])  # orthogonal to both others
    assert torch.allclose(out[0], torch.tensor([0.5, 0.0, 0.5])) and torch.allclose(out[2], torch.tensor([0.0, 0.0, 1.0]))


def test_each_step_holds_one_batch_of_every_task_and_an_epoch_reads_about_one_epoch_of_rows():
    sampler = TaskGroupBatchSampler(SIZES, batch_size=8, seed=1)
    steps = list(sampler)
    assert len(steps) == len(sampler) == math.ceil((5 + 13 + 2) / 3)
    for step in steps:
        tasks = [task_of(i) for i in step]
        assert sorted(set(tasks)) == [0, 1, 2] and tasks == sorted(tasks)
    collated = TaskGroupCollator(MultiTaskCollator())(
        [{"input_ids": torch.tensor([101, 7, 102]), "token_type_ids": torch.zeros(3), "labels": torch.tensor(0),
          "task_id": task_of(i)} for i in steps[0]])
    assert [b["task_id"] for b in collated["task_batches"]] == [0, 1, 2]
    # two ranks: the same tasks in every step, disjoint rows
    ranks = [list(TaskGroupBatchSampler(SIZES, 4, seed=1, num_replicas=2, rank=r)) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1])
    for s0, s1 in zip(*ranks):
        assert {task_of(i) for i in s0} == {task_of(i) for i in s1} and not set(s0) & set(s1)


def test_pcgrad_refuses_gradient_accumulation(tmp_path, small_data_dir):
    with pytest.raises(UsageError, match="--pcgrad takes one batch of every task"):
        train.main(["--config_name", str(TINY_CONFIG), "--do_train", "--max_steps", "2", "--pcgrad", "true",
                    "--gradient_accumulation_steps", "2", *common(tmp_path, small_data_dir, "acc")])


def test_train_py_pcgrad_trains_and_resumes_to_the_uninterrupted_result(tmp_path, small_data_dir):
    args = ["--config_name", str(TINY_CONFIG), "--do_train", "--max_steps", "12", "--pcgrad", "true",
            "--learning_rate", "1e-3", "--lr_scheduler_type", "constant", "--eval_strategy", "no",
            "--load_best_model_at_end", "false", "--ema_decay", "0", "--save_steps", "6"]
    train.main([*args, *common(tmp_path, small_data_dir, "whole", save_steps=6)])
    whole = load_file(tmp_path / "whole" / "model.safetensors")
    start = load_file(tmp_path / "whole" / "checkpoint-6" / "model.safetensors")
    assert any(not torch.equal(whole[k], start[k]) for k in whole)  # it trains
    for task in ("ocnli", "ocemotion", "tnews"):  # every head learns in every step
        assert any(not torch.equal(whole[k], start[k]) for k in whole if k.startswith(f"heads.{task}."))
    # stop after 6 steps (a copy of the checkpoint), then the same command resumes from it
    import shutil

    shutil.copytree(tmp_path / "whole" / "checkpoint-6", tmp_path / "resumed" / "checkpoint-6")
    train.main([*args, *common(tmp_path, small_data_dir, "resumed", save_steps=6)])
    resumed = load_file(tmp_path / "resumed" / "model.safetensors")
    for k in whole:
        assert torch.allclose(whole[k], resumed[k], atol=1e-6), k


def test_a_pcgrad_step_writes_the_projected_sum_into_the_encoder_and_each_task_into_its_head():
    from transformers import BertConfig

    from helpers import numbered_heads
    from mtl.model import BertMultiTaskModel, multitask_config

    torch.manual_seed(0)
    config = BertConfig.from_pretrained(str(TINY_CONFIG), hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    names = ["ocnli", "ocemotion", "tnews"]
    model = BertMultiTaskModel(multitask_config(config, numbered_heads(ocnli=3, ocemotion=7, tnews=15)))
    collate = MultiTaskCollator()
    batches = [collate([{"input_ids": torch.tensor([101, 100 + 7 * t + r, 200 + r, 102]),
                         "token_type_ids": torch.zeros(4), "labels": torch.tensor(r % 3), "task_id": t}
                        for r in range(4)]) for t in range(3)]
    shared = [p for n, p in model.named_parameters() if not n.startswith("heads.")]
    expected_heads = {}
    per_task = []
    for name, batch in zip(names, batches):
        model.zero_grad()
        model(**batch).loss.backward()
        per_task.append(torch.cat([p.grad.reshape(-1) for p in shared]))
        expected_heads[name] = [p.grad.clone() for p in model.heads[name].parameters()]
    expected = torch.stack(project_conflicting(per_task, torch.Generator().manual_seed(5))).sum(0)
    assert not torch.allclose(expected, torch.stack(per_task).sum(0))  # the surgery changes something here
    model.zero_grad()
    losses = [model(**batch).loss.item() for batch in batches]
    tasks = [(lambda batch=batch: model(**batch).loss, list(model.heads[name].parameters()))
             for name, batch in zip(names, batches)]
    mean_loss = pcgrad_backward(shared, tasks, torch.Generator().manual_seed(5))
    assert mean_loss.item() == pytest.approx(sum(losses) / 3, rel=1e-6)
    assert torch.allclose(torch.cat([p.grad.reshape(-1) for p in shared]), expected, atol=1e-6)
    for name, grads in expected_heads.items():
        for p, g in zip(model.heads[name].parameters(), grads):
            assert torch.allclose(p.grad, g, atol=1e-6)
