"""train.py end to end on a small copy of the real data with a tiny model: submission files, pseudo-labels,
test B, stage 2, EMA inside the Trainer, and resuming."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import train
from helpers import REPO_ROOT, TINY_CONFIG, common, competition_heads
from mtl.args import DataTrainingArguments, ModelArguments, PredictionArguments
from mtl.checkpoints import mark_complete
from mtl.outputs import write_pseudo_labels
from mtl.readers import read_task_file
from mtl.tasks import ROUND2_DIR, TASKS
from mtl.trainer import TaskPrediction


@pytest.fixture(scope="module")
def stage1(tmp_path_factory, small_data_dir):
    tmp = tmp_path_factory.mktemp("train")
    metrics = train.main(["--config_name", str(TINY_CONFIG), "--do_train", "--do_eval", "--do_predict",
                          "--max_steps", "40", "--learning_rate", "1e-3", "--ema_decay", "0.9",
                          "--pseudo_threshold", "0.0", *common(tmp, small_data_dir, "stage1")])
    return tmp, metrics


@pytest.mark.slow
def test_stage1_reports_per_task_macro_f1_and_their_mean(stage1):
    _, metrics = stage1
    for key in ("eval_ocnli", "eval_ocemotion", "eval_tnews", "eval_avg", "eval_loss"):
        assert key in metrics
    assert metrics["eval_avg"] == pytest.approx(np.mean([metrics[f"eval_{t}"] for t in TASKS]))


def test_training_writes_its_curves_png_from_the_log_history(stage1):
    tmp, _ = stage1
    png = (tmp / "stage1" / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000  # two panels with lines, not an empty figure


PROFILES = sorted((REPO_ROOT / "code" / "assets" / "profiles").glob("*.json"))


@pytest.mark.parametrize("profile", PROFILES, ids=[p.stem for p in PROFILES])
def test_profile_files_parse_and_command_line_flags_override_them(profile):
    values = {k: v for k, v in json.loads(profile.read_text()).items() if not k.startswith("_")}
    model_args, data_settings, _, training_args = train.parse_args([str(profile), "--learning_rate", "0.5"])
    parsed = {**vars(model_args), **vars(data_settings), **vars(training_args)}
    for key, value in values.items():
        if key != "learning_rate":
            assert parsed[key] == value, key
    assert training_args.learning_rate == 0.5  # the flag after the file wins


def test_baseline_stage1_profile_is_train_py_defaults_the_2020_recipe():
    values = json.loads((REPO_ROOT / "code" / "assets" / "profiles" / "baseline_stage1.json").read_text())
    _, data_settings, _, training_args = train.parse_args([])
    for key, value in values.items():
        # the 2020 task loss weights and EMA start only make sense on the competition's full data: the profile's own
        if not key.startswith("_") and key not in ("task_loss_weights", "ema_start_step"):
            assert getattr(data_settings, key, getattr(training_args, key, None)) == value, key


def test_preprocess_reads_the_data_arguments_of_a_training_profile(tmp_path, small_data_dir):
    import preprocess

    preprocess.main([str(REPO_ROOT / "code" / "assets" / "profiles" / "demo_stage1.json"), "--tasks", "ocnli",
                     "--data_dir", str(small_data_dir), "--data_save_dir", str(tmp_path), "--cleaned_dir", str(tmp_path)])
    assert json.loads((tmp_path / "ocnli_processed" / "fingerprint.json").read_text())["max_seq_length"] == 128


def test_prediction_files_hold_every_test_id_in_order_with_valid_labels(stage1, small_data_dir):
    tmp, _ = stage1
    pred_dir = tmp / "pred_stage1"
    for task in TASKS.values():
        test, _ = read_task_file(task, task.test_path("a", small_data_dir), False)
        rows = [json.loads(line) for line in (pred_dir / f"{task.name}_predict.json").read_text().splitlines()]
        assert [r["id"] for r in rows] == test.columns["id"]
        assert all(set(r) == {"id", "label"} and r["label"] in task.labels for r in rows)
    with zipfile.ZipFile(pred_dir / "submit.zip") as archive:
        assert sorted(archive.namelist()) == sorted(f"{t}_predict.json" for t in TASKS)
        assert archive.read("ocnli_predict.json") == (pred_dir / "ocnli_predict.json").read_bytes()


def test_pseudo_files_are_train_rows_of_each_task(stage1, small_data_dir):
    tmp, _ = stage1
    for task in TASKS.values():
        path = tmp / "stage1" / "pseudo" / f"{task.file_prefix}_pseudo.csv"
        table, report = read_task_file(task, path, True, task.labels)  # strict: raises if bad
        assert len(table) == 1500 and not report.dropped  # threshold 0 keeps every test row
        test, _ = read_task_file(task, task.test_path("a", small_data_dir), False)
        assert table.columns["id"] == test.columns["id"]


def test_pseudo_threshold_keeps_only_confident_rows(tmp_path, tokenizer):
    from mtl.data import SingleTaskDataset

    task = TASKS["ocnli"]
    probs = np.array([[0.995, 0.004, 0.001], [0.5, 0.3, 0.2], [0.0, 0.01, 0.99]])
    prediction = TaskPrediction(["7", "8", "9"], probs.argmax(-1), probs)
    features = {"input_ids": torch.zeros(0), "token_type_ids": torch.zeros(0), "offsets": torch.zeros(4),
                "labels": torch.full((3,), -100), "ids": ["7", "8", "9"],
                "texts": {"premise": ["p7", "p8", "p9"], "hypothesis": ["h7", "h8", "h9"]}}
    path, kept = write_pseudo_labels(task, prediction, SingleTaskDataset(features, 0),
                                     {0: "0", 1: "1", 2: "2"}, 0.99, tmp_path)
    assert kept == 2
    assert path.read_text(encoding="utf-8") == "7\tp7\th7\t0\n9\tp9\th9\t2\n"


def test_test_b_predicts_the_round2_files(stage1, small_data_dir):
    tmp, _ = stage1
    train.main(["--model_name_or_path", str(tmp / "stage1"), "--do_predict", "--test_b", "--pseudo", "false",
                *common(tmp, small_data_dir, "testb")])
    ids = [json.loads(line)["id"] for line in (tmp / "pred_testb" / "ocnli_predict.json").read_text().splitlines()]
    assert ids == [str(i) for i in range(1500, 3000)]
    tnews, _ = read_task_file(TASKS["tnews"], small_data_dir / ROUND2_DIR / "tnews_test_B.csv", False)
    rows = (tmp / "pred_testb" / "tnews_predict.json").read_text().splitlines()
    assert [json.loads(line)["id"] for line in rows] == tnews.columns["id"]


def test_stage2_freezes_every_encoder_weight(stage1, small_data_dir):
    tmp, _ = stage1
    train.main(["--model_name_or_path", str(tmp / "stage1"), "--freeze", "--do_train", "--max_steps", "10",
                "--learning_rate", "1e-2", "--eval_strategy", "no", "--load_best_model_at_end", "false",
                "--save_strategy", "no", *common(tmp, small_data_dir, "stage2")])
    before, after = load_file(tmp / "stage1" / "model.safetensors"), load_file(tmp / "stage2" / "model.safetensors")
    assert before.keys() == after.keys()
    encoder = [k for k in before if k.startswith("bert.")]
    heads = [k for k in before if k.startswith("heads.")]
    assert encoder and all(torch.equal(before[k], after[k]) for k in encoder)
    assert any(not torch.equal(before[k], after[k]) for k in heads)


def test_use_pseudo_grows_the_train_split(stage1, small_data_dir):
    tmp, _ = stage1
    args = ["--config_name", str(TINY_CONFIG), "--do_train", "--max_steps", "1", "--eval_strategy", "no",
            "--load_best_model_at_end", "false", "--save_strategy", "no"]
    train.main(args + common(tmp, small_data_dir, "plain"))
    train.main(args + ["--use_pseudo", str(tmp / "stage1" / "pseudo")] + common(tmp, small_data_dir, "grown"))
    for task in TASKS:
        plain = torch.load(tmp / "cache_plain" / f"{task}_processed" / "train.pt", weights_only=True)
        grown = torch.load(tmp / "cache_grown" / f"{task}_processed" / "train.pt", weights_only=True)
        assert len(grown["ids"]) == len(plain["ids"]) + 1500
        val_plain = torch.load(tmp / "cache_plain" / f"{task}_processed" / "val.pt", weights_only=True)
        val_grown = torch.load(tmp / "cache_grown" / f"{task}_processed" / "val.pt", weights_only=True)
        assert val_plain["ids"] == val_grown["ids"]  # validation never sees pseudo rows


def test_checkpoints_hold_ema_weights_and_training_weights(stage1):
    tmp, _ = stage1
    checkpoint = tmp / "stage1" / "checkpoint-40"
    ema, raw = load_file(checkpoint / "model.safetensors"), load_file(checkpoint / "training_weights.safetensors")
    assert raw.keys() <= ema.keys()
    assert any(not torch.equal(ema[k], raw[k]) for k in raw)  # EMA (decay 0.9) lags the raw weights
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    assert state["best_metric"] is not None and state["global_step"] == 40


@pytest.mark.slow
def test_help_documents_every_flag():
    out = subprocess.run([sys.executable, str(REPO_ROOT / "code" / "train.py"), "--help"],
                         capture_output=True, text=True, check=True).stdout
    for cls in (ModelArguments, DataTrainingArguments, PredictionArguments):
        for f in dataclasses.fields(cls):
            assert f"--{f.name}" in out and f.metadata.get("help"), f.name
    for flag in ("--do_train", "--bf16", "--gradient_accumulation_steps", "--resume_from_checkpoint", "--debug",
                 "--ema_decay", "--ema_start_step"):
        assert flag in out


@pytest.mark.parametrize("call", ["evaluate", "predict_tasks"])
def test_evaluation_and_prediction_see_ema_weights_and_training_weights_come_back_bit_exactly(
        tmp_path, small_data_dir, tokenizer, call):
    from helpers import data_settings
    from mtl.args import MultiTaskTrainingArguments
    from mtl.cache import load_or_build_task
    from mtl.data import MultiTaskCollator, MultiTaskDataset, SingleTaskDataset
    from mtl.model import load_model
    from mtl.trainer import MultiTaskTrainer

    names = list(TASKS)
    model = load_model(None, str(TINY_CONFIG), competition_heads())
    val = MultiTaskDataset({t: SingleTaskDataset(load_or_build_task(TASKS[t], tokenizer, data_settings(
        tmp_path, small_data_dir, max_seq_length=32))["val"], i) for i, t in enumerate(names)})
    args = MultiTaskTrainingArguments(output_dir=str(tmp_path / "out"), report_to="none", eval_strategy="no",
                                      load_best_model_at_end=False, ema_decay=0.5)
    trainer = MultiTaskTrainer(model=model, args=args, eval_dataset=val, data_collator=MultiTaskCollator())
    with torch.no_grad():  # training moves the raw weights away from the EMA
        for p in model.parameters():
            p.mul_(1.0 / 3.0).add_(0.01)
    trainer.ema.update(1)
    trainer.is_in_train = True  # evaluation during training: outside it the model holds the EMA weights already
    raw = [p.detach().clone() for p in model.parameters()]
    head = model.heads["tnews"].classifier.weight
    head_index = next(i for i, p in enumerate(trainer.ema.params) if p is head)
    raw_head = raw[next(i for i, p in enumerate(model.parameters()) if p is head)]
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append(head.detach().clone()))
    result = trainer.evaluate() if call == "evaluate" else trainer.predict_tasks(val)
    assert seen and all(torch.equal(s, trainer.ema.shadow[head_index]) for s in seen)
    assert not torch.equal(trainer.ema.shadow[head_index], raw_head)
    assert all(torch.equal(p, r) for p, r in zip(model.parameters(), raw))
    if call == "predict_tasks":  # every validation row predicted, in file order
        assert {name: len(p.ids) for name, p in result.items()} == {name: len(val.datasets[name]) for name in names}


@pytest.mark.slow
def test_resume_from_checkpoint_continues_weights_and_ema(tmp_path, small_data_dir):
    args = ["--config_name", str(TINY_CONFIG), "--do_train", "--max_steps", "20", "--eval_strategy", "no", "--load_best_model_at_end", "false", "--ema_decay", "0.8",
            "--learning_rate", "1e-3"]
    train.main(args + common(tmp_path, small_data_dir, "full", save_steps=10))
    train.main(args + ["--resume_from_checkpoint", str(tmp_path / "full" / "checkpoint-10")]
               + common(tmp_path, small_data_dir, "resumed", save_steps=10))
    full, resumed = load_file(tmp_path / "full" / "model.safetensors"), load_file(tmp_path / "resumed" / "model.safetensors")
    for k in full:
        torch.testing.assert_close(resumed[k], full[k], rtol=0, atol=1e-6)


def test_same_seed_gives_the_same_scores(tmp_path, small_data_dir):
    args = ["--config_name", str(TINY_CONFIG), "--do_train", "--do_eval", "--max_steps", "8", "--eval_strategy", "no",
            "--load_best_model_at_end", "false", "--save_strategy", "no", "--learning_rate", "1e-3",
            "--train_sampling_strategy", "group_by_length"]
    first = train.main(args + common(tmp_path, small_data_dir, "seed_a"))
    second = train.main(args + common(tmp_path, small_data_dir, "seed_b"))
    keys = ["eval_ocnli", "eval_ocemotion", "eval_tnews", "eval_avg", "eval_loss"]
    assert [first[k] for k in keys] == [second[k] for k in keys]


def read_state(output_dir: Path) -> dict:
    return json.loads((output_dir / "trainer_state.json").read_text())


@pytest.mark.slow
def test_whole_epochs_evaluate_every_row_at_each_epoch_end_and_keep_the_best(tmp_path, small_data_dir):
    """The 2020 recipe's shape: integer epochs, evaluation and saving per epoch, the best checkpoint at the end.
    Training that ends exactly at an epoch boundary used to cut every evaluation batch to len(train) % batch."""
    metrics = train.main(["--config_name", str(TINY_CONFIG), "--do_train", "--do_eval", "--num_train_epochs", "2",
                          "--eval_strategy", "epoch", "--save_strategy", "epoch", "--learning_rate", "1e-3",
                          *common(tmp_path, small_data_dir, "epochs")])
    out = tmp_path / "epochs"
    state = read_state(out)
    steps_per_epoch = sum(-(-270 // 16) for _ in TASKS)  # 270 train rows per task after the 10% split
    assert state["global_step"] == 2 * steps_per_epoch
    evals = [e for e in state["log_history"] if "eval_avg" in e]
    assert [e["step"] for e in evals] == [steps_per_epoch, 2 * steps_per_epoch]
    assert (out / f"checkpoint-{steps_per_epoch}").is_dir() and (out / "model.safetensors").exists()
    best = max(evals, key=lambda e: e["eval_avg"])
    assert state["best_global_step"] == best["step"]
    # the final evaluation is of the best checkpoint's (EMA) weights, on all 90 validation rows of each task
    for key in ("eval_ocnli", "eval_ocemotion", "eval_tnews", "eval_avg", "eval_loss"):
        assert metrics[key] == pytest.approx(best[key], abs=1e-12)


@pytest.mark.slow
def test_a_rerun_into_the_same_output_dir_resumes_from_its_last_checkpoint(tmp_path, small_data_dir):
    """run_glue's rule, with an epoch boundary inside the run: the interrupted-and-rerun result equals the
    uninterrupted one (the sampler must see the resumed epoch's number, not start again from 0)."""
    args = ["--config_name", str(TINY_CONFIG), "--do_train", "--eval_strategy", "no", "--load_best_model_at_end",
            "false", "--learning_rate", "1e-3", "--lr_scheduler_type", "constant", "--ema_decay", "0.8"]
    steps_per_epoch = sum(-(-270 // 16) for _ in TASKS)
    train.main(args + ["--num_train_epochs", "2"] + common(tmp_path, small_data_dir, "whole", save_steps=1000))
    # "preempted" after the first epoch, then the same command again (now for both epochs)
    train.main(args + ["--num_train_epochs", "1"] + common(tmp_path, small_data_dir, "rerun", save_steps=1000))
    assert read_state(tmp_path / "rerun")["global_step"] == steps_per_epoch
    train.main(args + ["--num_train_epochs", "2"] + common(tmp_path, small_data_dir, "rerun", save_steps=1000))
    assert read_state(tmp_path / "rerun")["global_step"] == 2 * steps_per_epoch
    whole, rerun = load_file(tmp_path / "whole" / "model.safetensors"), load_file(tmp_path / "rerun" / "model.safetensors")
    for k in whole:
        torch.testing.assert_close(rerun[k], whole[k], rtol=0, atol=1e-6)


def test_resume_rule_true_overwrite_and_no_checkpoint(tmp_path):
    from mtl.args import MultiTaskTrainingArguments

    def args(**kw):
        return MultiTaskTrainingArguments(output_dir=str(tmp_path), report_to="none", do_train=True, **kw)

    assert train.checkpoint_to_resume(args()) is None  # nothing to resume from
    for step in (5, 40):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
        mark_complete(tmp_path / f"checkpoint-{step}")  # a checkpoint counts once complete (mtl/checkpoints.py)
    assert train.checkpoint_to_resume(args()) == str(tmp_path / "checkpoint-40")
    assert train.checkpoint_to_resume(args(overwrite_output_dir=True)) is None
    # true: the newest complete checkpoint, resolved here (the Trainer's own rule would take an incomplete one)
    assert train.checkpoint_to_resume(args(resume_from_checkpoint="true")) == str(tmp_path / "checkpoint-40")
    parsed = train.parse_args(["--resume_from_checkpoint", "True", "--output_dir", str(tmp_path)])[-1]
    assert parsed.resume_from_checkpoint is True


def test_resume_from_checkpoint_true_without_a_checkpoint_says_so(tmp_path, small_data_dir):
    with pytest.raises(ValueError, match="No valid checkpoint"):
        train.main(["--config_name", str(TINY_CONFIG), "--do_train", "--max_steps", "2", "--resume_from_checkpoint",
                    "true", *common(tmp_path, small_data_dir, "none")])


def ema_args(tmp: Path, data_dir: Path, out: str, *extra: str) -> list[str]:
    return ["--config_name", str(TINY_CONFIG), "--do_train", "--max_steps", "20", "--learning_rate", "1e-3",
            "--ema_decay", "0.9", *common(tmp, data_dir, out, save_steps=10 if "--eval_steps" in extra else 20), *extra]


def test_the_final_model_is_the_ema_not_the_raw_training_weights(tmp_path, small_data_dir):
    train.main(ema_args(tmp_path, small_data_dir, "ema", "--eval_strategy", "no", "--load_best_model_at_end", "false"))
    final = load_file(tmp_path / "ema" / "model.safetensors")
    checkpoint = tmp_path / "ema" / "checkpoint-20"
    ema, raw = load_file(checkpoint / "model.safetensors"), load_file(checkpoint / "training_weights.safetensors")
    assert all(torch.equal(final[k], ema[k]) for k in ema)
    assert any(not torch.equal(final[k], raw[k]) for k in raw)


def test_the_best_checkpoint_reload_keeps_its_ema_as_the_final_model(tmp_path, small_data_dir):
    """The best checkpoint is not the last one here (the highest eval loss is taken as "best": the first
    evaluation's); the final model must be that checkpoint's EMA, not the EMA of the last step."""
    train.main(ema_args(tmp_path, small_data_dir, "best", "--eval_steps", "10", "--metric_for_best_model", "loss",
                        "--greater_is_better", "true"))
    state = json.loads((tmp_path / "best" / "trainer_state.json").read_text())
    assert state["best_global_step"] == 10 and state["global_step"] == 20
    final = load_file(tmp_path / "best" / "model.safetensors")
    best, last = (load_file(tmp_path / "best" / f"checkpoint-{s}" / "model.safetensors") for s in (10, 20))
    assert all(torch.equal(final[k], best[k]) for k in best)
    assert any(not torch.equal(final[k], last[k]) for k in last)
