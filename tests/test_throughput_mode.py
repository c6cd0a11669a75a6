"""Throughput mode: batches by token budget, widths padded to a multiple, and torch.compile with the multi-task model
(few graphs, the same losses as eager)."""
from __future__ import annotations

import json

import pytest
import torch

import train
from helpers import TINY_CONFIG, common
from mtl.data import MultiTaskBatchSampler, MultiTaskCollator

SIZES = [50, 120, 31]


def lengths_of(sizes, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(3, 90, (n,), generator=generator) for n in sizes]


def padded(n: int, m: int) -> int:
    return -(-n // m) * m


@pytest.mark.parametrize("replicas", [1, 2])
def test_token_budget_batches_cover_every_row_once_within_the_budget(replicas):
    lengths, budget, m = lengths_of(SIZES), 600, 8
    flat = torch.cat(lengths)
    samplers = [MultiTaskBatchSampler(SIZES, 4, seed=3, lengths=lengths, max_tokens=budget, pad_multiple=m,
                                      num_replicas=replicas, rank=r) for r in range(replicas)]
    starts = [0, 50, 170]
    task_of = lambda i: max(t for t, s in enumerate(starts) if i >= s)  # noqa: E731
    per_rank = [list(s) for s in samplers]
    assert all(len(b) == len(samplers[0]) for b in per_rank)  # len() is this epoch's batch count, on every rank
    seen = []
    for step in zip(*per_rank):
        rows = [i for b in step for i in b]
        assert len({task_of(i) for i in rows}) == 1  # every rank trains the same task in a step
        for batch in step:
            width = padded(int(flat[batch].max()), m)
            assert len(batch) * width <= budget or len(batch) == 1, (len(batch), width)
        seen += rows
    assert sorted(seen) == list(range(sum(SIZES)))
    sizes = [len(b) for b in per_rank[0]]
    assert max(sizes) > 3 * min(sizes)  # short rows make big batches: the point of a token budget


def test_collator_pads_widths_to_a_multiple():
    collate = MultiTaskCollator(0, pad_to_multiple_of=16)
    rows = [{"input_ids": torch.arange(1, n + 1), "token_type_ids": torch.zeros(n, dtype=torch.long),
             "labels": torch.tensor(0), "task_id": 1} for n in (5, 17)]
    batch = collate(rows)
    assert batch["input_ids"].shape == (2, 32) and int(batch["attention_mask"].sum()) == 22


def run(tmp, data_dir, name, *extra):
    return train.main([*common(tmp, data_dir, name), "--config_name", str(TINY_CONFIG), "--do_train", "--max_steps", "12",
                       "--learning_rate", "1e-3", "--logging_steps", "1", "--ema_decay", "0", "--eval_strategy", "no",
                       "--save_strategy", "no", "--load_best_model_at_end", "false", *extra])


def losses(tmp, name):
    state = json.loads((tmp / name / "trainer_state.json").read_text())
    return [h["loss"] for h in state["log_history"] if "loss" in h]


def test_a_token_budget_run_trains_whole_epochs(tmp_path, small_data_dir):
    train.main(["--config_name", str(TINY_CONFIG), "--do_train", "--num_train_epochs", "1", "--eval_strategy", "no",
                "--save_strategy", "no", "--load_best_model_at_end", "false", "--max_tokens_per_batch", "2048",
                "--pad_to_multiple_of", "16", *common(tmp_path, small_data_dir, "budget")])
    state = json.loads((tmp_path / "budget" / "trainer_state.json").read_text())
    assert state["epoch"] == 1.0
    assert state["global_step"] < 3 * -(-270 // 16)  # fewer, fuller batches than 16 rows each (the tasks' texts are short)


@pytest.mark.slow
def test_compiled_training_gives_eager_losses_with_few_graphs(tmp_path, small_data_dir):
    """torch.compile (aot_eager: dynamo's graph capture without the slow C++ codegen) on the multi-task model: the task
    id picks a head, widths vary per batch; with widths padded to a multiple the graphs stay few."""
    import torch._dynamo

    run(tmp_path, small_data_dir, "eager", "--pad_to_multiple_of", "32", "--seed", "7")
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    run(tmp_path, small_data_dir, "compiled", "--pad_to_multiple_of", "32", "--seed", "7", "--torch_compile", "true",
        "--torch_compile_backend", "aot_eager")
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    assert 1 <= graphs <= 2 * 3  # at most one static and one dynamic graph per task head (64 tokens: widths 32, 64)
    torch.testing.assert_close(losses(tmp_path, "compiled"), losses(tmp_path, "eager"), rtol=1e-4, atol=1e-4)
