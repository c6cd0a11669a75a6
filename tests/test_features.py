"""Tokenization (golden vector), label ids, the stratified split, and fingerprinted cache reuse."""
from __future__ import annotations

import json
import shutil

import torch

from helpers import DATA_DIR, TOKENIZER_DIR, data_settings
from mtl.cache import cache_dir, load_or_build_task
from mtl.encoding import encode
from mtl.labels import label2id_for, stratified_split
from mtl.readers import read_task_file
from mtl.tasks import TASKS
from mtl.tokenizer import load_tokenizer

GOLDEN_IDS = [101, 671, 3299, 819, 6656, 753, 3299, 819, 5507, 2137, 3300, 671, 702, 3299, 819, 3300, 119, 102,
              5507, 2137, 3300, 671, 702, 3299, 819, 3300, 102]


def test_golden_vector_of_the_2020_baseline(tokenizer):
    enc = encode(tokenizer, [["一月份跟二月份肯定有一个月份有."], ["肯定有一个月份有"]], 300)
    assert enc["input_ids"].tolist() == GOLDEN_IDS
    assert enc["token_type_ids"].tolist() == [0] * 18 + [1] * 9
    assert enc["offsets"].tolist() == [0, 27]
    # the tokenizer object itself agrees (it is what train.py saves beside the model)
    assert tokenizer("一月份跟二月份肯定有一个月份有.", "肯定有一个月份有")["input_ids"] == GOLDEN_IDS


def test_truncation_keeps_the_final_sep(tokenizer):
    enc = encode(tokenizer, [["一月份跟二月份肯定有一个月份有."], ["肯定有一个月份有"]], 10)
    ids = enc["input_ids"].tolist()
    assert len(ids) == 10 and ids[0] == 101 and ids[-1] == 102 and ids.count(102) == 2
    single = encode(tokenizer, [["今天天气真好出去玩吧"]], 6)["input_ids"].tolist()
    assert single == [101, 791, 1921, 1921, 3698, 102]


def test_label2id_sorted_as_the_baseline():
    assert label2id_for(TASKS["ocnli"].labels) == {"0": 0, "1": 1, "2": 2}
    assert list(label2id_for(TASKS["ocemotion"].labels)) == sorted(TASKS["ocemotion"].labels)
    assert len(label2id_for(TASKS["tnews"].labels)) == 15


def test_stratified_split_has_every_class_in_validation():
    for name, rare in (("ocemotion", "fear"), ("tnews", "114")):
        task = TASKS[name]
        table, _ = read_task_file(task, task.train_path(DATA_DIR), True)
        labels = table.columns["label"]
        train, val = stratified_split(labels, 0.1, 2020)
        assert sorted(train + val) == list(range(len(labels)))
        assert {labels[i] for i in val} == set(task.labels)
        rare_total = labels.count(rare)
        rare_val = sum(labels[i] == rare for i in val)
        assert abs(rare_val - 0.1 * rare_total) <= 1
        assert (train, val) == stratified_split(labels, 0.1, 2020)  # seeded


def test_cache_is_reused_when_nothing_changed_and_rebuilt_when_inputs_change(tmp_path, small_data_dir):
    task = TASKS["ocnli"]
    tok = load_tokenizer(str(TOKENIZER_DIR))
    settings = data_settings(tmp_path, small_data_dir)
    first = load_or_build_task(task, tok, settings)
    train_pt = cache_dir(task, settings.data_save_dir) / "train.pt"
    built = train_pt.stat().st_mtime_ns

    again = load_or_build_task(task, tok, settings)
    assert train_pt.stat().st_mtime_ns == built  # reused, not rewritten
    assert torch.equal(again["train"]["input_ids"], first["train"]["input_ids"])

    shorter = data_settings(tmp_path, small_data_dir, max_seq_length=16)
    rebuilt = load_or_build_task(task, tok, shorter)
    assert train_pt.stat().st_mtime_ns != built
    assert int((rebuilt["train"]["offsets"][1:] - rebuilt["train"]["offsets"][:-1]).max()) == 16

    # another vocabulary (two tokens swapped) -> another fingerprint -> rebuilt with the new ids
    vocab_dir = tmp_path / "vocab2"
    shutil.copytree(TOKENIZER_DIR, vocab_dir)
    lines = (vocab_dir / "vocab.txt").read_text(encoding="utf-8").split("\n")
    i, j = lines.index("一"), lines.index("月")
    lines[i], lines[j] = lines[j], lines[i]
    (vocab_dir / "vocab.txt").write_text("\n".join(lines), encoding="utf-8")
    stamp = train_pt.stat().st_mtime_ns
    swapped = load_or_build_task(task, load_tokenizer(str(vocab_dir)), shorter)
    assert train_pt.stat().st_mtime_ns != stamp
    assert swapped["train"]["input_ids"][1:3].tolist() == [3299, 671]  # "一月" with the ids swapped

    stamp = train_pt.stat().st_mtime_ns
    load_or_build_task(task, load_tokenizer(str(vocab_dir)), data_settings(tmp_path, small_data_dir, max_seq_length=16,
                                                                       overwrite_cache=True))
    assert train_pt.stat().st_mtime_ns != stamp  # --overwrite_cache forces a rebuild


def test_cache_contents_ids_in_file_order_and_compact(tmp_path, small_data_dir):
    task = TASKS["ocnli"]
    tok = load_tokenizer(str(TOKENIZER_DIR))
    splits = load_or_build_task(task, tok, data_settings(tmp_path, small_data_dir, test_b=True))
    assert splits["predict"]["ids"] == [str(i) for i in range(1500, 3000)]
    assert len(splits["train"]["ids"]) + len(splits["val"]["ids"]) == 300
    assert len(splits["val"]["ids"]) == 30
    assert splits["train"]["input_ids"].dtype == torch.int32 and splits["train"]["input_ids"].dim() == 1
    assert (splits["predict"]["labels"] == -100).all()
    out = cache_dir(task, tmp_path / "cache")
    assert json.loads((out / "label2id.json").read_text()) == {"0": 0, "1": 1, "2": 2}
    fp = json.loads((out / "fingerprint.json").read_text())
    assert {"files", "tokenizer", "max_seq_length", "train_val_split_ratio", "split_seed", "cache_version"} <= set(fp)
    # the cleaned TSVs are written in both round layouts
    assert (tmp_path / "cleaned" / "cleaned_nlp_round2_data" / task.train_path(DATA_DIR).name).exists()
    assert (tmp_path / "cleaned" / "cleaned_nlp_round2_data" / task.test_path("b", DATA_DIR).name).exists()
    # a .pt cache cannot run code: it loads with weights_only=True
    torch.load(out / "predict.pt", weights_only=True)
