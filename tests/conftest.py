"""Shared fixtures: the code/ package on sys.path, the bundled data, and a small copy of it for training runs."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "code"))

from mtl.tasks import ROUND1_DIR, ROUND2_DIR, TASKS  # noqa: E402

DATA_DIR = REPO_ROOT / "tcdata"
TOKENIZER_DIR = REPO_ROOT / "code" / "assets" / "tokenizer"
TINY_CONFIG = REPO_ROOT / "code" / "assets" / "configs" / "tiny.json"


@pytest.fixture(scope="session")
def tokenizer():
    from mtl.features import load_tokenizer

    return load_tokenizer(str(TOKENIZER_DIR))


@pytest.fixture(scope="session")
def small_data_dir(tmp_path_factory) -> Path:
    """The real competition layout with the first 300 rows of each train file and the full test files."""
    root = tmp_path_factory.mktemp("tcdata")
    for task in TASKS.values():
        for sub, name, rows in ((ROUND1_DIR, task.train_file, 300), (ROUND1_DIR, task.test_a_file, None),
                                (ROUND2_DIR, task.test_b_file, None)):
            data = (DATA_DIR / sub / name).read_bytes()
            if rows is not None:
                data = b"".join(data.splitlines(keepends=True)[:rows])
            (root / sub).mkdir(exist_ok=True)
            (root / sub / name).write_bytes(data)
    return root


def data_args(tmp: Path, data_dir: Path = DATA_DIR, **overrides):
    """DataTrainingArguments pointing every output into `tmp`."""
    from mtl.args import DataTrainingArguments

    values = dict(data_dir=str(data_dir), cleaned_dir=str(tmp / "cleaned"), data_save_dir=str(tmp / "cache"),
                  tokenizer_dir=str(TOKENIZER_DIR))
    values.update(overrides)
    return DataTrainingArguments(**values)
