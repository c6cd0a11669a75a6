"""Datasets over the token caches, the task-homogeneous batch sampler, and the dynamic-padding collator."""
from __future__ import annotations

import math
from typing import Any, Iterator, Optional, Sequence

import torch
from torch.utils.data import Dataset, Sampler

from .errors import UsageError
from .labels import IGNORE_LABEL
from .task_mixing import Mixing, proportional_mixing


class SingleTaskDataset(Dataset):
    """One task's split: examples are slices of the cache's flat token arrays (nothing is copied up front)."""

    def __init__(self, features: dict[str, Any], task_id: int):
        self.input_ids = features["input_ids"]
        self.token_type_ids = features["token_type_ids"]
        self.offsets = features["offsets"]
        # Python ints for __getitem__: indexing a tensor per row costs an aten::item call each (seen in the profile)
        self._bounds: list[int] = self.offsets.tolist()
        self.labels = features["labels"]
        self.ids: list[str] = features["ids"]
        self.texts: Optional[dict[str, list[str]]] = features.get("texts")
        self.task_id = task_id

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def lengths(self) -> torch.Tensor:
        return self.offsets[1:] - self.offsets[:-1]

    def __getitem__(self, i: int) -> dict[str, Any]:
        start, end = self._bounds[i], self._bounds[i + 1]
        return {
            "input_ids": self.input_ids[start:end],
            "token_type_ids": self.token_type_ids[start:end],
            "labels": self.labels[i],
            "task_id": self.task_id,
        }


class MultiTaskDataset(Dataset):
    """Tasks laid end to end: global index = task's start + index within the task."""

    def __init__(self, datasets: dict[str, SingleTaskDataset]):
        self.datasets = datasets
        self.task_names = list(datasets)
        self.starts: list[int] = []
        total = 0
        for ds in datasets.values():
            self.starts.append(total)
            total += len(ds)
        self._len = total
        # global index -> task position, computed once for __getitem__ (a list: no per-row tensor indexing)
        self._task_of: list[int] = torch.repeat_interleave(
            torch.arange(len(datasets)), torch.tensor([len(d) for d in datasets.values()], dtype=torch.long)).tolist()

    def __len__(self) -> int:
        return self._len

    @property
    def sizes(self) -> list[int]:
        return [len(d) for d in self.datasets.values()]

    def __getitem__(self, i: int) -> dict[str, Any]:
        t = self._task_of[i]
        return self.datasets[self.task_names[t]][i - self.starts[t]]


def round_up(n: int, multiple: int) -> int:
    """`n` rounded up to a multiple of `multiple`: a batch's padded width (the collator pads to it, the token-budget
    sampler counts it)."""
    return -(-n // multiple) * multiple


def _length_grouped(indices: list[int], lengths: torch.Tensor, mega: int) -> list[int]:
    """Within consecutive chunks of `mega` random indices, order by length (longest first)."""
    out: list[int] = []
    for s in range(0, len(indices), mega):
        chunk = indices[s:s + mega]
        order = torch.argsort(lengths[chunk], descending=True, stable=True).tolist()
        out.extend(chunk[i] for i in order)
    return out


class MultiTaskBatchSampler(Sampler[list[int]]):
    """Batches of global indices from a MultiTaskDataset, every batch from a single task.

    Training (`shuffle=True`): each epoch a seeded permutation per task, cut into *global* batches of
    `batch_size * num_replicas` rows, mixed by `mixing`; rank `r` takes the r-th contiguous slice of every global
    batch. So every rank trains the same task in a step (a head's gradient is averaged over ranks that all used
    it, and the task mix does not change with the number of processes), every example appears exactly once per
    epoch across all ranks, and every rank takes the same number of steps. A task's last global batch with fewer
    rows than ranks is merged into the one before it, so no rank ever gets an empty slice. With `lengths`,
    indices are sorted by length inside random mega-batches of `mega_batch_factor` global batches before cutting,
    so a batch holds similar lengths and dynamic padding wastes little; batch order is still random.
    Evaluation (`shuffle=False`): tasks in order, file order within a task, cut into batches of `batch_size`;
    rank `r` takes batches r, r + num_replicas, ... (whole task batches; ranks may get one batch more or less).
    With `num_replicas=1` both are the plain one-process sampler.
    """

    def __init__(self, sizes: Sequence[int], batch_size: int, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False, lengths: Optional[Sequence[torch.Tensor]] = None,
                 mega_batch_factor: int = 50,
                 mixing: Mixing = proportional_mixing,
                 num_replicas: int = 1, rank: int = 0,
                 max_tokens: Optional[int] = None, pad_multiple: int = 1):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in [0, {num_replicas})")
        self.sizes = list(sizes)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.lengths = lengths
        self.mega_batch_factor = mega_batch_factor
        self.mixing = mixing
        self.num_replicas = num_replicas
        self.rank = rank
        # Throughput mode: training batches hold as many rows as fit max_tokens padded tokens per process (padded
        # width rounded up to pad_multiple, as the collator pads), instead of batch_size rows.
        self.max_tokens = max_tokens
        self.pad_multiple = max(1, pad_multiple)
        if max_tokens is not None and (lengths is None or max_tokens < 1):
            raise ValueError("max_tokens needs the rows' lengths and must be at least 1")
        self.epoch = 0
        self._token_epoch_length: Optional[int] = None
        self.starts = [sum(self.sizes[:t]) for t in range(len(self.sizes))]
        if shuffle and num_replicas > 1:
            small = [n for n in self.sizes if 0 < n < num_replicas]
            if small:
                raise UsageError(f"a task has {small[0]} training rows, fewer than the {num_replicas} processes: "
                                 "every process needs a row of every batch; use fewer processes")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _cut(self, indices: list[int], size: int, replicas: int = 1) -> list[list[int]]:
        batches = [indices[s:s + size] for s in range(0, len(indices), size)]
        if batches and len(batches[-1]) < size:
            if self.drop_last:
                batches.pop()
            elif len(batches[-1]) < replicas and len(batches) > 1:
                batches[-2].extend(batches.pop())  # too few rows for one per rank: join the previous batch
        return batches

    def global_batches(self, epoch: int) -> list[list[int]]:
        """The training batches of one epoch before they are sliced across ranks (a pure function of seed and
        epoch, the same on every rank)."""
        if self.max_tokens is None:
            return self._draw(epoch)
        # Throughput mode: how many batches a draw packs into depends on the draw, but the Trainer fixes the steps
        # per epoch from len() once (and resumes by global_step // steps_per_epoch). So every epoch has exactly
        # token_epoch_length() batches: a draw with more is redrawn (seeded, so still a pure function of the
        # epoch), one with fewer has its largest batches split in two (each half within the budget).
        target = self.token_epoch_length()
        for attempt in range(self.MAX_REDRAWS):
            batches = self._draw(epoch, attempt)
            if len(batches) <= target:
                return self._split_to(batches, target)
        raise RuntimeError(f"epoch {epoch}: no draw of {self.MAX_REDRAWS} packed into {target} token-budget batches")

    MAX_REDRAWS = 1000
    PROBE_EPOCHS = 4  # the epoch length is the largest batch count of this many draws (fewer redraws later)

    def _draw(self, epoch: int, attempt: int = 0) -> list[list[int]]:
        seed = self.seed + epoch if attempt == 0 else ((self.seed + epoch) * 1_000_003 + attempt) % 2**63
        generator = torch.Generator().manual_seed(seed)
        return self.mixing(self.task_batches(generator), generator)

    def token_epoch_length(self) -> int:
        """Throughput mode's batches per epoch (the same for every epoch and every rank)."""
        if self._token_epoch_length is None:
            self._token_epoch_length = max(len(self._draw(e)) for e in range(self.PROBE_EPOCHS))
        return self._token_epoch_length

    def _split_to(self, batches: list[list[int]], target: int) -> list[list[int]]:
        """Split the batch with the most rows in two (halves of at least one row per rank) until there are `target`."""
        batches = list(batches)
        while len(batches) < target:
            i = max(range(len(batches)), key=lambda k: len(batches[k]))
            big = batches[i]
            if len(big) < 2 * self.num_replicas:
                raise RuntimeError(f"cannot make {target} token-budget batches: every batch is too small to split")
            half = len(big) // 2
            batches[i:i + 1] = [big[:half], big[half:]]
        return batches

    def _cut_by_tokens(self, local: list[int], lengths: torch.Tensor, start: int) -> list[list[int]]:
        """Consecutive rows (length-grouped, so a run of similar lengths) while each rank's slice, at most
        ceil(rows / num_replicas) rows x the padded width, stays within max_tokens; at least one row per rank."""
        budget, m, replicas = self.max_tokens, self.pad_multiple, self.num_replicas
        batches, current, width = [], [], 0
        for i, n in zip(local, lengths[local].tolist()):
            new_width = max(width, round_up(n, m))
            if current and len(current) >= replicas and -(-(len(current) + 1) // replicas) * new_width > budget:
                batches.append(current)
                current, new_width = [], round_up(n, m)
            current.append(start + i)
            width = new_width
        if current and batches and self.drop_last:
            current = []  # the task's last, partial batch
        if current and len(current) < replicas and batches:
            # Too few rows for one per rank. Joining them to the previous batch could push a rank's share over the
            # budget; moving rows from the previous batch cannot (each rank then takes one row no wider than a row
            # the previous batch already gave it). Only a previous batch too small to lend is joined whole.
            need = replicas - len(current)
            if len(batches[-1]) - need >= replicas:
                current = batches[-1][-need:] + current
                del batches[-1][-need:]
            else:
                batches[-1].extend(current)
                current = []
        if current:
            batches.append(current)
        return batches

    def task_batches(self, generator: torch.Generator) -> list[list[list[int]]]:
        """Each task's global batches for one epoch: a seeded permutation (length-grouped when asked), cut."""
        size = self.batch_size * self.num_replicas
        task_batches = []
        for t, (start, n) in enumerate(zip(self.starts, self.sizes)):
            local = torch.randperm(n, generator=generator).tolist()
            if self.lengths is not None:
                local = _length_grouped(local, self.lengths[t], size * self.mega_batch_factor)
            if self.max_tokens is not None:
                task_batches.append(self._cut_by_tokens(local, self.lengths[t], start))
            else:
                task_batches.append(self._cut([start + i for i in local], size, self.num_replicas))
        return task_batches

    def _slice(self, batch: list[int]) -> list[int]:
        """This rank's contiguous share of a global batch (shares differ in size by at most one row)."""
        base, extra = divmod(len(batch), self.num_replicas)
        start = self.rank * base + min(self.rank, extra)
        return batch[start:start + base + (self.rank < extra)]

    def batches(self, epoch: int) -> list[list[int]]:
        """This rank's batches of one epoch."""
        if not self.shuffle:
            every = [b for start, n in zip(self.starts, self.sizes)
                     for b in self._cut(list(range(start, start + n)), self.batch_size)]
            return every[self.rank::self.num_replicas]
        return [self._slice(b) for b in self.global_batches(epoch)]

    def __iter__(self) -> Iterator[list[int]]:
        epoch = self.epoch
        # Advance by itself too, so a plain DataLoader that never calls set_epoch still reshuffles each epoch.
        self.epoch += 1
        yield from self.batches(epoch)

    def __len__(self) -> int:
        if self.shuffle and self.max_tokens is not None:
            return self.token_epoch_length()
        if not self.shuffle:
            total = sum(math.ceil(n / self.batch_size) for n in self.sizes)
            return len(range(self.rank, total, self.num_replicas))
        size = self.batch_size * self.num_replicas
        count = 0
        for n in self.sizes:
            full, rest = divmod(n, size)
            # a partial batch counts unless dropped, or merged into the one before it (fewer rows than ranks)
            count += full + bool(rest and not self.drop_last and (rest >= self.num_replicas or full == 0))
        return count


class MultiTaskCollator:
    """Pad a single-task batch to its longest sequence (the caches are already truncated to max_seq_length), rounded
    up to a multiple of `pad_to_multiple_of`: fewer distinct shapes for torch.compile and tensor-core friendly widths."""

    def __init__(self, pad_token_id: int = 0, pad_to_multiple_of: Optional[int] = None):
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of or 1

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        task_ids = {e["task_id"] for e in examples}
        if len(task_ids) != 1:
            raise ValueError(f"a batch must come from one task, got task ids {sorted(task_ids)}")
        lengths = [len(e["input_ids"]) for e in examples]
        width = round_up(max(lengths), self.pad_to_multiple_of)
        input_ids = torch.full((len(examples), width), self.pad_token_id, dtype=torch.long)
        token_type_ids = torch.zeros((len(examples), width), dtype=torch.long)
        attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
        for row, (e, n) in enumerate(zip(examples, lengths)):
            input_ids[row, :n] = e["input_ids"]
            token_type_ids[row, :n] = e["token_type_ids"]
            attention_mask[row, :n] = 1
        batch = {
            "input_ids": input_ids,
            "token_type_ids": token_type_ids,
            "attention_mask": attention_mask,
            # A Python int, not a tensor: it stays on the host, so the model picks its head without a device sync.
            "task_id": task_ids.pop(),
        }
        labels = torch.stack([torch.as_tensor(e["labels"]) for e in examples])
        if bool((labels != IGNORE_LABEL).any()):  # unlabelled (test) batches carry no labels: no loss, no metrics
            batch["labels"] = labels
        return batch
