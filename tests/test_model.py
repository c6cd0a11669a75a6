"""Attention pooling ignores padding; multi-task checkpoints round-trip; the three ways to load a model."""
from __future__ import annotations

import json
from dataclasses import asdict

import pytest
import torch
from transformers import BertConfig, BertForMaskedLM

from helpers import TINY_CONFIG, numbered_heads
from mtl.errors import UsageError
from mtl.heads import TaskHead
from mtl.model import Attention, BertMultiTaskModel, load_model, multitask_config
from mtl.tasks import TASKS as TASKS_BY_NAME
from mtl.trained_model import check_trained_model

TASKS = ["ocnli", "ocemotion", "tnews"]
CLASSES = [3, 7, 15]
HEADS = numbered_heads(**dict(zip(TASKS, CLASSES)))


def tiny_model(seed: int = 0) -> BertMultiTaskModel:
    torch.manual_seed(seed)
    config = multitask_config(BertConfig.from_pretrained(str(TINY_CONFIG)), HEADS)
    return BertMultiTaskModel(config).eval()


def test_attention_gives_padded_positions_no_weight():
    torch.manual_seed(0)
    attention = Attention(8)
    hidden = torch.randn(2, 5, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    pooled = attention(hidden, mask)
    changed = hidden.clone()
    changed[0, 3:] = 1e4 * torch.randn(2, 8)
    assert torch.equal(attention(changed, mask), pooled)
    assert torch.allclose(attention(hidden[:1, :3], mask[:1, :3]), pooled[:1], atol=1e-6)


def test_padded_batch_gives_each_row_its_own_logits():
    model = tiny_model()
    rows = [[101, 791, 1921, 102], [101, 1921, 3698, 4696, 1962, 102]]
    batch = torch.tensor([rows[0] + [0, 0], rows[1]])
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1] * 6])
    with torch.no_grad():
        together = model(input_ids=batch, attention_mask=mask, task_id=2).logits
        alone = [model(input_ids=torch.tensor([r]), task_id=2).logits[0] for r in rows]
    assert together.shape == (2, 15)
    for row, logits in zip(together, alone):
        assert torch.allclose(row, logits, atol=1e-5)


def test_each_task_has_its_head_and_loss():
    model = tiny_model()
    ids = torch.tensor([[101, 791, 102]])
    for task_id, classes in enumerate(CLASSES):
        label = torch.tensor([classes - 1])
        out = model(input_ids=ids, task_id=torch.tensor(task_id), labels=label)
        assert out.logits.shape == (1, classes)
        # the loss is the cross-entropy of this task's head against the given label
        assert torch.allclose(out.loss, torch.nn.functional.cross_entropy(out.logits, label))


def test_save_and_load_round_trip_gives_identical_logits(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    loaded = load_model(str(tmp_path), None, numbered_heads(tnews=15))  # a subset of its tasks is fine
    assert loaded.config.tasks == HEADS
    ids = torch.tensor([[101, 791, 1921, 3698, 102]])
    saved, restored = model.state_dict(), loaded.state_dict()
    assert saved.keys() == restored.keys()
    assert all(torch.equal(saved[k], restored[k]) for k in saved)  # every weight bit-identical
    loaded.eval()
    with torch.no_grad():
        for task_id in range(3):
            # same weights, same inputs; CPU kernels may round the last bit differently between two allocations
            torch.testing.assert_close(loaded(input_ids=ids, task_id=task_id).logits,
                                       model(input_ids=ids, task_id=task_id).logits, rtol=0, atol=1e-6)


def test_encoder_checkpoint_loads_encoder_and_new_heads(tmp_path):
    torch.manual_seed(1)
    mlm = BertForMaskedLM(BertConfig.from_pretrained(str(TINY_CONFIG)))
    mlm.save_pretrained(tmp_path)
    model = load_model(str(tmp_path), None, HEADS)
    encoder = dict(mlm.bert.named_parameters())
    for name, p in model.bert.named_parameters():
        assert torch.equal(p, encoder[name]), name
    assert set(model.heads) == set(TASKS)


def test_config_overrides_change_the_loaded_model_and_name_unknown_keys(tmp_path):
    torch.manual_seed(1)
    BertForMaskedLM(BertConfig.from_pretrained(str(TINY_CONFIG))).save_pretrained(tmp_path)
    model = load_model(str(tmp_path), None, HEADS,
                       config_overrides="hidden_dropout_prob=0,attention_probs_dropout_prob=0")
    assert model.bert.embeddings.dropout.p == 0.0 and model.config.attention_probs_dropout_prob == 0.0
    model.train()
    ids = torch.tensor([[101, 1266, 776, 102]])
    first = model.bert(input_ids=ids).last_hidden_state
    assert torch.equal(first, model.bert(input_ids=ids).last_hidden_state)  # no dropout left in training mode
    with pytest.raises(UsageError, match="hiden_size"):
        load_model(str(tmp_path), None, HEADS, config_overrides="hiden_size=8")


def test_config_name_gives_random_init_and_missing_source_is_an_error():
    model = load_model(None, str(TINY_CONFIG), HEADS)
    assert model.config.hidden_size == 32 and model.config.num_hidden_layers == 2
    try:
        load_model(None, None, HEADS)
    except ValueError as err:
        assert "--model_name_or_path" in str(err)
    else:
        raise AssertionError("no model source accepted")


def test_a_trained_checkpoint_gains_a_new_head_and_keeps_the_others_unless_asked(tmp_path, caplog):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    saved = model.state_dict()
    with caplog.at_level("INFO", logger="mtl.model"):
        waimai = TaskHead("waimai", ["0", "1"], {"0": "negative", "1": "positive"}, ["review"], "ocemotion")
        grown = load_model(str(tmp_path), None, [*numbered_heads(tnews=15), waimai])
    assert "no head for task(s) ['waimai']" in caplog.text
    assert grown.config.tasks == [*HEADS, waimai]  # a new head is a new record, appended whole
    restored = grown.state_dict()
    assert all(torch.equal(saved[k], restored[k]) for k in saved)  # encoder and the three heads, bit for bit
    assert restored["heads.waimai.classifier.weight"].shape == (2, 32)

    dropped = load_model(str(tmp_path), None, [*numbered_heads(tnews=15), waimai], drop_other_heads=True)
    assert dropped.config.task_names == ["tnews", "waimai"] and set(dropped.heads) == {"tnews", "waimai"}
    assert torch.equal(dropped.heads["tnews"].classifier.weight, saved["heads.tnews.classifier.weight"])

    try:
        load_model(str(tmp_path), None, numbered_heads(ocnli=2))  # same name, other classes
    except ValueError as err:
        assert "its 'ocnli' head has the classes" in str(err)
    else:
        raise AssertionError("a head with other classes was reused")


def test_the_config_keeps_one_record_per_task_and_a_new_model_has_none(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["tasks"] == [asdict(h) for h in HEADS]  # a list of dicts, one per head, as readable as the specs
    assert not {key for key in saved if key.startswith("task_")}
    empty = load_model(None, str(TINY_CONFIG), [])
    assert empty.config.tasks == [] and len(empty.heads) == 0


def test_a_task_spec_gives_its_head_labels_in_class_id_order():
    head = TASKS_BY_NAME["ocnli"].head({"0": 1, "1": 2, "2": 0})
    assert head.labels == ["2", "0", "1"] and head.num_labels == 3
    assert [head.label_name(label) for label in head.labels] == ["contradiction", "entailment", "neutral"]
    assert head.text_columns == ["premise", "hypothesis"] and head.cleaner is None


def test_a_model_saved_with_parallel_task_lists_is_refused_in_one_line(tmp_path):
    """The format of this project's earlier versions (task_names, task_num_labels, ... side by side)."""
    tiny_model().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config.pop("tasks")
    config.update(task_names=TASKS, task_num_labels=CLASSES)
    (tmp_path / "config.json").write_text(json.dumps(config))
    for load in (lambda: load_model(str(tmp_path), None, []), lambda: check_trained_model(str(tmp_path))):
        with pytest.raises(UsageError, match=f"{tmp_path}: its config.json keeps the tasks in parallel lists"):
            load()
