"""Constants and helpers the tests share (pytest puts tests/ and code/ on the path: pyproject.toml)."""
from __future__ import annotations

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
