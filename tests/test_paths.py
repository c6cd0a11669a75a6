"""How relative paths resolve: as in the working directory, except from inside the repository (e.g. `code/`),
where a path that exists only at the repository root is taken from there, with a log line."""
from __future__ import annotations

import logging

from helpers import REPO_ROOT
from mtl.paths import resolve


def test_from_the_repository_root_and_from_code_user_data_means_the_same(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    assert resolve("tcdata/nlp_round1_data") == REPO_ROOT.joinpath("tcdata/nlp_round1_data").relative_to(REPO_ROOT)
    monkeypatch.chdir(REPO_ROOT / "code")
    assert resolve("tcdata/nlp_round1_data") == REPO_ROOT / "tcdata" / "nlp_round1_data"
    assert resolve("mtl/tasks.py").exists()  # what exists in the working directory is taken from there


def test_outside_the_repository_a_relative_path_stays_in_the_working_directory(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert resolve("user_data/stage1") == tmp_path.joinpath("user_data/stage1").relative_to(tmp_path)
    assert not resolve("tcdata").is_absolute()


def test_a_redirection_is_logged(monkeypatch, caplog):
    monkeypatch.chdir(REPO_ROOT / "code")
    caplog.set_level(logging.INFO, logger="mtl.paths")
    resolve("tcdata/nlp_round2_data")
    assert "no tcdata in the working directory" in caplog.text
