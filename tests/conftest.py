"""Shared fixtures: the bundled data, and a small copy of it for training runs."""
from __future__ import annotations

from pathlib import Path

import pytest

from helpers import DATA_DIR, TOKENIZER_DIR
from mtl.tasks import ROUND1_DIR, ROUND2_DIR, TASKS


@pytest.fixture(scope="session")
def tokenizer():
    from mtl.tokenizer import load_tokenizer

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
