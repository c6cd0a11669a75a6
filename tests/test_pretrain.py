"""Chinese whole-word masking, the collator's mask rate on real text, pretrain.py -> train.py, profile choice."""
from __future__ import annotations

import csv
import logging
import shutil
from pathlib import Path

import jieba
import pytest
import torch
from safetensors.torch import load_file
from transformers import BertForMaskedLM

import choose_profile
import pretrain
import train
from helpers import DATA_DIR, REPO_ROOT, TINY_CONFIG, competition_heads
from mtl.args import tasks_of
from mtl.cache import build_task_cache
from mtl.errors import UsageError, run_cli
from mtl.pretraining import ChineseWholeWordMaskCollator, MLMDataset, TokenKey, encode_with_words, task_texts
from mtl.tasks import TASKS

SENTENCE = "我们喜欢北京天安门"  # jieba: 我们 / 喜欢 / 北京 / 天安门


def test_jieba_words_of_the_fixture_sentence():
    assert jieba.lcut(SENTENCE) == ["我们", "喜欢", "北京", "天安门"]


def test_every_character_of_a_chosen_word_is_masked_and_never_part_of_one(tokenizer):
    features = encode_with_words(tokenizer, [SENTENCE], 32)
    assert features["word_ids"].tolist() == [-1, 0, 0, 1, 1, 2, 2, 3, 3, 3, -1]
    example = MLMDataset(features)[0]
    words = [(1, 3), (3, 5), (5, 7), (7, 10)]
    seen_masked_words = set()
    for seed in range(200):
        collator = ChineseWholeWordMaskCollator(tokenizer, mlm_probability=0.3, seed=seed)
        batch = collator([example])
        masked = (batch["labels"][0] != -100).tolist()
        assert not masked[0] and not masked[-1]  # [CLS], [SEP] never
        for start, end in words:
            chunk = masked[start:end]
            assert all(chunk) or not any(chunk), (seed, masked)
            if all(chunk):
                seen_masked_words.add(start)
        labels = batch["labels"][0]
        assert torch.equal(labels[labels != -100], example["input_ids"][labels != -100])
    assert seen_masked_words == {1, 3, 5, 7}  # every word gets chosen sometimes


def test_mask_rate_and_replacement_split_on_a_real_batch(tokenizer):
    texts = task_texts([TASKS["tnews"]], DATA_DIR)[:2048]
    dataset = MLMDataset(encode_with_words(tokenizer, texts, 128))
    collator = ChineseWholeWordMaskCollator(tokenizer, mlm_probability=0.15, seed=0)
    batch = collator([dataset[i] for i in range(len(dataset))])
    original = torch.nn.utils.rnn.pad_sequence([dataset[i]["input_ids"] for i in range(len(dataset))],
                                               batch_first=True)
    real = (batch["attention_mask"] == 1) & (original != 101) & (original != 102)
    masked = batch["labels"] != -100
    rate = masked.sum().item() / real.sum().item()
    assert 0.13 <= rate <= 0.16, rate
    inputs = batch["input_ids"][masked]
    as_mask = (inputs == tokenizer.mask_token_id).float().mean().item()
    kept = (inputs == original[masked]).float().mean().item()
    assert 0.77 <= as_mask <= 0.83 and 0.08 <= kept <= 0.12
    assert 0.08 <= 1 - as_mask - kept <= 0.12  # random replacements


EXTRA = REPO_ROOT / "data" / "extra"


def segments(features: dict, index: int) -> list[tuple[int, ...]]:
    """The token ids of each text of a cached row ([CLS] a [SEP] (b [SEP])), split by segment, specials dropped."""
    start, end = int(features["offsets"][index]), int(features["offsets"][index + 1])
    ids, types = features["input_ids"][start:end].tolist(), features["token_type_ids"][start:end].tolist()
    first = [i for i, t in zip(ids, types) if t == 0][1:-1]
    second = [i for i, t in zip(ids, types) if t == 1][:-1]
    return [tuple(first)] + ([tuple(second)] if second else [])


@pytest.fixture(scope="module")
def shopping_specs(tmp_path_factory) -> list[Path]:
    """data/extra's two shopping specs, as they are, over every 4th record of their review file (a quarter of the
    time; the file's traps kept: U+FEFF, the empty review, repeated texts)."""
    folder = tmp_path_factory.mktemp("shopping")
    with open(EXTRA / "online_shopping_10_cats.csv", encoding="utf-8", newline="") as source:
        records = list(csv.reader(source))
    with open(folder / "online_shopping_10_cats.csv", "w", encoding="utf-8", newline="") as target:
        csv.writer(target, lineterminator="\n").writerows(
            [records[0], *(r for i, r in enumerate(records[1:]) if i % 4 == 0 or not r[2].strip())])
    specs = [folder / f"{name}.json" for name in ("shopping_cat", "shopping_sentiment")]
    for spec in specs:
        shutil.copy(EXTRA / spec.name, spec)
    return specs


@pytest.fixture(scope="module")
def held_out_by_train_py(tmp_path_factory, shopping_specs, short_data_dir, tokenizer):
    """What train.py's data layer validates on, as token ids: its argument parsing, its caches. The two shopping
    tasks read one file and split it differently; OCNLI is a pair task whose premises repeat across rows."""
    tmp = tmp_path_factory.mktemp("train_py_caches")
    tasks = ",".join([*map(str, shopping_specs), "ocnli"])
    model_args, data_args, prediction_args, training_args = train.parse_args(
        ["--tasks", tasks, "--data_dir", str(short_data_dir), "--data_save_dir", str(tmp),
         "--cleaned_dir", str(tmp / "cleaned"), "--max_seq_length", "100000", "--report_to", "none"])
    settings = train.resolve_paths(model_args, data_args, training_args, prediction_args)
    held = set()
    for task in tasks_of(tasks):
        val = build_task_cache(task, tokenizer, settings)["val"]
        held.update(seg for row in range(len(val["ids"])) for seg in segments(val, row))
    return tasks, held


def corpus_tokens(tokenizer, tasks: str, data_dir: Path, *flags: str) -> set[tuple[int, ...]]:
    """The corpus pretrain.py builds from these flags, as token ids."""
    args, _ = pretrain.parse_cli((pretrain.PretrainArguments, pretrain.PretrainTrainingArguments),
                                 ["--tasks", tasks, "--data_dir", str(data_dir), "--report_to", "none", *flags],
                                 profile=False)
    args.resolve_paths()
    key = pretrain.TokenKey(tokenizer)
    return {tuple(key.encoded[text].ids) for text in pretrain.corpus_texts(args, tasks_of(args.tasks), key)}


@pytest.mark.slow
def test_corpus_holds_no_text_train_py_validates_on(held_out_by_train_py, short_data_dir, tokenizer):
    tasks, held = held_out_by_train_py
    assert len(held) > 2_500  # both shopping tasks' 10% (two splits of one file), OCNLI premises and hypotheses
    corpus = corpus_tokens(tokenizer, tasks, short_data_dir)
    assert len(corpus) > 10_000  # the rest of the reviews, OCNLI's train split and test texts
    leaked = corpus & held
    assert not leaked, f"{len(leaked)} texts of validation rows in the corpus"


def test_config_overrides_set_the_sizes(tmp_path):
    args = pretrain.PretrainArguments(config_name=str(TINY_CONFIG), config_overrides="hidden_size=48,num_hidden_layers=1")
    model = pretrain.build_model(args)
    assert model.config.hidden_size == 48 and model.config.num_hidden_layers == 1


def test_profile_is_demo_without_cuda_and_baseline_only_when_model_reachable(tmp_path):
    assert choose_profile.choose("auto", "hfl/chinese-roberta-wwm-ext-large", cuda=False)[0] == "demo"
    (tmp_path / "config.json").write_text("{}")
    assert choose_profile.choose("auto", str(tmp_path), cuda=True)[0] == "baseline"
    assert choose_profile.choose("auto", str(tmp_path / "missing"), cuda=True)[0] == "demo"
    assert choose_profile.choose("baseline", "x", cuda=False)[0] == "baseline"
    with pytest.raises(ValueError):
        choose_profile.choose("fast", "x")
    if not torch.cuda.is_available():
        assert choose_profile.choose("auto", "hfl/chinese-roberta-wwm-ext-large")[0] == "demo"


def test_bf16_auto_is_the_demo_on_a_cpu_with_native_bf16_only_and_explicit_values_win():
    bf16 = choose_profile.bf16
    assert bf16("auto", "demo", cuda=False, native=True)[0] == "true"
    assert bf16("", "demo", cuda=False, native=False)[0] == ""  # emulated bf16 can be slower than fp32
    assert bf16("auto", "demo", cuda=True, native=True)[0] == ""
    assert bf16("auto", "baseline", cuda=False, native=True)[0] == ""
    assert [bf16(v, "baseline", cuda=True)[0] for v in ("1", "true", "0", "False")] == ["true", "true", "false", "false"]
    with pytest.raises(ValueError, match="BF16 must be auto, 1 or 0"):
        bf16("fp16", "demo")


def test_a_long_text_becomes_windows_that_keep_all_of_it(tokenizer):
    text = "我们喜欢北京天安门。" * 30  # 300 tokens
    whole = TokenKey(tokenizer)([text])[0]
    split = encode_with_words(tokenizer, [text, SENTENCE], 128, split_long=True)
    rows = [split["input_ids"][s:e].tolist() for s, e in zip(split["offsets"][:-1], split["offsets"][1:])]
    assert len(whole) == 300
    assert [len(r) for r in rows] == [102, 102, 102, 11]  # 3 windows of 100 tokens (not 126 + 126 + 48), [CLS]/[SEP]
    assert split["source"].tolist() == [0, 0, 0, 1]
    assert all(r[0] == tokenizer.cls_token_id and r[-1] == tokenizer.sep_token_id for r in rows)
    assert tuple(t for r in rows[:3] for t in r[1:-1]) == whole
    cut = encode_with_words(tokenizer, [text], 128, split_long=False)
    assert cut["input_ids"][1:-1].tolist() == list(whole[:126]) and cut["source"].tolist() == [0]
    words = split["word_ids"][: len(rows[0])].tolist()
    assert words[0] == words[-1] == -1 and words[1:-1] == sorted(words[1:-1])  # jieba words, in order


@pytest.mark.slow
def test_tasks_pretraining_continues_a_model_that_train_py_then_fine_tunes(tmp_path, tiny_mlm, short_data_dir):
    """A spec file (a slice of the waimai reviews) and a competition pair task, continued from a tiny encoder and
    saved as float16; train.py fine-tunes the result. (From scratch, --config_name: test_run_sh's PRETRAIN_EPOCHS.)"""
    from transformers import AutoTokenizer

    from mtl.model import load_model

    with open(EXTRA / "waimai_10k.csv", encoding="utf-8", newline="") as source:
        records = list(csv.reader(source))
    with open(tmp_path / "waimai_10k.csv", "w", encoding="utf-8", newline="") as target:
        csv.writer(target, lineterminator="\n").writerows([records[0], *records[1:61], *records[-60:]])  # both labels
    shutil.copy(EXTRA / "waimai_sentiment.json", tmp_path)
    tasks = f"ocnli,{tmp_path / 'waimai_sentiment.json'}"
    data = ["--tasks", tasks, "--data_dir", str(short_data_dir), "--report_to", "none"]
    metrics = pretrain.main([*data, "--model_name_or_path", str(tiny_mlm), "--output_dir", str(tmp_path / "mlm"),
                             "--max_steps", "5", "--max_seq_length", "64", "--validation_size", "30",
                             "--per_device_train_batch_size", "32", "--save_dtype", "float16", "--disable_tqdm", "true",
                             "--bf16", "true"])  # accepted on a CPU, as train.py's
    assert metrics["eval_loss"] < metrics["eval_before_loss"]
    # --save_dtype float16: a half-size file whose config still says float32, so training loads float32 weights
    assert {v.dtype for v in load_file(str(tmp_path / "mlm" / "model.safetensors")).values()} == {torch.float16}
    start, mlm = BertForMaskedLM.from_pretrained(str(tiny_mlm)), BertForMaskedLM.from_pretrained(str(tmp_path / "mlm"))
    assert mlm.bert.embeddings.word_embeddings.weight.dtype == torch.float32
    moved = [float((a - b).abs().max()) for a, b in zip(start.bert.state_dict().values(), mlm.bert.state_dict().values())]
    assert 0 < max(moved) < 0.05  # a few small steps from the given encoder, not a new one
    assert AutoTokenizer.from_pretrained(str(tmp_path / "mlm"))("北京")["input_ids"] == [101, 1266, 776, 102]
    scores = train.main([*data, "--model_name_or_path", str(tmp_path / "mlm"), "--do_train", "--max_steps", "2",
                         "--do_eval", "--eval_strategy", "no", "--data_save_dir", str(tmp_path / "cache"),
                         "--cleaned_dir", str(tmp_path / "cleaned"), "--output_dir", str(tmp_path / "ft"),
                         "--max_seq_length", "32"])
    assert {"eval_ocnli", "eval_waimai_sentiment"} <= set(scores)
    # the fine-tuning model starts from the pretrained encoder, not from a random one
    multitask = load_model(str(tmp_path / "mlm"), None, competition_heads()).bert.state_dict()
    for name, weight in mlm.bert.state_dict().items():
        if name in multitask:
            assert torch.equal(weight, multitask[name]), name


def test_the_default_encoder_is_the_bundled_one_and_config_name_starts_afresh():
    args = pretrain.PretrainArguments()
    args.resolve_paths()
    assert Path(args.model_name_or_path) == REPO_ROOT / "code" / "assets" / "demo_encoder"
    args = pretrain.PretrainArguments(config_name=str(TINY_CONFIG))
    args.resolve_paths()
    assert args.model_name_or_path is None
    with pytest.raises(UsageError, match="not both"):
        pretrain.PretrainArguments(model_name_or_path=str(REPO_ROOT / "code" / "assets" / "demo_encoder"),
                                   config_name=str(TINY_CONFIG))


@pytest.mark.parametrize("value, message", [
    ("nosuch", "unknown task(s) ['nosuch']; known: "),
    ("data/extra/no_such_spec.json", "no_such_spec.json: cannot read the task spec (No such file or directory)"),
    (" , ", "--tasks ' , ' names no task"),
])
def test_bad_tasks_value_is_one_line_before_any_work(tmp_path, monkeypatch, value, message):
    monkeypatch.setattr(logging, "shutdown", lambda: None)  # run_cli's flush would close pytest's log capture
    argv = ["--tasks", value, "--output_dir", str(tmp_path / "out"), "--report_to", "none"]
    with pytest.raises(SystemExit) as exit_:
        run_cli(lambda: pretrain.main(argv), "pretrain.py")
    assert str(exit_.value.code).startswith("pretrain.py: error: ") and "\n" not in str(exit_.value.code)
    assert message in str(exit_.value.code)
    assert not (tmp_path / "out").exists()
