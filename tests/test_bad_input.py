"""Bad input through the real CLIs: one line naming the file (and line) or the flag and what to do, exit status 1,
no traceback, and nothing written. One row per case a user met (issue: every bad input met with a one-line error)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
import torch

from helpers import REPO_ROOT, TINY_CONFIG, TOKENIZER_DIR


def cli(prog: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO_ROOT / "code" / prog), *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def outputs(out: Path) -> list[str]:
    """Every argument that makes a CLI write somewhere, pointed into `out`."""
    return ["--cleaned_dir", str(out), "--data_save_dir", str(out), "--tokenizer_dir", str(TOKENIZER_DIR)]


def quick_train(data: Path) -> list[str]:
    """A short training run on the small data (so that, should a check miss its case, the test ends soon)."""
    return ["--config_name", str(TINY_CONFIG), "--data_dir", str(data), "--do_train", "--max_steps", "2",
            "--max_seq_length", "32", "--disable_tqdm", "true"]


def quick_pretrain(data: Path) -> list[str]:
    return ["--config_name", str(TINY_CONFIG), "--data_dir", str(data), "--tokenizer_dir", str(TOKENIZER_DIR),
            "--max_seq_length", "32", "--validation_size", "50", "--report_to", "none", "--disable_tqdm", "true"]


def train_outputs(out: Path) -> list[str]:
    return [*outputs(out), "--output_dir", str(out / "model"), "--prediction_dir", str(out / "pred"),
            "--report_to", "none"]


def edit_line(path: Path, number: int, edit: Callable[[str], str]) -> None:
    lines = path.read_bytes().split(b"\n")
    lines[number - 1] = edit(lines[number - 1].decode()).encode()
    path.write_bytes(b"\n".join(lines))


def save_tiny_model(folder: Path) -> Path:
    """A trained multi-task model as train.py saves one (config with a tnews head, model.safetensors), tiny and
    untrained: what predict.py is given, in a second."""
    from transformers import BertConfig

    from mtl.heads import TaskHead
    from mtl.model import BertMultiTaskModel, multitask_config

    config = multitask_config(BertConfig.from_pretrained(TINY_CONFIG), [TaskHead("tnews", [str(100 + i) for i in range(15)])])
    BertMultiTaskModel(config).save_pretrained(folder)
    return folder


def truncated_model(data: Path) -> None:
    weights = save_tiny_model(data / "model") / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def jsonl_task(data: Path, labels: list) -> None:
    """A task of our own (spec + JSON lines train file) in `data`: one row per label given, texts all different."""
    rows = [{"text": f"第{i}条评论，写得{'好' if i % 2 else '差'}", "label": label} for i, label in enumerate(labels)]
    (data / "reviews.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    spec = {"name": "reviews", "format": {"type": "jsonl"}, "files": {"train": "reviews.jsonl"},
            "columns": {"id": None, "text": ["text"], "label": "label"}, "metric": "macro_f1"}
    (data / "reviews.json").write_text(json.dumps(spec), encoding="utf-8")


@dataclass
class Case:
    name: str
    prog: str
    args: Callable[[Path, Path], list[str]]  # (data dir, output dir) -> arguments
    message: str  # must appear in the single error line
    prepare: Callable[[Path], None] = lambda data: None  # damages the copy of the data
    env: dict = field(default_factory=dict)


CASES = [
    Case("empty test file", "preprocess.py", lambda d, o: ["--data_dir", str(d), "--tasks", "tnews", *outputs(o)],
         "TNEWS_a.csv: no rows; the file must hold rows of id<TAB>text",
         prepare=lambda d: (d / "nlp_round1_data" / "TNEWS_a.csv").write_bytes(b"")),
    Case("duplicate id in a test file", "preprocess.py",
         lambda d, o: ["--data_dir", str(d), "--tasks", "tnews", *outputs(o)],
         "tnews_test_B.csv:3: id '0' repeats the row at line 1; ids must be unique (use --skip_bad_rows",
         prepare=lambda d: edit_line(d / "nlp_round2_data" / "tnews_test_B.csv", 3, lambda s: "0" + s[1:])),
    Case("bad label in a train file", "preprocess.py",
         lambda d, o: ["--data_dir", str(d), "--tasks", "tnews", *outputs(o)],
         "TNEWS_train1128.csv:5: label '999' is not one of",
         prepare=lambda d: edit_line(d / "nlp_round1_data" / "TNEWS_train1128.csv", 5,
                                     lambda s: s.rsplit("\t", 1)[0] + "\t999")),
    Case("missing data file", "preprocess.py", lambda d, o: ["--data_dir", str(d), "--tasks", "ocnli", *outputs(o)],
         "OCNLI_train1128.csv: no such file; --data_dir",
         prepare=lambda d: (d / "nlp_round1_data" / "OCNLI_train1128.csv").unlink()),
    Case("unknown task", "preprocess.py", lambda d, o: ["--tasks", "tnews,sentiment", *outputs(o)],
         "unknown task(s) ['sentiment']; known: ['ocemotion', 'ocnli', 'tnews']"),
    Case("model directory that does not exist", "train.py",
         lambda d, o: ["--model_name_or_path", "/no/such/dir", "--do_train", *train_outputs(o)],
         "--model_name_or_path /no/such/dir: no such directory"),
    Case("hub id while HF_HUB_OFFLINE", "train.py",
         lambda d, o: ["--model_name_or_path", "hfl/chinese-roberta-wwm-ext-large", "--do_train", *train_outputs(o)],
         "not a local directory, and not in the hub cache while HF_HUB_OFFLINE is set",
         env={"HF_HUB_OFFLINE": "1", "HF_HOME": "/nonexistent-hf-home"}),
    Case("hub id with the hub unreachable", "train.py",
         lambda d, o: ["--model_name_or_path", "hfl/chinese-roberta-wwm-ext-large", "--do_train", *train_outputs(o)],
         "the hub (http://127.0.0.1:9) cannot be reached",
         env={"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": "/nonexistent-hf-home"}),
    Case("batch size 0", "train.py",
         lambda d, o: ["--config_name", str(TINY_CONFIG), "--do_train", "--per_device_train_batch_size", "0",
                       *train_outputs(o)],
         "--per_device_train_batch_size 0: must be at least 1"),
    Case("max_seq_length beyond the model's positions", "train.py",
         lambda d, o: ["--config_name", str(TINY_CONFIG), "--do_train", "--max_seq_length", "1000", *train_outputs(o)],
         "--max_seq_length 1000 exceeds the model's 512 position embeddings; use --max_seq_length 512 or less"),
    # issue 21: argument mistakes, caught before any data is read
    Case("misspelt flag in train.py", "train.py", lambda d, o: ["--max_stesp", "5", "--do_train", *train_outputs(o)],
         "--max_stesp: unknown flag; did you mean --max_steps?"),
    Case("misspelt flag with = in train.py", "train.py",
         lambda d, o: ["--do_train", "--lerning_rate=1e-4", *train_outputs(o)],
         "--lerning_rate: unknown flag; did you mean --learning_rate?"),
    Case("misspelt flag in preprocess.py", "preprocess.py",
         lambda d, o: ["--data_dir", str(d), "--max_seq_lenght", "64", *outputs(o)],
         "--max_seq_lenght: unknown flag; did you mean --max_seq_length?"),
    Case("training flag given to preprocess.py", "preprocess.py",
         lambda d, o: ["--data_dir", str(d), "--learning_rate", "1e-4", *outputs(o)],
         "--learning_rate: unknown flag"),
    Case("misspelt flag in pretrain.py", "pretrain.py",
         lambda d, o: ["--data_dir", str(d), "--mlm_probabilty", "0.2", "--output_dir", str(o / "model")],
         "--mlm_probabilty: unknown flag; did you mean --mlm_probability?"),
    Case("misspelt key in a train.py profile", "train.py",
         lambda d, o: [str(d / "profile.json"), *quick_train(d), *train_outputs(o)],
         "profile.json: unknown key 'max_stesp'; did you mean 'max_steps'?",
         prepare=lambda d: (d / "profile.json").write_text('{"_comment": "a note", "max_stesp": 5}')),
    Case("misspelt key in a profile given to preprocess.py", "preprocess.py",
         lambda d, o: [str(d / "profile.json"), "--data_dir", str(d), *outputs(o)],
         "profile.json: unknown key 'lerning_rate'; did you mean 'learning_rate'?",  # training keys are fine there
         prepare=lambda d: (d / "profile.json").write_text('{"learning_rate": 1e-4, "lerning_rate": 1e-4}')),
    Case("bad value (argparse's own error)", "train.py", lambda d, o: ["--max_steps", "x", *train_outputs(o)],
         "argument --max_steps/--max-steps: invalid int value: 'x'"),
    Case("save_steps not a multiple of eval_steps", "train.py",
         lambda d, o: ["--do_train", "--save_steps", "5", "--eval_steps", "10", *train_outputs(o)],
         "--save_steps 5 is not a multiple of --eval_steps 10: choosing the best checkpoint"),
    Case("evaluation by epoch, checkpoints by steps", "train.py",
         lambda d, o: ["--do_train", "--eval_strategy", "epoch", "--save_strategy", "steps", *train_outputs(o)],
         "--eval_strategy epoch with --save_strategy steps: choosing the best checkpoint"),
    Case("best model asked for without evaluations", "train.py",
         lambda d, o: ["--do_train", "--eval_strategy", "no", "--load_best_model_at_end", "true", *train_outputs(o)],
         "--load_best_model_at_end needs evaluations and checkpoints, but --eval_strategy is no"),
    Case("empty task list in train.py", "train.py", lambda d, o: [*quick_train(d), "--tasks", ",", *train_outputs(o)],
         "--tasks ',' names no task"),
    Case("empty task list in preprocess.py", "preprocess.py",
         lambda d, o: ["--data_dir", str(d), "--tasks", ",", *outputs(o)], "--tasks ',' names no task"),
    Case("negative epochs", "train.py",
         lambda d, o: [*quick_train(d), "--max_steps", "-1", "--num_train_epochs", "-1", *train_outputs(o)],
         "--num_train_epochs -1 trains nothing; give a number of epochs > 0 (or --max_steps N)"),
    Case("zero epochs in pretrain.py", "pretrain.py",
         lambda d, o: [*quick_pretrain(d), "--num_train_epochs", "0", "--output_dir", str(o / "model")],
         "--num_train_epochs 0 trains nothing"),
    # unwritable directories: a path under a regular file, or under /proc (tests run as root, where chmod stops nothing)
    Case("output_dir under a file", "train.py",
         lambda d, o: [*quick_train(d), *train_outputs(o),
                       "--output_dir", str(d / "a_file" / "model")],
         "--output_dir {d}/a_file/model: cannot be written: {d}/a_file is a file, not a directory",
         prepare=lambda d: (d / "a_file").write_text("x")),
    Case("prediction_dir under a file with --do_predict", "train.py",
         lambda d, o: [*quick_train(d), "--do_predict", *train_outputs(o),
                       "--prediction_dir", str(d / "a_file" / "pred")],
         "--prediction_dir {d}/a_file/pred: cannot be written: {d}/a_file is a file",
         prepare=lambda d: (d / "a_file").write_text("x")),
    Case("cleaned_dir under a file", "train.py",
         lambda d, o: [*quick_train(d), *train_outputs(o),
                       "--cleaned_dir", str(d / "a_file" / "clean")],
         "--cleaned_dir {d}/a_file/clean: cannot be written", prepare=lambda d: (d / "a_file").write_text("x")),
    Case("data_save_dir under a file", "preprocess.py",
         lambda d, o: ["--data_dir", str(d), *outputs(o), "--data_save_dir", str(d / "a_file" / "cache")],
         "--data_save_dir {d}/a_file/cache: cannot be written", prepare=lambda d: (d / "a_file").write_text("x")),
    Case("pretrain.py output_dir where no file can be made", "pretrain.py",
         lambda d, o: [*quick_pretrain(d), "--max_steps", "1", "--output_dir", "/proc/mtl_model"],
         "--output_dir /proc/mtl_model: cannot be written: cannot write in /proc"),
    Case("predict.py input file that does not exist", "predict.py",
         lambda d, o: ["--model_name_or_path", str(TINY_CONFIG.parent), "--tasks", "tnews",
                       "--input_file", str(d / "nothing.tsv"), "--output_file", str(o / "out.jsonl")],
         "nothing.tsv: no such file"),
    Case("predict.py given the pretrained encoder, not a trained model", "predict.py",
         lambda d, o: ["--model_name_or_path", str(REPO_ROOT / "code" / "assets" / "demo_encoder"), "--tasks", "tnews",
                       "--text", "华为发布新款折叠屏手机", "--output_file", str(o / "out.jsonl")],
         "demo_encoder: a pretrained encoder with no task heads (its config.json names no tasks), not a trained "
         "multi-task model; pass a trained multi-task model instead: train.py's --output_dir"),
    Case("predict.py given a folder without config.json", "predict.py",
         lambda d, o: ["--model_name_or_path", str(d), "--tasks", "tnews", "--text", "华为发布新款折叠屏手机",
                       "--output_file", str(o / "out.jsonl")],
         "a folder without config.json, so not a saved model; pass a trained multi-task model instead: train.py's "
         "--output_dir"),
    Case("predict.py given a model whose model.safetensors is cut short", "predict.py",
         lambda d, o: ["--model_name_or_path", str(d / "model"), "--tasks", "tnews", "--text", "华为发布新款折叠屏手机",
                       "--output_file", str(o / "out.jsonl")],
         "model/model.safetensors: damaged, cut short by a copy, download or full disk (", prepare=truncated_model),
    Case("jsonl labels '1.0' and 1: one number spelt two ways", "preprocess.py",
         lambda d, o: ["--data_dir", str(d), "--tasks", str(d / "reviews.json"), *outputs(o)],
         "reviews.jsonl:3: label '1.0' and label '1' (line 1) are the same number written two ways, which would make "
         "two classes; write labels consistently",
         prepare=lambda d: jsonl_task(d, [1, 2, "1.0", 2, 1, 2])),
]


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gets_one_line_error_and_nothing_written(case: Case, small_data_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(small_data_dir, data)
    case.prepare(data)
    out = tmp_path / "out"
    proc = cli(case.prog, *case.args(data, out), env=case.env)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    last = proc.stderr.rstrip("\n").split("\n")[-1]
    assert last.startswith(f"{case.prog}: error: ") and case.message.format(d=data) in last, last
    written = [p for p in out.rglob("*") if p.is_file()] if out.exists() else []
    assert not written, written


def test_best_checkpoint_default_follows_the_strategies():
    """--eval_strategy no or --save_strategy no alone just work (no best checkpoint then); the default run keeps the
    2020 behaviour: the best checkpoint by eval_avg."""
    import train

    def best(*flags: str):
        training_args = train.parse_args(["--report_to", "none", *flags])[3]
        return training_args.load_best_model_at_end, training_args.metric_for_best_model

    assert best() == (True, "avg")
    assert best("--eval_strategy", "epoch", "--save_strategy", "epoch") == (True, "avg")
    assert best("--save_steps", "5000") == (True, "avg")
    assert best("--eval_strategy", "no")[0] is False
    assert best("--save_strategy", "no")[0] is False
    assert best("--save_steps", "5", "--eval_steps", "10", "--load_best_model_at_end", "false")[0] is False


def test_writable_directory_probe_leaves_nothing_behind(tmp_path):
    from mtl.args import writable_dir_problem

    assert writable_dir_problem(tmp_path / "new" / "dir") is None
    assert writable_dir_problem(tmp_path) is None
    assert list(tmp_path.iterdir()) == []  # neither the directories nor the probe's file
    (tmp_path / "f").write_text("x")
    assert writable_dir_problem(tmp_path / "f" / "sub") == f"{tmp_path / 'f'} is a file, not a directory"
    assert writable_dir_problem(tmp_path / "f") == f"{tmp_path / 'f'} is a file, not a directory"


@pytest.mark.slow
def test_damaged_cache_is_detected_and_rebuilt(small_data_dir, tmp_path):
    """A cache file truncated after it was built (full disk, a copy cut short) while fingerprint.json is intact:
    the next run says so and rebuilds, instead of torch's 'PytorchStreamReader failed reading zip archive'."""
    args = ["--data_dir", str(small_data_dir), "--tasks", "tnews", *outputs(tmp_path)]
    assert cli("preprocess.py", *args).returncode == 0
    train_pt = tmp_path / "tnews_processed" / "train.pt"
    good = train_pt.read_bytes()
    train_pt.write_bytes(good[: len(good) // 2])
    proc = cli("preprocess.py", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "cache file(s) train.pt in" in proc.stderr and "damaged or missing" in proc.stderr
    assert len(torch.load(train_pt, weights_only=True)["ids"]) == 270  # 300 rows, 10% held out
    proc = cli("preprocess.py", *args)  # and the rebuilt cache is reused as it is
    assert "reusing cache" in proc.stderr and "damaged or missing" not in proc.stderr


@pytest.mark.slow
def test_skip_bad_rows_drops_a_repeated_test_id_and_reports_it(small_data_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(small_data_dir, data)
    edit_line(data / "nlp_round2_data" / "tnews_test_B.csv", 3, lambda s: "0" + s[1:])
    proc = cli("preprocess.py", "--data_dir", str(data), "--tasks", "tnews", "--skip_bad_rows",
               "--test_b", "true", *outputs(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "tnews_test_B.csv:3: dropped: id '0' repeats the row at line 1" in proc.stderr
    assert "tnews_test_B.csv: 1499 rows kept, 0 lines repaired, 1 rows dropped" in proc.stderr
    predict = torch.load(tmp_path / "tnews_processed" / "predict.pt", weights_only=True)
    assert len(predict["ids"]) == 1499 and len(set(predict["ids"])) == 1499


@pytest.mark.slow
def test_debug_predictions_are_never_named_a_submission(tmp_path):
    """--debug reads the first 1000 rows of each file: its predictions go into a zip named as partial, loudly; and a
    full run's submit.zip already in --prediction_dir goes (it would disagree with the 1000-row files beside it)."""
    pred = tmp_path / "pred"
    pred.mkdir()
    with zipfile.ZipFile(pred / "submit.zip", "w") as old:
        old.writestr("tnews_predict.json", "a full run's 1500 rows\n")
    proc = cli("train.py", "--config_name", str(TINY_CONFIG), "--do_train", "--do_predict", "--debug",
               "--max_steps", "2", "--max_seq_length", "32", "--disable_tqdm", "true", *train_outputs(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (pred / "submit.zip").exists() and (pred / "submit_PARTIAL_debug.zip").exists()
    assert "NOT a submission" in proc.stderr
    assert len((pred / "tnews_predict.json").read_text().splitlines()) == 1000


@pytest.fixture(scope="module")
def tnews_cache(small_data_dir, tmp_path_factory) -> Path:
    """preprocess.py's tnews cache of the small data, built once; each test damages a copy."""
    out = tmp_path_factory.mktemp("tnews_cache")
    assert cli("preprocess.py", "--data_dir", str(small_data_dir), "--tasks", "tnews", *outputs(out)).returncode == 0
    return out / "tnews_processed"


def _cut_in_half(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _edit_label2id(path: Path) -> None:  # two classes swapped: a valid map, but not the one train.pt was built with
    label2id = json.loads(path.read_text())
    label2id["100"], label2id["101"] = label2id["101"], label2id["100"]
    path.write_text(json.dumps(label2id))


CACHE_DAMAGE = {  # what is done to the cache -> the warning the next run logs before it rebuilds
    "empty fingerprint.json": ("fingerprint.json", lambda p: p.write_bytes(b""), "fingerprint.json is damaged"),
    "truncated fingerprint.json": ("fingerprint.json", _cut_in_half, "fingerprint.json is damaged"),
    "deleted fingerprint.json": ("fingerprint.json", Path.unlink, "fingerprint.json is missing"),
    "deleted label2id.json": ("label2id.json", Path.unlink, "cache file(s) label2id.json in"),
    "edited label2id.json": ("label2id.json", _edit_label2id, "cache file(s) label2id.json in"),
}


@pytest.mark.slow
@pytest.mark.parametrize("damage", CACHE_DAMAGE)
def test_every_file_of_a_cache_is_checked_and_a_damaged_one_rebuilt(damage, tnews_cache, small_data_dir, tmp_path):
    """Every file of a cache, fingerprint.json and label2id.json included: damaged or missing -> one warning and a
    rebuild, never a traceback (a JSONDecodeError, train.py's FileNotFoundError or a mid-training 'Target 8 is out of
    bounds') nor 'reusing cache' for a cache that is not what was built. The rebuilt files are the original bytes."""
    cache = tmp_path / "tnews_processed"
    shutil.copytree(tnews_cache, cache)
    name, damage_file, warning = CACHE_DAMAGE[damage]
    damage_file(cache / name)
    proc = cli("preprocess.py", "--data_dir", str(small_data_dir), "--tasks", "tnews", *outputs(tmp_path))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert warning in proc.stderr and "rebuilding" in proc.stderr and "reusing cache" not in proc.stderr, proc.stderr
    for f in ("train.pt", "val.pt", "predict.pt", "label2id.json", "fingerprint.json"):
        assert (cache / f).read_bytes() == (tnews_cache / f).read_bytes(), f


@pytest.mark.slow
def test_jsonl_numbers_1_and_1_0_are_one_class(small_data_dir, tmp_path):
    """JSON has one number 1, whether written 1 or 1.0 (pandas writes an int column with a gap as floats): one class
    '1', the label a CSV file of the same data gives."""
    jsonl_task(tmp_path, [1, 2.0, 1.0, 2, 1, 2])
    proc = cli("preprocess.py", "--data_dir", str(small_data_dir), "--tasks", str(tmp_path / "reviews.json"),
               *outputs(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "out" / "reviews_processed" / "label2id.json").read_text()) == {"1": 0, "2": 1}


@pytest.mark.slow
def test_a_killed_writes_leftover_tmp_files_are_removed_by_the_next_write(tmp_path):
    """A SIGKILLed predict.py leaves `.out.jsonl.XXXXXXXX.tmp` (0 bytes) beside its --output_file. The next write of
    that file removes the ones untouched for a minute; a younger one (a writer still at work) and another target's
    stay."""
    model = save_tiny_model(tmp_path / "model")
    out = tmp_path / "out"
    out.mkdir()
    stale, fresh, other = out / ".out.jsonl.k1ll3d_x.tmp", out / ".out.jsonl.w0rking_.tmp", out / ".out.jsonl.x.abcdefgh.tmp"
    for path in (stale, fresh, other):
        path.write_bytes(b"")
    an_hour_ago = time.time() - 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))
    os.utime(other, (an_hour_ago, an_hour_ago))
    proc = cli("predict.py", "--model_name_or_path", str(model), "--tasks", "tnews", "--text", "华为发布新款折叠屏手机",
               "--output_file", str(out / "out.jsonl"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"removed {stale}, left behind by a write of {out / 'out.jsonl'} that was killed" in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(["out.jsonl", fresh.name, other.name])


def test_no_zip_ever_disagrees_with_the_prediction_files(tmp_path):
    """The files train.py writes, in its order (prediction files, then the zip), into a folder holding both zips of
    earlier runs: once the first prediction file is replaced neither old zip is left (a run killed before its zip
    leaves none rather than a wrong one); then only the new zip, a full run's or a --debug run's, is there."""
    import numpy as np

    from mtl.outputs import PARTIAL_ZIP, SUBMISSION_ZIP, write_predictions, write_submission_zip
    from mtl.tasks import TASKS
    from mtl.trainer import TaskPrediction

    prediction = TaskPrediction(["0", "1"], np.array([0, 1]), np.array([[0.9, 0.1], [0.2, 0.8]]))
    for new, old in ((PARTIAL_ZIP, SUBMISSION_ZIP), (SUBMISSION_ZIP, PARTIAL_ZIP)):
        for name in (new, old):
            (tmp_path / name).write_bytes(b"an earlier run's zip")
        files = [write_predictions(TASKS["ocnli"], prediction, {0: "0", 1: "1"}, tmp_path)]
        assert not (tmp_path / new).exists() and not (tmp_path / old).exists()
        write_submission_zip(files, tmp_path / new)
        assert not (tmp_path / old).exists()
        with zipfile.ZipFile(tmp_path / new) as archive:
            assert archive.namelist() == ["ocnli_predict.json"]
