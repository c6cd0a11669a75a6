"""Shared fixtures: the bundled data, and a small copy of it for training runs."""
from __future__ import annotations

from pathlib import Path

import pytest

from helpers import DATA_DIR, TOKENIZER_DIR
from mtl.tasks import TASKS


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A plain BERT checkpoint with its tokenizer, as hfl/chinese-roberta-wwm-ext-large is laid out (no task heads)."""
    from transformers import BertConfig, BertModel

    from helpers import TINY_CONFIG
    from mtl.tokenizer import load_tokenizer

    path = tmp_path_factory.mktemp("tiny_bert")
    BertModel(BertConfig.from_json_file(str(TINY_CONFIG)), add_pooling_layer=False).save_pretrained(path)
    load_tokenizer(str(TOKENIZER_DIR)).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_mlm(tmp_path_factory) -> Path:
    """A tiny BertForMaskedLM with the bundled tokenizer: the encoder task-adaptive pretraining continues from."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    from helpers import TINY_CONFIG
    from mtl.tokenizer import load_tokenizer

    folder = tmp_path_factory.mktemp("tiny_mlm")
    torch.manual_seed(0)
    BertForMaskedLM(BertConfig.from_pretrained(str(TINY_CONFIG))).save_pretrained(folder)
    load_tokenizer(str(TOKENIZER_DIR)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tokenizer():
    from mtl.tokenizer import load_tokenizer

    return load_tokenizer(str(TOKENIZER_DIR))


def copy_data(root: Path, train_rows: int, test_rows: int | None) -> Path:
    """The real competition layout with the first rows of each train and test file (None: the whole file)."""
    for task in TASKS.values():
        for source, rows in ((task.train_path(DATA_DIR), train_rows), (task.test_path("a", DATA_DIR), test_rows),
                             (task.test_path("b", DATA_DIR), test_rows)):
            data = source.read_bytes()
            if rows is not None:
                data = b"".join(data.splitlines(keepends=True)[:rows])
            target = root / source.relative_to(DATA_DIR)
            target.parent.mkdir(exist_ok=True)
            target.write_bytes(data)
    return root


@pytest.fixture(scope="session")
def small_data_dir(tmp_path_factory) -> Path:
    """The first 300 rows of each train file and the full test files."""
    return copy_data(tmp_path_factory.mktemp("tcdata"), 300, None)


@pytest.fixture(scope="session")
def short_data_dir(tmp_path_factory) -> Path:
    """The first 300 rows of each train file and of each test file: for runs whose test predictions only need to
    exist (the demo profile pretrains on the test texts and predicts them all)."""
    return copy_data(tmp_path_factory.mktemp("tcdata_short"), 300, 300)


# The modules that take longest in CI (their seconds on the 2-core CI machine, CI's --durations), longest first.
# CI spreads whole modules over two workers in collection order (`--dist loadscope --no-loadscope-reorder`); putting
# the long ones first is the longest-processing-time rule, so no long module starts last while the other worker idles.
LONGEST_MODULES = ["test_support_matrix.py", "test_run_sh.py", "test_bench_smoke.py", "test_bad_input.py",
                   "test_kill_resume.py", "test_distributed.py", "test_kfold.py", "test_combinations.py",
                   "test_own_tasks.py", "test_own_data_sh.py", "test_toolkit.py", "test_pretrain.py",
                   "test_serve.py", "test_export.py", "test_train.py", "test_logit_adjustment.py"]


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each module's own order is kept
