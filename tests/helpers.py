"""Constants and helpers the tests share (pytest puts tests/ and code/ on the path: pyproject.toml)."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import warnings
from pathlib import Path

from mtl.args import DataTrainingArguments
from mtl.cache import DataSettings
from mtl.heads import TaskHead
from mtl.labels import label2id_for
from mtl.tasks import TASKS

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "tcdata"
TOKENIZER_DIR = REPO_ROOT / "code" / "assets" / "tokenizer"
TINY_CONFIG = REPO_ROOT / "code" / "assets" / "configs" / "tiny.json"


def data_settings(tmp: Path, data_dir: Path = DATA_DIR, **overrides) -> DataSettings:
    """The data settings train.py builds from its arguments (`overrides`: DataTrainingArguments fields), with every
    output in `tmp`."""
    values = dict(data_dir=str(data_dir), cleaned_dir=str(tmp / "cleaned"), data_save_dir=str(tmp / "cache"),
                  tokenizer_dir=str(TOKENIZER_DIR))
    values.update(overrides)
    return DataTrainingArguments(**values).data_settings()


def common(tmp: Path, data_dir: Path, out: str, save_steps: int = 20) -> list[str]:
    """train.py arguments that keep a run's files under `tmp` (named by `out`) and its model tiny and quick."""
    return ["--data_dir", str(data_dir), "--cleaned_dir", str(tmp / "cleaned"),
            "--data_save_dir", str(tmp / f"cache_{out}"), "--tokenizer_dir", str(TOKENIZER_DIR),
            "--output_dir", str(tmp / out), "--prediction_dir", str(tmp / f"pred_{out}"),
            "--max_seq_length", "64", "--per_device_train_batch_size", "16", "--logging_steps", "10",
            "--eval_steps", "20", "--save_steps", str(save_steps), "--report_to", "none", "--disable_tqdm", "true"]


def numbered_heads(**classes: int) -> list[TaskHead]:
    """Task heads whose labels are their class ids, in the order given: numbered_heads(ocnli=3, tnews=15)."""
    return [TaskHead(name, [str(i) for i in range(n)]) for name, n in classes.items()]


def competition_heads() -> list[TaskHead]:
    """The heads train.py gives the competition's three tasks (OCNLI, OCEMOTION, TNEWS)."""
    return [task.head(label2id_for(task.labels)) for task in TASKS.values()]


def run_torchrun(cmd: list[str], env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess:
    """Run a torchrun command line; a launch that hangs past `timeout` is dumped and tried once more.

    On a hang every process of the launch gets SIGABRT, which with PYTHONFAULTHANDLER=1 prints each thread's Python
    stack to stderr before it dies; the dump goes into a pytest warning (and, if the second launch hangs too, into
    the failure). A hang after the run's work is done was seen once on a loaded CI machine (gloo, 2 processes on 2
    cores) and never reproduced; the retry keeps such a one-off from failing the suite, while a real deadlock hangs
    twice and fails."""
    env = dict(env, PYTHONFAULTHANDLER="1")
    dumps = []
    for _ in range(2):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
            if dumps:
                warnings.warn(f"torchrun hung once (retried, then ended with status {proc.returncode}); the stacks "
                              f"at the hang:\n{dumps[0][-8000:]}", stacklevel=2)
            return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
        except subprocess.TimeoutExpired:
            family = _descendants(proc.pid) + [proc.pid]  # torchrun starts its workers in sessions of their own
            _signal_all(family, signal.SIGABRT)
            try:
                stdout, stderr = proc.communicate(timeout=30)
            finally:
                _signal_all(family, signal.SIGKILL)
            dumps.append(stdout[-3000:] + stderr[-12000:])
    raise AssertionError(f"torchrun hung twice past {timeout} s; the stacks at the second hang:\n{dumps[-1]}")


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (children first seen in /proc), so none is left holding the output pipes."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def save_tiny_model(folder: Path, initializer_range: float = 0.5) -> Path:
    """A tiny untrained model with the competition's three heads (OCNLI reads pairs), saved as train.py saves one
    (weights, config with labels and names, tokenizer), truncating at 64 tokens. The wide initialisation spreads its
    answers over many labels (0.02 gives every text the same label), so a mixed-up answer shows."""
    import torch
    from transformers import BertConfig

    from mtl.model import BertMultiTaskModel, multitask_config
    from mtl.tokenizer import load_tokenizer

    torch.manual_seed(0)
    config = BertConfig.from_pretrained(str(TINY_CONFIG))
    config.initializer_range = initializer_range
    config = multitask_config(config, competition_heads())
    config.max_seq_length = 64
    BertMultiTaskModel(config).save_pretrained(folder)
    load_tokenizer(str(TOKENIZER_DIR)).save_pretrained(folder)
    return folder
