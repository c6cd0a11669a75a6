"""Shared fixtures: the bundled data, and a small copy of it for training runs."""
from __future__ import annotations

from pathlib import Path

import pytest

from helpers import DATA_DIR, TOKENIZER_DIR
from mtl.tasks import TASKS


@pytest.fixture(scope="session")
def tokenizer():
    from mtl.tokenizer import load_tokenizer

    return load_tokenizer(str(TOKENIZER_DIR))


@pytest.fixture(scope="session")
def small_data_dir(tmp_path_factory) -> Path:
    """The real competition layout with the first 300 rows of each train file and the full test files."""
    root = tmp_path_factory.mktemp("tcdata")
    for task in TASKS.values():
        for source, rows in ((task.train_path(DATA_DIR), 300), (task.test_path("a", DATA_DIR), None),
                             (task.test_path("b", DATA_DIR), None)):
            data = source.read_bytes()
            if rows is not None:
                data = b"".join(data.splitlines(keepends=True)[:rows])
            target = root / source.relative_to(DATA_DIR)
            target.parent.mkdir(exist_ok=True)
            target.write_bytes(data)
    return root
