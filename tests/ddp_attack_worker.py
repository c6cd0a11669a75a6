"""The processes of test_toolkit's DDP test of the embedding attack: a small model (word embeddings, a
nonlinearity, a classifier) under DDP with gloo, each process half of one batch. Imports only torch and the attack,
so that spawning is quick."""
from __future__ import annotations

import torch
from torch import nn

from mtl.adversarial import adversarial_step

METHODS = ("fgm", "pgd")


class EmbeddingClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embeddings = nn.Embedding(50, 8)
        self.out = nn.Linear(8, 3)

    def forward(self, ids, labels):
        return nn.functional.cross_entropy(self.out(torch.tanh(self.embeddings(ids)).mean(1)), labels)


def batch():
    g = torch.Generator().manual_seed(4)
    return torch.randint(0, 50, (8, 5), generator=g), torch.randint(0, 3, (8,), generator=g)


def attack(method: str, rank: int = 0, world: int = 1) -> dict[str, torch.Tensor]:
    """The gradients after one attacked step on this process's shard (the whole batch when world is 1)."""
    import torch.distributed as dist

    module = EmbeddingClassifier()
    model = nn.parallel.DistributedDataParallel(module) if world > 1 else module
    ids, labels = batch()
    rows = slice(rank * len(ids) // world, (rank + 1) * len(ids) // world)

    def step():
        loss = model(ids[rows], labels[rows])
        loss.backward()
        return loss.detach()

    def mean(t):
        dist.all_reduce(t)
        return t / world

    adversarial_step(module.embeddings.weight, step, step, lambda: module(ids[rows], labels[rows]), method=method,
                     epsilon=0.7, steps=3, mean=mean if world > 1 else None)
    return {n: p.grad for n, p in module.named_parameters()}


def worker(rank: int, world: int, port: int, queue) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    grads = {m: {n: g.numpy().copy() for n, g in attack(m, rank, world).items()} for m in METHODS}
    queue.put((rank, grads))  # numpy arrays: sent by value, not through shared memory the exiting process owns
    dist.destroy_process_group()
