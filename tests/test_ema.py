"""EMA: the foreach update matches a hand computation; evaluation sees EMA weights; training weights come back."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from mtl.ema import WeightEMA


def test_ema_after_three_steps_matches_hand_computation():
    layer = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 2.0]]))
    ema = WeightEMA(layer, decay=0.9)
    w = torch.tensor([1.0, 2.0])
    expected = w.clone()
    for step, new in enumerate(([3.0, 0.0], [0.0, 4.0], [-1.0, 1.0]), start=1):
        with torch.no_grad():
            layer.weight.copy_(torch.tensor([new]))
        ema.update(step)
        expected = 0.9 * expected + 0.1 * torch.tensor(new)
    # by hand: [1,2] -> [1.2,1.8] -> [1.08,2.02] -> [0.872,1.918]
    assert torch.allclose(expected, torch.tensor([0.872, 1.918]))
    assert torch.allclose(ema.shadow[0][0], expected, atol=1e-6)


def test_start_step_copies_weights_until_then():
    layer = nn.Linear(2, 1, bias=False)
    ema = WeightEMA(layer, decay=0.5, start_step=2)
    for step in (1, 2):
        with torch.no_grad():
            layer.weight.add_(1.0)
        ema.update(step)
        assert torch.equal(ema.shadow[0], layer.weight)
    with torch.no_grad():
        layer.weight.add_(2.0)
    ema.update(3)
    assert torch.allclose(ema.shadow[0], layer.weight - 1.0)


def test_applied_swaps_in_ema_and_restores_training_weights_bit_exactly():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    ema = WeightEMA(model, decay=0.999)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.0 / 3.0).add_(0.1)
    ema.update(1)
    before = [p.detach().clone() for p in model.parameters()]
    with ema.applied():
        for p, s in zip(model.parameters(), ema.shadow):
            assert torch.equal(p, s)
    for p, b in zip(model.parameters(), before):
        assert torch.equal(p, b)


def test_only_trainable_parameters_are_averaged():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    model[0].requires_grad_(False)
    ema = WeightEMA(model)
    assert ema.names == ["1.weight", "1.bias"]


def _ema_across_two_ranks(rank: int, port: int, results) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        torch.manual_seed(rank)  # each rank initialises differently, as without a shared seed
        ema = WeightEMA(torch.nn.Linear(4, 3), decay=0.9)
        try:
            ema.check_same_on_all_ranks()
            results[rank] = "passed"
        except RuntimeError as err:
            results[rank] = str(err)
        ema.broadcast_from_main()  # what EMACallback does at the start of training
        ema.check_same_on_all_ranks()
        results[f"{rank}-after"] = [t.tolist() for t in ema.shadow]
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ema_is_made_identical_across_ranks_and_a_difference_is_an_error():
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = mp.Manager().dict()
    mp.spawn(_ema_across_two_ranks, args=(port, results), nprocs=2)
    assert "rank(s) [1] differ from rank 0's" in results[0] and "differ" in results[1]
    assert results["0-after"] == results["1-after"]
