"""Task sampling strategies in the sampler's mixing seam: shares by the formula, epochs of the same length,
deterministic for a seed and identical on every rank; and task loss weights applied once, in the loss."""
from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
from transformers import BertConfig

from helpers import TINY_CONFIG, numbered_heads
from mtl.args import MultiTaskTrainingArguments
from mtl.data import MultiTaskBatchSampler, MultiTaskCollator
from mtl.errors import UsageError
from mtl.model import BertMultiTaskModel, multitask_config
from mtl.task_mixing import batch_counts, mixing_for, proportional_mixing, task_shares
from mtl.trainer import MultiTaskTrainer, parse_task_loss_weights

SIZES = [4000, 400, 40]
STARTS = [0, 4000, 4400]


def task_of(index: int) -> int:
    return 0 if index < 4000 else 1 if index < 4400 else 2


def sampler(strategy: str, temperature: float = 2.0, cap=None, **kwargs) -> MultiTaskBatchSampler:
    return MultiTaskBatchSampler(SIZES, batch_size=8, seed=3, mixing=mixing_for(strategy, SIZES, temperature, cap),
                                 **kwargs)


def test_shares_follow_the_formula():
    assert task_shares(SIZES, 1.0) == pytest.approx([n / 4440 for n in SIZES])
    root = [math.sqrt(n) for n in SIZES]
    assert task_shares(SIZES, 2.0) == pytest.approx([r / sum(root) for r in root])
    assert task_shares(SIZES, math.inf) == pytest.approx([1 / 3] * 3)
    assert task_shares(SIZES, 1.0, cap=400) == pytest.approx([400 / 840, 400 / 840, 40 / 840])
    assert batch_counts([0.5, 0.3, 0.2], 11) == [6, 3, 2] and sum(batch_counts(task_shares(SIZES, 3.0), 557)) == 557


@pytest.mark.parametrize("strategy, temperature", [("temperature", 2.0), ("temperature", 5.0), ("uniform", 1.0)])
def test_measured_task_frequencies_match_the_formula_and_epochs_keep_their_length(strategy, temperature):
    s = sampler(strategy, temperature)
    proportional_length = len(sampler("proportional"))
    shares = task_shares(SIZES, math.inf if strategy == "uniform" else temperature)
    seen = Counter()
    epochs = 20
    for epoch in range(epochs):
        s.set_epoch(epoch)
        batches = list(s)
        assert len(batches) == len(s) == proportional_length  # an epoch is as long as a proportional one
        for b in batches:
            tasks = {task_of(i) for i in b}
            assert len(tasks) == 1 and 1 <= len(b) <= 8
            seen[tasks.pop()] += 1
    total = epochs * proportional_length
    for t, share in enumerate(shares):
        assert abs(seen[t] / total - share) <= 1 / proportional_length, (t, seen[t] / total, share)
    # small tasks up-sampled, the large one down-sampled
    assert seen[2] / total > 5 / 556 and seen[0] / total < 500 / 556


def test_a_down_sampled_task_sees_other_rows_in_other_epochs():
    s = sampler("uniform")
    first, later = set(), set()
    for epoch in range(6):
        s.set_epoch(epoch)
        rows = {i for b in s for i in b if task_of(i) == 0}
        (first if epoch == 0 else later).update(rows)
    assert len(first) < 4000 and len(later - first) > 0


def test_deterministic_for_a_seed_and_the_same_global_batches_on_every_rank():
    ranks = [sampler("temperature", num_replicas=2, rank=r) for r in range(2)]
    assert ranks[0].global_batches(4) == ranks[1].global_batches(4) == sampler("temperature", num_replicas=2).global_batches(4)
    assert sampler("temperature").global_batches(0) != sampler("temperature").global_batches(1)
    a, b = (list(r.batches(4)) for r in ranks)
    assert len(a) == len(b) and all(task_of(x[0]) == task_of(y[0]) for x, y in zip(a, b))  # same task each step


def test_temperature_one_is_exactly_proportional_and_bad_settings_are_refused():
    assert mixing_for("temperature", SIZES, 1.0) is proportional_mixing
    with pytest.raises(UsageError, match="--task_sampling 'mixed'"):
        mixing_for("mixed", SIZES)
    with pytest.raises(UsageError, match="--task_sampling round_robin"):
        MultiTaskTrainingArguments(output_dir="x", task_sampling="round_robin")
    with pytest.raises(UsageError, match="temperature must be > 0"):
        MultiTaskTrainingArguments(output_dir="x", task_sampling="temperature", task_sampling_temperature=0)


def test_task_loss_weights_parse_with_a_default_of_one_and_clear_errors():
    names = ["ocnli", "ocemotion", "tnews"]
    assert parse_task_loss_weights("ocnli=1.0,ocemotion=1.5,tnews=1.5", names) == [1.0, 1.5, 1.5]
    assert parse_task_loss_weights("TNEWS=0", names) == [1.0, 1.0, 0.0]
    assert parse_task_loss_weights(None, names) == [1.0, 1.0, 1.0]
    for bad in ("sentiment=2", "tnews=-1", "tnews", "tnews=x"):
        with pytest.raises(UsageError, match="must be TASK=WEIGHT"):
            parse_task_loss_weights(bad, names)


def test_the_weight_multiplies_the_training_loss_of_its_task_only(tmp_path):
    torch.manual_seed(0)
    config = BertConfig.from_pretrained(str(TINY_CONFIG), hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = BertMultiTaskModel(multitask_config(config, numbered_heads(ocnli=3, ocemotion=7, tnews=15)))
    args = MultiTaskTrainingArguments(output_dir=str(tmp_path), report_to="none", eval_strategy="no",
                                      load_best_model_at_end=False, task_loss_weights="ocemotion=1.5,tnews=0.25")
    trainer = MultiTaskTrainer(model=model, args=args, data_collator=MultiTaskCollator())
    for task_id, weight in enumerate([1.0, 1.5, 0.25]):
        batch = MultiTaskCollator()([{"input_ids": torch.tensor([101, 2769, 102]), "token_type_ids": torch.zeros(3),
                                      "labels": torch.tensor(1), "task_id": task_id}])
        model.train()
        plain = model(**batch).loss
        assert torch.allclose(trainer.compute_loss(model, batch), weight * plain)
        model.eval()  # evaluation losses stay unweighted
        assert torch.allclose(trainer.compute_loss(model, batch), plain)
    # the logged per-task losses are the unweighted ones, one batch each
    logged = {}
    trainer.callback_handler.on_log = lambda args, state, control, logs: logged.update(logs)
    trainer.log({"loss": 1.0})
    assert set(logged) >= {"loss_ocnli", "loss_ocemotion", "loss_tnews"}


def test_train_py_with_a_zero_weight_leaves_that_head_untouched_and_logs_each_task(tmp_path, small_data_dir):
    """Through the CLI: `--task_loss_weights tnews=0` trains the other heads and leaves TNEWS's exactly as it was
    (the weight reaches the gradient); the log history holds each task's loss; temperature sampling runs."""
    import json

    import train
    from helpers import TOKENIZER_DIR, common, competition_heads
    from mtl.model import load_model
    from mtl.tokenizer import load_tokenizer

    names = ["ocnli", "ocemotion", "tnews"]
    start = load_model(None, str(TINY_CONFIG), competition_heads())
    start.save_pretrained(tmp_path / "start")
    load_tokenizer(str(TOKENIZER_DIR)).save_pretrained(tmp_path / "start")
    train.main(["--model_name_or_path", str(tmp_path / "start"), "--do_train", "--max_steps", "24",
                "--learning_rate", "1e-3", "--weight_decay", "0", "--ema_decay", "0", "--eval_strategy", "no",
                "--load_best_model_at_end", "false", "--task_loss_weights", "tnews=0",
                "--task_sampling", "temperature", "--task_sampling_temperature", "3",
                *common(tmp_path, small_data_dir, "weighted")])
    after = BertMultiTaskModel.from_pretrained(tmp_path / "weighted")
    for task in names:
        same = all(torch.equal(a, b) for a, b in zip(start.heads[task].parameters(), after.heads[task].parameters()))
        assert same == (task == "tnews"), task
    history = json.loads((tmp_path / "weighted" / "trainer_state.json").read_text())["log_history"]
    assert any({"loss_ocnli", "loss_ocemotion", "loss_tnews"} <= set(entry) for entry in history)
