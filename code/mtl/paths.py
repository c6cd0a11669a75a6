"""Where things live: the repository root, and how relative paths resolve when a CLI runs from `code/`."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TOKENIZER_DIR = "code/assets/tokenizer"  # the bundled bert-base-chinese vocab (= roberta-wwm-ext-large's)


def model_path(name_or_path: str) -> str:
    """A model given as a local directory (resolved as `resolve` does) or, when no such path exists, a hub id."""
    local = resolve(name_or_path)
    return str(local) if local.exists() else name_or_path


def resolve(path: str | os.PathLike) -> Path:
    """A relative path is taken from the working directory, unless its first component exists only at the
    repository root: then from the root. So `user_data/x` means the same from the root and from `code/`."""
    path = Path(path)
    if path.is_absolute():
        return path
    head = path.parts[0] if path.parts else "."
    if not Path(head).exists() and (REPO_ROOT / head).exists():
        return REPO_ROOT / path
    return path
