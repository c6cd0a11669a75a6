"""predict.py and the Predictor on a model trained by train.py: every input layout, ids carried through, label names,
the task's cleaning and truncation exactly as in training, bad input, and HF-native loading without this repository."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import predict
import train
from helpers import REPO_ROOT, TINY_CONFIG, common
from mtl.predictor import Predictor
from mtl.readers import read_task_file
from mtl.table import DataFormatError
from mtl.tasks import TASKS

PREDICT = [sys.executable, str(REPO_ROOT / "code" / "predict.py")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, small_data_dir):
    """A tiny model trained by train.py, with its own --do_predict files of test A to compare against."""
    tmp = tmp_path_factory.mktemp("predict")
    train.main(["--config_name", str(TINY_CONFIG), "--do_train", "--do_predict", "--max_steps", "30",
                "--learning_rate", "3e-3", "--eval_strategy", "no", "--save_strategy", "no",
                "--load_best_model_at_end", "false", "--pseudo", "false", *common(tmp, small_data_dir, "model")])
    return tmp / "model", tmp / "pred_model"


def run_cli(*args, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*PREDICT, *args], input=stdin, capture_output=True, timeout=300)


def test_the_saved_config_names_every_label(trained):
    model_dir, _ = trained
    config = json.loads((model_dir / "config.json").read_text())
    assert config["model_type"] == "bert_multitask" and config["max_seq_length"] == 64
    names = {h["name"]: h["label_names"] for h in config["tasks"]}
    assert names["ocnli"] == {"0": "entailment", "1": "neutral", "2": "contradiction"}
    assert names["tnews"]["109"] == "news_tech" and len(names["tnews"]) == 15
    assert names["ocemotion"]["like"] == "like" and len(names["ocemotion"]) == 7


def test_new_texts_are_encoded_exactly_as_training_cached_them(trained, small_data_dir):
    """Cleaning (OCEMOTION's emoji and punctuation), truncation to the trained 64 tokens and sentence pairs: the
    Predictor's token ids for a test file equal train.py's cache of the same file."""
    model_dir, _ = trained
    predictor = Predictor.from_pretrained(str(model_dir))
    for task in TASKS.values():
        table, _ = read_task_file(task, task.test_path("a", small_data_dir), False)
        features = predictor.encode(task.name, list(zip(*(table.columns[c] for c in task.text_columns))))
        cache = torch.load(model_dir.parent / "cache_model" / f"{task.name}_processed" / "predict.pt", weights_only=True)
        for key in ("input_ids", "token_type_ids", "offsets"):
            assert torch.equal(features[key], cache[key]), (task.name, key)


@pytest.mark.slow
def test_cli_on_a_test_file_matches_train_py_predictions_with_ids_and_names(trained, small_data_dir, tmp_path):
    """The competition layout (tab-separated, named .csv), through the CLI, as the issue's done-when runs it."""
    model_dir, pred_dir = trained
    out = tmp_path / "tnews.jsonl"
    result = run_cli("--model_name_or_path", str(model_dir), "--tasks", "tnews", "--input_file",
                     str(TASKS["tnews"].test_path("a", small_data_dir)), "--output_file", str(out))
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert b"(tianchi format): 1500 rows read, 1500 predicted, 0 skipped" in result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    expected = [json.loads(line) for line in (pred_dir / "tnews_predict.json").read_text().splitlines()]
    assert [r["id"] for r in rows] == [e["id"] for e in expected]
    assert [r["label"] for r in rows] == [e["label"] for e in expected]
    assert all(r["label_name"] == TASKS["tnews"].label_name(r["label"]) and r["task"] == "tnews" for r in rows)


@pytest.mark.slow
def test_jsonl_csv_text_and_stdin_inputs(trained, tmp_path, capsys):
    model_dir, _ = trained
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text('{"id": "a7", "premise": "一月份跟二月份肯定有一个月份有.", "hypothesis": "一月份有"}\n'
                     '\n{"premise": "他来了", "hypothesis": "他没来", "extra": 1}\n', encoding="utf-8")
    rows = predict.main(["--model_name_or_path", str(model_dir), "--tasks", "ocnli", "--input_file", str(jsonl),
                         "--top_k", "3"])
    assert [r["id"] for r in rows] == ["a7", "3"]  # a carried id, else the 1-based line number
    assert [s["label_name"] for s in rows[0]["top_k"]] and len(rows[0]["top_k"]) == 3
    assert sum(s["probability"] for s in rows[0]["top_k"]) == pytest.approx(1.0, abs=1e-5)

    csv_file = tmp_path / "news.csv"
    csv_file.write_text('id,text\nn1,"苹果,华为和小米发布新手机"\nn2,国足今晚迎战日本\n', encoding="utf-8")
    rows = predict.main(["--model_name_or_path", str(model_dir), "--tasks", "tnews,ocemotion", "--input_file",
                         str(csv_file)])
    assert [(r["id"], r["task"]) for r in rows] == [("n1", "tnews"), ("n1", "ocemotion"), ("n2", "tnews"),
                                                    ("n2", "ocemotion")]

    rows = predict.main(["--model_name_or_path", str(model_dir), "--tasks", "tnews", "--text", "第一条", "--text", "第二条"])
    assert [r["id"] for r in rows] == ["1", "2"]
    capsys.readouterr()
    result = run_cli("--model_name_or_path", str(model_dir), "--tasks", "ocnli", stdin="他来了\t他没来\r\n".encode())
    assert result.returncode == 0 and json.loads(result.stdout)["id"] == "1"


@pytest.mark.parametrize("name, content, reason", [
    ("bad.tsv", b"id\ttext\ns1\t\n", "2: empty text"),
    ("bad.tsv", b"0\t\xff\xfe bad\n", "1: not valid UTF-8"),
    ("bad.jsonl", b'{"id": 1, "txt": "x"}\n', "1: no text field 'text'"),
    ("bad.jsonl", b'{"id": 1, "text": "x"}\n[1, 2]\n', "2: not a JSON object"),
    ("bad.csv", b'id,text\n1,"a",b\n', "2: expected 2 columns"),
])
def test_bad_input_names_file_and_line(trained, tmp_path, name, content, reason):
    model_dir, _ = trained
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataFormatError) as err:
        predict.main(["--model_name_or_path", str(model_dir), "--tasks", "tnews", "--input_file", str(path)])
    assert f"{path}:{reason}" in str(err.value)


@pytest.mark.slow
def test_the_cli_answers_bad_input_with_one_line_and_a_failing_exit(trained, tmp_path):
    model_dir, _ = trained
    path = tmp_path / "bad.tsv"
    path.write_bytes(b"id\ttext\ns1\t\n")
    result = run_cli("--model_name_or_path", str(model_dir), "--tasks", "tnews", "--input_file", str(path),
                     "--output_file", str(tmp_path / "out.jsonl"))
    stderr = result.stderr.decode()
    assert result.returncode == 1 and "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == f"predict.py: error: {path}:2: empty text (use --skip_bad_rows to drop such rows)"
    assert not (tmp_path / "out.jsonl").exists()  # nothing half-written


def test_skip_bad_rows_accounts_for_every_row(trained, tmp_path):
    model_dir, _ = trained
    path = tmp_path / "some_bad.tsv"
    path.write_text("id\ttext\tsource\ns1\t好消息\tweb\ns2\t\tweb\ns3\t太多\tcolumns\there\n\ns4\t坏消息\tapp\n",
                    encoding="utf-8")
    with pytest.raises(DataFormatError, match="some_bad.tsv:3: empty text"):
        predict.main(["--model_name_or_path", str(model_dir), "--tasks", "tnews", "--input_file", str(path)])
    rows = predict.main(["--model_name_or_path", str(model_dir), "--tasks", "tnews", "--input_file", str(path),
                         "--skip_bad_rows"])
    assert [r["id"] for r in rows] == ["s1", "s4"]


def test_predictor_api_answers_in_input_order_whatever_the_batching(trained):
    model_dir, _ = trained
    texts = ["短", "一个长得多的句子，用来检验按长度排序后的批次会不会打乱顺序", "中等长度的句子", "再短"]
    one_by_one = [Predictor.from_pretrained(str(model_dir), batch_size=1).predict("tnews", [t])[0] for t in texts]
    batched = Predictor.from_pretrained(str(model_dir), batch_size=3).predict("tnews", texts)
    assert [p.label for p in batched] == [p.label for p in one_by_one]
    np.testing.assert_allclose([p.probability for p in batched], [p.probability for p in one_by_one], atol=1e-5)
    with pytest.raises(ValueError, match="no head for task 'waimai'"):
        Predictor.from_pretrained(str(model_dir)).predict("waimai", texts)


REMOTE = """
import json, sys
import torch, transformers
assert not any(p.endswith("code") for p in sys.path), sys.path
try:
    import mtl  # noqa: F401
    raise SystemExit("this repository's code is importable")
except ImportError:
    pass
model_dir, batch_file, out = sys.argv[1:4]
refused = {}
for name in ("AutoModel", "AutoModelForSequenceClassification", "AutoConfig"):
    try:
        getattr(transformers, name).from_pretrained(model_dir)
        refused[name] = False
    except ValueError as err:
        refused[name] = "trust_remote_code" in str(err)
try:
    transformers.pipeline("text-classification", model=model_dir)
    refused["pipeline"] = False
except ValueError as err:
    refused["pipeline"] = "trust_remote_code" in str(err)
model = transformers.AutoModel.from_pretrained(model_dir, trust_remote_code=True).eval()
batch = torch.load(batch_file)
with torch.no_grad():
    logits = model(**batch).logits
torch.save({"logits": logits, "class": type(model).__name__, "refused": refused}, out)
"""


@pytest.mark.slow
def test_hf_native_loading_where_this_repository_is_absent(trained, tmp_path, tokenizer):
    """AutoModel + trust_remote_code in a process that cannot import this project gives the same logits as the
    project's own loading; without trust_remote_code every Auto class refuses (never a random head)."""
    model_dir, _ = trained
    encoded = tokenizer(["华为发布新款折叠屏手机", "今天天气很好"], padding=True, return_tensors="pt")
    batch = {**{k: v for k, v in encoded.items()}, "task_id": 2}
    torch.save(batch, tmp_path / "batch.pt")
    (tmp_path / "remote.py").write_text(REMOTE)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-P", str(tmp_path / "remote.py"), str(model_dir),
                             str(tmp_path / "batch.pt"), str(tmp_path / "out.pt")], cwd=tmp_path, env=env,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    remote = torch.load(tmp_path / "out.pt")
    assert remote["class"] == "BertMultiTaskModel"
    assert remote["refused"] == {"AutoModel": True, "AutoModelForSequenceClassification": True, "AutoConfig": True,
                                 "pipeline": True}
    ours = Predictor.from_pretrained(str(model_dir)).model
    with torch.no_grad():
        expected = ours(**batch).logits
    assert torch.equal(remote["logits"], expected)


def test_submission_files_keep_the_raw_labels(trained):
    _, pred_dir = trained
    rows = [json.loads(line) for line in (pred_dir / "tnews_predict.json").read_text().splitlines()]
    assert all(set(r) == {"id", "label"} and r["label"] in TASKS["tnews"].labels for r in rows)


def test_a_one_column_csv_file_is_read_as_csv_with_its_quoting():
    """A header of one column is both a TSV and a CSV header; a .csv file's quoted field must lose its quotes."""
    from mtl.new_texts import detect_format, read_new_texts

    data = 'review\n"好吃,下次还点"\n'.encode()
    assert detect_format("new.csv", data.decode(), ["review"]) == "csv"
    assert detect_format("new.tsv", data.decode(), ["review"]) == "tsv"
    table, _, used = read_new_texts("new.csv", data, ["review"])
    assert used == "csv" and table.columns["review"] == ["好吃,下次还点"]
