"""Task-homogeneous batch sampler and the dynamic-padding collator."""
from __future__ import annotations

import torch

from mtl.data import MultiTaskBatchSampler, MultiTaskCollator, MultiTaskDataset, SingleTaskDataset

SIZES = [37, 100, 9]


def task_of(index: int) -> int:
    return 0 if index < 37 else 1 if index < 137 else 2


def test_every_batch_single_task_and_every_index_once_per_epoch():
    sampler = MultiTaskBatchSampler(SIZES, batch_size=8, seed=1)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler) == 5 + 13 + 2
        for b in batches:
            assert len({task_of(i) for i in b}) == 1 and 1 <= len(b) <= 8
        assert sorted(i for b in batches for i in b) == list(range(sum(SIZES)))


def test_order_differs_between_epochs_and_repeats_for_a_seed():
    a, b = MultiTaskBatchSampler(SIZES, 8, seed=7), MultiTaskBatchSampler(SIZES, 8, seed=7)
    epoch0, epoch1 = list(a), list(a)  # advances by itself without set_epoch
    assert epoch0 != epoch1
    assert list(b) == epoch0 and list(b) == epoch1
    assert list(MultiTaskBatchSampler(SIZES, 8, seed=8)) != epoch0
    # tasks are interleaved, not laid end to end
    assert [task_of(x[0]) for x in epoch0] != sorted(task_of(x[0]) for x in epoch0)


def test_evaluation_order_is_task_then_file_order():
    batches = list(MultiTaskBatchSampler(SIZES, 16, shuffle=False))
    assert [i for b in batches for i in b] == list(range(sum(SIZES)))
    assert all(len({task_of(i) for i in b}) == 1 for b in batches)


def test_drop_last_drops_only_partial_batches():
    sampler = MultiTaskBatchSampler(SIZES, 8, drop_last=True)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 4 + 12 + 1 and all(len(b) == 8 for b in batches)


def test_length_grouping_keeps_invariants_and_reduces_padding():
    g = torch.Generator().manual_seed(0)
    lengths = [torch.randint(5, 300, (n,), generator=g) for n in SIZES]
    all_lengths = torch.cat(lengths)
    grouped = MultiTaskBatchSampler(SIZES, 8, seed=3, lengths=lengths, mega_batch_factor=50)
    plain = MultiTaskBatchSampler(SIZES, 8, seed=3)

    def padded(batches):
        return sum(len(b) * int(all_lengths[b].max()) for b in batches)

    for epoch in range(2):
        batches = grouped.batches(epoch)
        assert sorted(i for b in batches for i in b) == list(range(sum(SIZES)))
        assert all(len({task_of(i) for i in b}) == 1 for b in batches)
        assert padded(batches) < 0.8 * padded(plain.batches(epoch))
    assert grouped.batches(0) == MultiTaskBatchSampler(SIZES, 8, seed=3, lengths=lengths).batches(0)


def example(ids, task_id=1, label=2):
    ids = torch.tensor(ids, dtype=torch.int32)
    return {"input_ids": ids, "token_type_ids": torch.zeros(len(ids), dtype=torch.int8),
            "labels": torch.tensor(label), "task_id": task_id}


def test_collate_pads_to_the_longest_with_zeros_and_masks_them():
    batch = MultiTaskCollator(pad_token_id=0)([example([101, 5, 6, 102]), example([101, 7, 102])])
    assert batch["input_ids"].tolist() == [[101, 5, 6, 102], [101, 7, 102, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert batch["token_type_ids"].tolist() == [[0] * 4, [0] * 4]
    assert batch["labels"].tolist() == [2, 2] and int(batch["task_id"]) == 1
    assert batch["input_ids"].dtype == torch.long


def test_collate_leaves_out_labels_of_unlabelled_rows_and_rejects_mixed_tasks():
    batch = MultiTaskCollator()([example([101, 102], label=-100)])
    assert "labels" not in batch
    try:
        MultiTaskCollator()([example([101, 102], task_id=0), example([101, 102], task_id=1)])
    except ValueError as err:
        assert "one task" in str(err)
    else:
        raise AssertionError("mixed-task batch accepted")


def test_datasets_slice_the_flat_cache_and_keep_sep_after_truncation(tokenizer):
    from mtl.encoding import encode

    texts = [["一月份跟二月份肯定有一个月份有.", "你好"], ["肯定有一个月份有", "世界"]]
    features = encode(tokenizer, texts, 12)
    features.update(labels=torch.tensor([0, 2]), ids=["10", "11"])
    ds = MultiTaskDataset({"a": SingleTaskDataset(features, 0), "b": SingleTaskDataset(features, 1)})
    assert len(ds) == 4 and ds.sizes == [2, 2]
    batch = MultiTaskCollator()([ds[2], ds[3]])
    assert int(batch["task_id"]) == 1
    first, second = batch["input_ids"].tolist()
    assert len(first) == 12 and first[-1] == 102 and first.count(102) == 2
    assert second == [101, 872, 1962, 102, 686, 4518, 102] + [0] * 5
    assert batch["attention_mask"][1].tolist() == [1] * 7 + [0] * 5
    assert batch["token_type_ids"][1].tolist() == [0, 0, 0, 0, 1, 1, 1] + [0] * 5


def sharded(sizes, batch_size, replicas, **kwargs):
    return [MultiTaskBatchSampler(sizes, batch_size, num_replicas=replicas, rank=r, **kwargs) for r in range(replicas)]


def test_ranks_share_each_global_batch_and_see_every_example_once():
    lengths = [torch.randint(1, 300, (n,), generator=torch.Generator().manual_seed(n)) for n in SIZES]
    for replicas in (2, 3):
        for grouped in (None, lengths):
            samplers = sharded(SIZES, 8, replicas, seed=5, lengths=grouped)
            for epoch in range(2):
                per_rank = [s.batches(epoch) for s in samplers]
                steps = len(samplers[0])
                assert all(len(batches) == steps == len(s) for batches, s in zip(per_rank, samplers))
                assert sorted(i for batches in per_rank for b in batches for i in b) == list(range(sum(SIZES)))
                for step in range(steps):
                    slices = [batches[step] for batches in per_rank]
                    assert len({task_of(i) for s in slices for i in s}) == 1  # one task per step on every rank
                    assert all(slices) and max(map(len, slices)) - min(map(len, slices)) <= 1
                    assert max(map(len, slices)) <= 8 + 1  # per-device batch size keeps its meaning
                    # the slices are a split of the one-process sampler's global batch of 8 * replicas rows
                    assert [i for s in slices for i in s] == samplers[0].global_batches(epoch)[step]


def test_two_ranks_take_about_half_the_steps_of_one():
    one, two = MultiTaskBatchSampler(SIZES, 8), sharded(SIZES, 8, 2)[0]
    assert len(one) == 20 and len(two) == 3 + 7 + 1  # ceil(37/16), ceil(100/16), 9 rows in one batch
    # a last global batch with fewer rows than ranks is merged into the one before it: 17 = 16 + 1 rows
    batches = [b for b in MultiTaskBatchSampler([17], 8, num_replicas=2).global_batches(0)]
    assert [len(b) for b in batches] == [17]


def test_a_task_smaller_than_the_number_of_ranks_is_refused():
    try:
        MultiTaskBatchSampler([50, 1], 8, num_replicas=2)
    except ValueError as err:
        assert "fewer than the 2 processes" in str(err)
    else:
        raise AssertionError("a task with 1 row was sharded over 2 ranks")


def test_evaluation_shards_whole_task_batches_round_robin():
    samplers = sharded(SIZES, 16, 2, shuffle=False)
    every = list(MultiTaskBatchSampler(SIZES, 16, shuffle=False))
    assert list(samplers[0]) == every[0::2] and list(samplers[1]) == every[1::2]
    assert [len(s) for s in samplers] == [len(every[0::2]), len(every[1::2])]
