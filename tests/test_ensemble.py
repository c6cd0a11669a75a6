"""code/ensemble.py on the two fold models of a --num_folds 2 split trained by train.py: the ensemble of one run is
that run, two folds average and pool their out-of-fold predictions, out-of-fold weights follow the folds' scores, and
inputs that do not match are refused in one line with nothing written."""
from __future__ import annotations

import json
import re
import shutil
import zipfile

import numpy as np
import pytest
from sklearn.metrics import f1_score

import ensemble
import train
from helpers import TINY_CONFIG, common
from mtl.errors import run_cli
from mtl.probabilities import read_probabilities
from mtl.tasks import TASKS


@pytest.fixture(scope="module")
def folds(tmp_path_factory, small_data_dir):
    """Folds 0 and 1 of 2, each evaluated (oof/) and predicting test A into its own model folder."""
    tmp = tmp_path_factory.mktemp("folds")
    dirs = []
    for k in range(2):
        args = common(tmp, small_data_dir, f"fold{k}")
        args[args.index("--prediction_dir") + 1] = str(tmp / f"fold{k}")
        train.main(["--config_name", str(TINY_CONFIG), "--do_train", "--do_eval", "--do_predict", "--max_steps", "4",
                    "--learning_rate", "3e-3", "--eval_strategy", "no", "--save_strategy", "no", "--pseudo", "false",
                    "--num_folds", "2", "--fold", str(k), "--seed", str(k), *args])
        dirs.append(tmp / f"fold{k}")
    return dirs


def refused(*argv: str) -> str:
    """ensemble.py's one-line error for `argv` (as its CLI prints it)."""
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda: ensemble.main(list(argv)), "ensemble.py")
    message = str(exit_info.value.code)
    assert message.startswith("ensemble.py: error: ") and "\n" not in message
    return message


def test_the_ensemble_of_one_run_is_that_run(folds, tmp_path):
    out = tmp_path / "one"
    ensemble.main([str(folds[0]), "--output_dir", str(out)])
    for task in TASKS:
        assert (out / f"{task}_predict.json").read_bytes() == (folds[0] / f"{task}_predict.json").read_bytes()
        assert (out / f"{task}_probs.csv").read_bytes() == (folds[0] / f"{task}_probs.csv").read_bytes()
        assert (out / "oof" / f"{task}_oof.csv").read_bytes() == (folds[0] / "oof" / f"{task}_oof.csv").read_bytes()
    with zipfile.ZipFile(out / "submit.zip") as ours, zipfile.ZipFile(folds[0] / "submit.zip") as theirs:
        assert {n: ours.read(n) for n in ours.namelist()} == {n: theirs.read(n) for n in theirs.namelist()}


def test_runs_are_matched_by_id_and_label_not_by_position(folds, tmp_path):
    """A run with its rows and columns in another order (its file rewritten) beside the run itself: the ensemble is
    the run (the files keep the first run's order)."""
    shuffled = tmp_path / "shuffled"
    shutil.copytree(folds[0], shuffled)
    lines = (shuffled / "tnews_probs.csv").read_text().splitlines()
    header, rows = lines[0].split(","), [line.split(",") for line in lines[1:]]
    order = [0, *reversed(range(1, len(header)))]  # id first, the classes reversed
    text = "\n".join(",".join(row[i] for i in order) for row in [header, *reversed(rows)]) + "\n"
    (shuffled / "tnews_probs.csv").write_text(text)
    ensemble.main([str(folds[0]), str(shuffled), "--output_dir", str(tmp_path / "out")])
    assert (tmp_path / "out" / "tnews_predict.json").read_bytes() == (folds[0] / "tnews_predict.json").read_bytes()


def test_two_folds_average_and_pool_their_out_of_fold_predictions(folds, tmp_path, capsys):
    out = tmp_path / "two"
    results = {r.task: r for r in ensemble.main([*map(str, folds), "--output_dir", str(out)])}
    table = capsys.readouterr().out.splitlines()
    assert [row.split(" | ")[0] for row in table[2:]] == [f"| {folds[0]}", f"| {folds[1]}", "| ensemble"]
    evals = [json.loads((f / "eval_results.json").read_text()) for f in folds]
    for task in TASKS:
        runs = [read_probabilities(f / f"{task}_probs.csv") for f in folds]
        mean = read_probabilities(out / f"{task}_probs.csv")
        assert mean.ids == runs[0].ids and np.allclose(mean.values, (runs[0].values + runs[1].values) / 2, atol=1e-8)
        lines = [json.loads(line) for line in (out / f"{task}_predict.json").read_text().splitlines()]
        assert [line["label"] for line in lines] == [mean.labels[k] for k in mean.label_ids()]
        # each fold scored on its own validation rows as train.py scored it
        assert results[task].member_scores == pytest.approx([e[f"eval_{task}"] for e in evals])
        # the pooled out-of-fold predictions: every train row once, from the fold that held it out
        oofs = [read_probabilities(f / "oof" / f"{task}_oof.csv") for f in folds]
        pooled = read_probabilities(out / "oof" / f"{task}_oof.csv")
        assert pooled.ids == oofs[0].ids + oofs[1].ids and not set(oofs[0].ids) & set(oofs[1].ids)
        assert np.allclose(pooled.values, np.concatenate([o.values for o in oofs]), atol=1e-8)
        gold = [pooled.labels.index(g) for g in pooled.gold]
        assert results[task].score == pytest.approx(f1_score(gold, pooled.label_ids(), average="macro"))
    with zipfile.ZipFile(out / "submit.zip") as archive:
        assert sorted(archive.namelist()) == sorted(f"{t}_predict.json" for t in TASKS)


def test_oof_weights_follow_each_folds_score(folds, tmp_path):
    """Run r's weight on task t: s(r, t) / sum over runs of s(r, t), s its score on its own validation rows."""
    results = ensemble.main([*map(str, folds), "--output_dir", str(tmp_path / "w"), "--weights", "oof"])
    evals = [json.loads((f / "eval_results.json").read_text()) for f in folds]
    for r in results:
        scores = np.array([e[f"eval_{r.task}"] for e in evals])
        assert r.weights == pytest.approx(scores / scores.sum())
        runs = [read_probabilities(f / f"{r.task}_probs.csv").values for f in folds]
        assert np.allclose(r.test.values, r.weights[0] * runs[0] + r.weights[1] * runs[1])
    summary = json.loads((tmp_path / "w" / "ensemble.json").read_text())
    assert summary["weights"] == "oof" and summary["tasks"]["tnews"]["weights"] == pytest.approx(results[2].weights)


def edited_copy(run, tmp_path, name, edit):
    copy = tmp_path / name
    shutil.copytree(run, copy)
    path = copy / "tnews_probs.csv"
    path.write_text(edit(path.read_text()))
    return copy


@pytest.mark.parametrize("edit, message", [
    (lambda text: "".join(text.splitlines(keepends=True)[:-1]), "tnews: .* holds 1499 ids, .* 1500, not the same"),
    (lambda text: text.replace("id,100,", "id,99,", 1), "tnews: .* has the labels .*'99'.*: an ensemble averages runs "
                                                         "of the same label set"),
    (lambda text: "\n".join(line + ",0.5" * (i == 1) for i, line in enumerate(text.split("\n"))),
     r"tnews_probs.csv, line 2: not a row of probabilities \(17 fields, the header has 16\)"),
])
def test_runs_that_do_not_match_are_refused_with_nothing_written(folds, tmp_path, edit, message):
    bad = edited_copy(folds[1], tmp_path, "bad", edit)
    assert re.search(message, refused(str(folds[0]), str(bad), "--output_dir", str(tmp_path / "out")))
    assert not (tmp_path / "out").exists()


def test_other_mistakes_are_one_line(folds, tmp_path):
    no_oof = tmp_path / "no_oof"
    shutil.copytree(folds[1], no_oof, ignore=shutil.ignore_patterns("oof"))
    out = str(tmp_path / "out")
    assert "--weights oof: " in refused(str(folds[0]), str(no_oof), "--output_dir", out, "--weights", "oof")
    assert "holds one of the runs" in refused(str(folds[0]), str(folds[1]), "--output_dir", str(folds[1]))
    debug = tmp_path / "debug"
    shutil.copytree(folds[1], debug)
    (debug / "submit.zip").rename(debug / "submit_PARTIAL_debug.zip")
    assert "a --debug run's predictions" in refused(str(folds[0]), str(debug / "tnews_probs.csv"), "--output_dir", out)
    assert "given twice" in refused(str(folds[0]), str(folds[0]) + "/", "--output_dir", out)
    assert "holds no TASK_probs.csv file" in refused(str(tmp_path), "--output_dir", out)
    assert "no such file or directory" in refused(str(tmp_path / "missing"), "--output_dir", out)
    assert "give test probabilities" in refused(str(folds[0] / "oof" / "tnews_oof.csv"), "--output_dir", out)
    assert "invalid choice" in refused(str(folds[0]), "--output_dir", out, "--weights", "best")
    assert not (tmp_path / "out").exists()
