"""Where things live: the repository root, and how relative paths resolve when a CLI runs from `code/`.

`resolve` and `model_path` are for the CLIs, which resolve every path they are given once, at start-up; the library
below them takes the paths as given."""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from .errors import UsageError

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TOKENIZER_DIR = "code/assets/tokenizer"  # the bundled bert-base-chinese vocab (= roberta-wwm-ext-large's)
BUNDLED_TOKENIZER_DIR = REPO_ROOT / DEFAULT_TOKENIZER_DIR  # the same, for library code (which resolves no flags)


# What the hub accepts as a model id: `name` or `namespace/name`, of letters, digits, '-', '_' and '.'.
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


def model_path(name_or_path: str, flag: str = "--model_name_or_path") -> str:
    """A model given as a local directory (resolved as `resolve` does) or, when no such path exists, a hub id.

    Fails at once, in one line, where transformers would fail late or obscurely: a path that does not exist and
    cannot be a hub id ("Repo id must be in the form ..."), or a hub id that is not cached while the hub is offline
    or unreachable (transformers retries for about a minute first)."""
    local = resolve(name_or_path)
    if local.exists():
        return str(local)
    if not HUB_ID.fullmatch(name_or_path) or ".." in name_or_path:
        raise UsageError(f"{flag} {name_or_path}: no such directory")
    check_on_hub(name_or_path, flag)
    return name_or_path


def check_on_hub(repo_id: str, flag: str) -> None:
    """A hub model that is cached, or that the hub answers for within a few seconds; else a UsageError."""
    from huggingface_hub import constants, model_info, try_to_load_from_cache
    from huggingface_hub.errors import RepositoryNotFoundError

    if isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
        return
    fix = ("download it where the hub is reachable (`hf download {0} --local-dir DIR`) and pass DIR, "
           "or check the spelling of the directory").format(repo_id)
    if constants.HF_HUB_OFFLINE:
        raise UsageError(f"{flag} {repo_id}: not a local directory, and not in the hub cache while HF_HUB_OFFLINE "
                         f"is set; {fix}")
    try:
        model_info(repo_id, timeout=5)
    except RepositoryNotFoundError:
        raise UsageError(f"{flag} {repo_id}: neither a local directory nor a model on the hub "
                         f"({constants.ENDPOINT}); check the spelling") from None
    except Exception as err:  # no network, DNS, proxy, timeout: all mean the download would fail too
        raise UsageError(f"{flag} {repo_id}: not a local directory, and the hub ({constants.ENDPOINT}) cannot be "
                         f"reached ({type(err).__name__}); {fix}") from None


def resolve(path: str | os.PathLike) -> Path:
    """A relative path means what it means in the working directory, with one exception: run from a directory
    inside the repository (e.g. `code/`), a path whose first component exists only at the repository root is taken
    from the root, and a log line says so. So `user_data/x` means the same from the root and from `code/`, and
    from anywhere outside the repository a relative path is never redirected into it."""
    path = Path(path)
    if path.is_absolute():
        return path
    head = path.parts[0] if path.parts else "."
    cwd = Path.cwd().resolve()
    if REPO_ROOT in cwd.parents and not Path(head).exists() and (REPO_ROOT / head).exists():
        if path not in _REDIRECTED:
            _REDIRECTED.add(path)
            logger.info("%s: no %s in the working directory %s; using the repository's %s", path, head, cwd,
                        REPO_ROOT / path)
        return REPO_ROOT / path
    return path


_REDIRECTED: set[Path] = set()  # each redirection is logged once
