"""One configuration boundary: the CLIs' argument dataclasses check themselves and resolve the paths; the library
below them takes DataSettings / plain values and never the arguments, nor resolves a path itself."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from helpers import REPO_ROOT, data_settings
from mtl.args import DataTrainingArguments, ModelArguments, tasks_of
from mtl.cache import fingerprint
from mtl.errors import UsageError
from mtl.task_files import DEBUG_ROWS, TaskFiles
from mtl.tasks import TASKS
from pretrain import PretrainArguments

LIBRARY = REPO_ROOT / "code" / "mtl"


def imported_names(path: Path) -> set[str]:
    """`module` and `module.name` for every `from module import name` / `import module` in the file."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            names |= {module} | {f"{module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
    return names


@pytest.mark.parametrize("module", sorted(p.name for p in LIBRARY.glob("*.py") if p.name != "args.py"))
def test_no_library_module_takes_the_cli_arguments_or_resolves_paths(module):
    names = imported_names(LIBRARY / module)
    if module != "trainer.py":  # a Trainer subclass is typed on its TrainingArguments subclass (docs/design.md)
        assert not names & {".args", "mtl.args"}, f"{module} imports the CLI's argument dataclasses"
    if module != "paths.py":
        assert not names & {".paths.resolve", "mtl.paths.resolve"}, f"{module} resolves paths (the CLIs do that)"


def test_data_settings_resolve_the_paths_once_and_carry_every_data_argument(monkeypatch, tmp_path):
    monkeypatch.chdir(REPO_ROOT / "code")  # where `tcdata` means the repository's (mtl.paths.resolve)
    args = DataTrainingArguments(cleaned_dir=str(tmp_path / "clean"), data_save_dir=str(tmp_path / "cache"),
                                 train_val_split_ratio=0.2, split_seed=7, skip_bad_rows=True, debug=True, test_b=True,
                                 max_train_samples=50, max_seq_length=64, overwrite_cache=True)
    settings = args.data_settings()
    assert settings.data_dir == REPO_ROOT / "tcdata"
    assert TaskFiles.of(TASKS["tnews"], settings.data_dir, None).train.is_file()
    assert (settings.cleaned_dir, settings.data_save_dir) == (tmp_path / "clean", tmp_path / "cache")
    assert (settings.reading.split_ratio, settings.reading.split_seed, settings.reading.skip_bad_rows) == (0.2, 7, True)
    assert settings.reading.max_rows == DEBUG_ROWS
    assert (settings.predict_test, settings.max_train_samples, settings.max_seq_length) == ("b", 50, 64)
    assert settings.overwrite_cache and settings.use_pseudo is None
    assert DataTrainingArguments(test_b=True, predict_test="a").data_settings().predict_test == "a"


def test_the_cache_fingerprint_keeps_the_flags_names(tmp_path, small_data_dir, tokenizer):
    """Caches built before DataSettings existed stay valid: the fingerprint's keys and values are the arguments'."""
    task = TASKS["ocnli"]
    settings = data_settings(tmp_path, small_data_dir, debug=True, test_b=True, train_val_split_ratio=0.2)
    record = fingerprint(task, TaskFiles.of(task, settings.data_dir, None), tokenizer, settings)
    assert {k: record[k] for k in ("train_val_split_ratio", "split_seed", "predict_test", "debug", "skip_bad_rows",
                                   "max_train_samples", "max_seq_length")} == {
        "train_val_split_ratio": 0.2, "split_seed": 2020, "predict_test": "b", "debug": True, "skip_bad_rows": False,
        "max_train_samples": None, "max_seq_length": 300}


def test_a_spec_path_in_tasks_resolves_like_any_command_line_path(monkeypatch):
    monkeypatch.chdir(REPO_ROOT / "code")
    names = [t.name for t in tasks_of("data/extra/waimai_sentiment.json, tnews")]
    assert names == ["waimai_sentiment", "tnews"]


@pytest.mark.parametrize("build, message", [
    (lambda: ModelArguments(logit_adjustment=-0.5), "--logit_adjustment -0.5: give a tau >= 0"),
    (lambda: PretrainArguments(save_dtype="int8"), "--save_dtype 'int8': choose one of"),
    (lambda: DataTrainingArguments(tasks=" , "), "names no task"),
])
def test_the_argument_dataclasses_check_themselves(build, message):
    with pytest.raises(UsageError, match=message):
        build()
