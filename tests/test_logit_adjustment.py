"""Post-hoc logit adjustment: evaluation, prediction and saved models lower each class's logit by tau * log(its
train-split frequency); training sees the raw logits; train.py records the priors and tau in the model's config."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from transformers import BertConfig

import train
from helpers import REPO_ROOT, TINY_CONFIG, common, numbered_heads
from mtl.errors import UsageError
from mtl.labels import IGNORE_LABEL, class_frequencies
from mtl.model import BertMultiTaskModel, load_model, multitask_config
from mtl.predictor import Predictor

IDS = torch.tensor([[101, 791, 1921, 3698, 102], [101, 1921, 3698, 4696, 102]])


def test_class_frequencies_are_smoothed_shares_of_the_labelled_rows():
    # class 2 never appears: it keeps a finite share; prediction rows (IGNORE_LABEL) are not counted
    assert class_frequencies([0, 0, 0, 1, IGNORE_LABEL, IGNORE_LABEL], 3) == pytest.approx([4 / 7, 2 / 7, 1 / 7])


def adjusted_model(tau: float) -> BertMultiTaskModel:
    torch.manual_seed(0)
    config = BertConfig.from_pretrained(str(TINY_CONFIG), hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    config = multitask_config(config, numbered_heads(ocnli=3, tnews=4))
    config.tasks[0].class_priors, config.tasks[1].class_priors = [0.2, 0.3, 0.5], [0.7, 0.1, 0.1, 0.1]
    config.logit_adjustment = tau
    return BertMultiTaskModel(config)


def test_inference_lowers_logits_by_tau_log_prior_and_training_sees_raw_logits():
    model = adjusted_model(0.5)
    labels = torch.tensor([0, 1])
    with torch.no_grad():
        raw = model.train()(input_ids=IDS, task_id=1, labels=labels)
        adjusted = model.eval()(input_ids=IDS, task_id=1, labels=labels)
    prior = torch.tensor([0.7, 0.1, 0.1, 0.1])
    torch.testing.assert_close(adjusted.logits, raw.logits - 0.5 * prior.log())
    # the loss stays the training objective's (raw logits) in both modes
    torch.testing.assert_close(adjusted.loss, raw.loss)
    # the frequent class loses the most: its logit moves down relative to every rare class
    shift = adjusted.logits - raw.logits
    assert (shift[:, 0:1] < shift[:, 1:]).all()
    model.config.logit_adjustment = 0.0
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=IDS, task_id=1).logits, raw.logits)


def test_saved_model_and_predictor_apply_the_adjustment(tmp_path, tokenizer):
    model = adjusted_model(1.0).eval()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded = load_model(str(tmp_path), None, numbered_heads(tnews=4)).eval()
    assert loaded.config.logit_adjustment == 1.0
    assert [t.class_priors for t in loaded.config.tasks] == [[0.2, 0.3, 0.5], [0.7, 0.1, 0.1, 0.1]]
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=IDS, task_id=0).logits, model(input_ids=IDS, task_id=0).logits,
                                   rtol=0, atol=1e-6)
        raw = model.train()(input_ids=IDS[:1], task_id=1).logits  # dropout is off: the same logits, unadjusted
        prior = torch.tensor(model.config.tasks[1].class_priors)
        expected = torch.softmax(raw - prior.log(), -1)[0]
    # what a user of a trained model gets: the adjusted probabilities
    predicted = Predictor.from_pretrained(str(tmp_path)).predict("tnews", [tokenizer.decode(IDS[0, 1:-1])], top_k=4)
    best = int(expected.argmax())
    assert predicted[0].label == model.config.head("tnews").labels[best]
    assert predicted[0].probability == pytest.approx(float(expected[best]), abs=1e-5)


def read_config(path):
    return json.loads((path / "config.json").read_text())


@pytest.mark.slow
def test_train_py_records_train_split_priors_and_tau_and_later_stages_keep_them(tmp_path, small_data_dir):
    tiny = ["--max_steps", "4", "--eval_strategy", "no", "--load_best_model_at_end", "false", "--save_strategy", "no"]
    train.main(["--config_name", str(TINY_CONFIG), "--do_train", "--logit_adjustment", "0.3", *tiny,
                *common(tmp_path, small_data_dir, "stage1")])
    config = read_config(tmp_path / "stage1")
    assert config["logit_adjustment"] == 0.3
    for task in config["tasks"]:
        cache = tmp_path / "cache_stage1" / f"{task['name']}_processed" / "train.pt"
        counts = torch.bincount(torch.load(cache, weights_only=True)["labels"], minlength=len(task["labels"])) + 1
        assert task["class_priors"] == pytest.approx((counts / counts.sum()).tolist(), abs=1e-6)
    # stage 2 without the flag keeps the checkpoint's tau; giving it sets it
    train.main(["--model_name_or_path", str(tmp_path / "stage1"), "--freeze", "--do_train", *tiny,
                *common(tmp_path, small_data_dir, "stage2")])
    assert read_config(tmp_path / "stage2")["logit_adjustment"] == 0.3
    train.main(["--model_name_or_path", str(tmp_path / "stage1"), "--freeze", "--do_train", "--logit_adjustment", "0",
                *tiny, *common(tmp_path, small_data_dir, "stage2b")])
    assert read_config(tmp_path / "stage2b")["logit_adjustment"] == 0.0


@pytest.mark.slow
def test_evaluation_scores_the_adjusted_predictions(tmp_path, small_data_dir):
    args = ["--config_name", str(TINY_CONFIG), "--do_train", "--do_eval", "--max_steps", "20", "--learning_rate",
            "1e-3", "--ema_decay", "0", "--eval_strategy", "no", "--load_best_model_at_end", "false",
            "--save_strategy", "no"]
    plain = train.main([*args, *common(tmp_path, small_data_dir, "plain")])
    # a strong adjustment moves predictions toward the rare classes: the evaluated argmax changes
    strong = train.main(["--model_name_or_path", str(tmp_path / "plain"), "--do_eval", "--logit_adjustment", "5",
                         *common(tmp_path, small_data_dir, "strong")])
    assert strong["eval_tnews"] != plain["eval_tnews"]
    # bench/logit_adjustment.py's sweep scores what train.py's evaluation scores, tau for tau
    sweep = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "logit_adjustment.py"), "--model",
                            str(tmp_path / "plain"), "--data_save_dir", str(tmp_path / "cache_plain"), "--data_dir",
                            str(small_data_dir), "--max_seq_length", "64", "--taus", "0,5"],
                           capture_output=True, text=True, check=True).stdout
    rows = {line.split("|")[2].strip(): line.split("|")[6].strip() for line in sweep.splitlines()
            if line.startswith("| all |")}
    assert rows == {"0.0": f"{plain['eval_avg']:.4f}", "5.0": f"{strong['eval_avg']:.4f}"}


def test_a_negative_tau_is_one_usage_error(tmp_path, small_data_dir):
    with pytest.raises(UsageError, match="--logit_adjustment -1"):
        train.main(["--config_name", str(TINY_CONFIG), "--do_train", "--logit_adjustment", "-1",
                    *common(tmp_path, small_data_dir, "neg")])
