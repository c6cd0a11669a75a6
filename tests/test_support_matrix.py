"""The pairwise support-matrix test: every pair of the CPU-testable options' values appears in at least one short
run of the tiny model through the real train.py (a covering array, CELLS), and each run checks invariants, not just
its exit status:

- every training row exactly once per epoch, over all processes (proportional sampling without PCGrad; PCGrad:
  every step holds a batch of every task), every process the same batches per epoch, that count the Trainer's;
- the same optimizer steps on every process, the whole epochs' number, and the same trained weights (EMA) on all;
- finite training losses;
- an evaluation-only run of the saved model in one process equal to the run's own final evaluation;
- where the cell resumes: a run resumed from a mid-run checkpoint ends with the uninterrupted run's weights.

Combinations that are refused (REFUSED) are run too and must fail at start-up with their one line, writing nothing.
docs/support-matrix.md shows the same table (checked below)."""
from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import train
from helpers import REPO_ROOT, TINY_CONFIG, TOKENIZER_DIR, run_torchrun
from matrix.matrix_runner import recording
from mtl.errors import UsageError

OPTIONS = {
    "launcher": ["python", "torchrun2"],
    "precision": ["fp32", "bf16"],
    "full_eval": ["no", "bf16"],
    "accumulation": ["1", "2"],
    "checkpointing": ["off", "on"],
    "batching": ["rows", "tokens"],
    "sampling": ["proportional", "temperature", "uniform"],
    "weights": ["off", "on"],
    "pcgrad": ["off", "on"],
    "compile": ["off", "on"],
    "freeze": ["off", "on"],
    "ema": ["off", "on"],
    "logit_adjustment": ["0", "1"],
    "eval_in_training": ["off", "steps"],
    "resume": ["no", "yes"],
    "adversarial": ["no", "fgm", "pgd"],
    "rdrop": ["0", "1"],
    "multi_sample_dropout": ["1", "3"],
    "layerwise_lr_decay": ["1", "0.8"],
    "split": ["ratio", "fold"],
}

# A covering array of the valid combinations (generated greedily, then frozen here; test_cells_cover_every_pair
# proves it covers every pair). One row per run, columns in OPTIONS' order.
CELLS = [line.split() for line in """
python    fp32 no   1 on  rows   proportional on  off off off off 0 off   no  no  0 1 0.8 fold
torchrun2 bf16 bf16 2 off tokens uniform      off off off off on  1 steps yes pgd 1 3 1   ratio
python    fp32 bf16 1 off rows   proportional off on  on  off off 1 steps yes no  1 3 0.8 fold
torchrun2 bf16 no   2 on  tokens temperature  off off on  on  on  0 off   no  no  0 1 1   ratio
torchrun2 bf16 no   1 off rows   proportional on  on  on  off on  1 off   no  no  1 1 1   ratio
python    fp32 bf16 2 on  tokens uniform      on  off on  on  off 0 steps no  no  0 3 1   fold
python    bf16 bf16 1 off tokens temperature  on  off off off off 0 off   yes fgm 1 3 0.8 ratio
python    fp32 no   2 on  rows   temperature  on  off off off on  1 steps yes pgd 0 1 0.8 fold
torchrun2 fp32 no   1 off rows   uniform      on  off off off off 1 off   no  fgm 0 1 0.8 fold
python    bf16 bf16 2 on  tokens proportional on  off off on  off 0 steps no  no  1 1 0.8 fold
python    bf16 no   1 on  rows   proportional on  on  off off off 0 steps no  no  0 3 0.8 fold
python    bf16 bf16 1 on  tokens uniform      on  off off off on  1 off   no  fgm 1 1 1   fold
python    fp32 bf16 2 on  rows   proportional on  off off off off 0 off   no  pgd 1 3 0.8 ratio
python    bf16 bf16 1 off rows   proportional on  off off on  off 1 off   yes no  0 1 1   ratio
python    fp32 no   2 on  tokens proportional off off on  off on  0 steps no  fgm 0 3 0.8 ratio
python    bf16 bf16 1 off tokens proportional off off on  off on  0 steps yes pgd 1 3 0.8 ratio
""".strip().splitlines()]

# Pairs refused at start-up (option, value, option, value) -> a piece of the one-line message.
REFUSED = {
    ("pcgrad", "on", "batching", "tokens"): "does not combine with --max_tokens_per_batch",
    ("pcgrad", "on", "accumulation", "2"): "--gradient_accumulation_steps 1",
    ("pcgrad", "on", "freeze", "on"): "drop --pcgrad for a heads-only stage",
    ("pcgrad", "on", "sampling", "temperature"): "--task_sampling temperature",
    ("pcgrad", "on", "sampling", "uniform"): "--task_sampling uniform",
    ("adversarial", "fgm", "pcgrad", "on"): "does not combine with --pcgrad",
    ("adversarial", "pgd", "pcgrad", "on"): "does not combine with --pcgrad",
    ("adversarial", "fgm", "freeze", "on"): "drop --adversarial for a heads-only stage",
    ("adversarial", "pgd", "freeze", "on"): "drop --adversarial for a heads-only stage",
}

ROWS_PER_TASK = 48  # --max_train_samples: 144 training rows, 2 epochs of a few steps
SAVE_STEPS = 3
TASK_STARTS = [0, ROWS_PER_TASK, 2 * ROWS_PER_TASK]


def cell_id(cell: list[str]) -> str:
    return "-".join(f"{k}={v}" for k, v in zip(OPTIONS, cell) if v not in ("off", "no", "0", "1", "fp32", "rows",
                                                                             "proportional", "python"))


def refused(values: dict[str, str]) -> list[str]:
    return [message for (a, va, b, vb), message in REFUSED.items() if values[a] == va and values[b] == vb]


def test_cells_cover_every_pair_of_option_values_and_hold_no_refused_pair():
    rows = [dict(zip(OPTIONS, cell)) for cell in CELLS]
    assert all(len(cell) == len(OPTIONS) and all(v in OPTIONS[k] for k, v in zip(OPTIONS, cell)) for cell in CELLS)
    assert not [r for r in rows if refused(r)]
    for a, b in itertools.combinations(OPTIONS, 2):
        for va, vb in itertools.product(OPTIONS[a], OPTIONS[b]):
            if (a, va, b, vb) in REFUSED or (b, vb, a, va) in REFUSED:
                continue
            assert any(r[a] == va and r[b] == vb for r in rows), f"no cell runs {a}={va} with {b}={vb}"


def test_the_documented_matrix_is_the_tested_one():
    doc = (REPO_ROOT / "docs" / "support-matrix.md").read_text(encoding="utf-8")
    table = doc.split("<!-- pairwise cells -->")[1].strip().split("\n\n")[0]  # up to the first blank line
    documented = [[c.strip().strip("`") for c in line.strip().strip("|").split("|")][1:]
                  for line in table.splitlines()[2:]]
    assert documented == CELLS
    for a, va, b, vb in REFUSED:
        assert f"{a}={va}" in doc and f"{b}={vb}" in doc


def flags(values: dict[str, str]) -> list[str]:
    """The flags a training run and the evaluation-only run of its model share."""
    out = ["--bf16", "true"] if values["precision"] == "bf16" else []
    if values["split"] == "fold":
        out += ["--num_folds", "3", "--fold", "1"]
    if values["full_eval"] == "bf16":
        out += ["--bf16_full_eval", "true"]
    if values["compile"] == "on":
        out += ["--torch_compile", "true", "--torch_compile_backend", "aot_eager", "--pad_to_multiple_of", "32"]
    return out


def train_flags(values: dict[str, str]) -> list[str]:
    out = ["--gradient_accumulation_steps", values["accumulation"], "--task_sampling", values["sampling"],
           "--logit_adjustment", values["logit_adjustment"], "--save_steps", str(SAVE_STEPS),
           "--save_total_limit", "20"]
    if values["checkpointing"] == "on":
        out += ["--activation_checkpointing", "true"]
    if values["batching"] == "tokens":
        out += ["--max_tokens_per_batch", "400"]
    if values["weights"] == "on":
        out += ["--task_loss_weights", "ocemotion=1.5,tnews=0.5"]
    if values["pcgrad"] == "on":
        out += ["--pcgrad", "true"]
    if values["freeze"] == "on":
        out += ["--freeze", "true"]
    out += ["--ema_decay", "0.9", "--ema_start_step", "2"] if values["ema"] == "on" else ["--ema_decay", "0"]
    out += ["--eval_strategy", "steps", "--eval_steps", str(SAVE_STEPS)] if values["eval_in_training"] == "steps" \
        else ["--eval_strategy", "no"]
    if values["adversarial"] != "no":
        out += ["--adversarial", values["adversarial"], "--adversarial_steps", "2"]
    out += ["--rdrop_alpha", values["rdrop"], "--multi_sample_dropout", values["multi_sample_dropout"],
            "--layerwise_lr_decay", values["layerwise_lr_decay"]]
    return out + flags(values)


def data_flags(tmp: Path, data_dir: Path) -> list[str]:
    return ["--data_dir", str(data_dir), "--cleaned_dir", str(tmp / "cleaned"), "--data_save_dir", str(tmp / "cache"),
            "--tokenizer_dir", str(TOKENIZER_DIR), "--max_seq_length", "64", "--report_to", "none",
            "--disable_tqdm", "true"]


def run_args(tmp: Path, data_dir: Path, out: str, values: dict[str, str]) -> list[str]:
    return ["--config_name", str(TINY_CONFIG), "--do_train", "--do_eval", "--num_train_epochs", "2",
            "--max_train_samples", str(ROWS_PER_TASK), "--per_device_train_batch_size", "16", "--learning_rate", "1e-3",
            "--logging_steps", "2", "--output_dir", str(tmp / out), *data_flags(tmp, data_dir), *train_flags(values)]


def launch(values: dict[str, str], args: list[str], record_dir: Path) -> list[dict]:
    """Run train.py as the cell's launcher says; return each process's record."""
    if values["launcher"] == "python":
        record: dict = {}
        with recording(record):
            train.main(args)
        torch._dynamo.reset()
        return [record]
    env = dict(os.environ, OMP_NUM_THREADS="1", MATRIX_RECORD=str(record_dir),
               PYTHONPATH=os.pathsep.join([str(REPO_ROOT / "code"), str(REPO_ROOT / "tests")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(REPO_ROOT / "tests" / "matrix" / "matrix_runner.py"), *args]
    result = run_torchrun(cmd, env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return [json.loads((record_dir / f"rank{r}.json").read_text()) for r in range(2)]


def check_epochs(values: dict[str, str], records: list[dict], global_step: int) -> None:
    epochs = [r["epochs"] for r in records]
    assert all(len(e) == 2 for e in epochs), [len(e) for e in epochs]  # two whole epochs, nothing more
    per_epoch = {len(batches) for rank in epochs for batches in rank}
    assert len(per_epoch) == 1, f"epochs or processes differ in batch count: {per_epoch}"
    accumulation = int(values["accumulation"])
    assert global_step == 2 * math.ceil(per_epoch.pop() / accumulation)
    task_of = lambda i: max(t for t, s in enumerate(TASK_STARTS) if i >= s)  # noqa: E731
    for e in range(2):
        steps = list(zip(*(rank[e] for rank in epochs)))  # step -> each process's batch
        if values["pcgrad"] == "on":
            assert all({task_of(i) for batch in step for i in batch} == {0, 1, 2} for step in steps)
        else:  # every process trains the same task in a step
            assert all(len({task_of(i) for batch in step for i in batch}) == 1 for step in steps)
        if values["sampling"] == "proportional" and values["pcgrad"] == "off":
            rows = sorted(i for step in steps for batch in step for i in batch)
            assert rows == list(range(3 * ROWS_PER_TASK)), f"epoch {e}: training rows not seen exactly once"


@pytest.mark.slow
@pytest.mark.parametrize("cell", CELLS, ids=[cell_id(c) for c in CELLS])
def test_cell_trains_with_every_invariant(cell, tmp_path, small_data_dir):
    values = dict(zip(OPTIONS, cell))
    records = launch(values, run_args(tmp_path, small_data_dir, "run", values), tmp_path / "record")
    out = tmp_path / "run"
    state = json.loads((out / "trainer_state.json").read_text())
    assert {r["global_step"] for r in records} == {state["global_step"]}  # every process, the same steps
    check_epochs(values, records, state["global_step"])
    assert all(r["checksums"] == records[0]["checksums"] for r in records), "processes hold different weights"
    losses = [h["loss"] for h in state["log_history"] if "loss" in h]
    assert losses and all(math.isfinite(x) for x in losses)

    own = json.loads((out / "eval_results.json").read_text())
    alone = train.main(["--model_name_or_path", str(out), "--do_eval", "--output_dir", str(tmp_path / "eval_only"),
                        *data_flags(tmp_path, small_data_dir), *flags(values)])
    torch._dynamo.reset()
    for key in ("eval_avg", "eval_loss", "eval_ocnli", "eval_ocemotion", "eval_tnews"):
        assert alone[key] == pytest.approx(own[key], abs=1e-5), key

    if values["resume"] == "yes":  # stopped after the first checkpoint, then the same command again
        shutil.copytree(out / f"checkpoint-{SAVE_STEPS}", tmp_path / "resumed" / f"checkpoint-{SAVE_STEPS}")
        launch(values, run_args(tmp_path, small_data_dir, "resumed", values), tmp_path / "record_resumed")
        whole, resumed = load_file(out / "model.safetensors"), load_file(tmp_path / "resumed" / "model.safetensors")
        assert whole.keys() == resumed.keys()
        for k in whole:
            torch.testing.assert_close(resumed[k], whole[k], rtol=0, atol=1e-6)


@pytest.mark.parametrize("pair", list(REFUSED), ids=["-".join(p) for p in REFUSED])
def test_refused_pair_fails_at_start_up_in_one_line(pair, tmp_path, small_data_dir):
    values = dict(zip(OPTIONS, CELLS[0]))  # a working cell, then the refused pair
    a, va, b, vb = pair
    values.update({a: va, b: vb})
    with pytest.raises(UsageError) as err:
        train.main(run_args(tmp_path, small_data_dir, "run", values))
    assert REFUSED[pair] in str(err.value) and "\n" not in str(err.value)
    assert not any(tmp_path.iterdir()), "a refused run wrote something"
