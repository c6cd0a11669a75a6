"""Atomic file writes: a file is replaced whole in one rename, or left as it was; leftovers of killed writers go."""
from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Iterator

logger = logging.getLogger(__name__)

# A writer killed by SIGKILL (or a power cut) leaves its temporary file behind: nothing can clean up after it.
# The next write to the same target removes such leftovers, but only those untouched for this long: a temporary file
# being written right now (another process writing the same target: two nodes sharing storage) is younger, because
# every write updates its mtime and every writer here fills its file straight after creating it. An age test needs
# no lock, and a minute is far longer than any pause between creating a temporary file and writing to it.
STALE_TMP_SECONDS = 60.0


def _tmp_pattern(name: str) -> re.Pattern:
    """The names tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp") gives: 8 characters of its alphabet between
    (exactly: a target `a` must not claim `.a.b.XXXXXXXX.tmp`, a leftover of the target `a.b`)."""
    return re.compile(re.escape(f".{name}.") + r"[a-z0-9_]{8}" + re.escape(".tmp"))


def remove_stale_tmp_files(path: str | os.PathLike, older_than: float = STALE_TMP_SECONDS) -> list[Path]:
    """Remove the temporary files atomic_path left beside `path` in runs that were killed; return those removed."""
    path = Path(path)
    pattern, now, removed = _tmp_pattern(path.name), time.time(), []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for entry in entries:
        if not pattern.fullmatch(entry.name):
            continue
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime < older_than or not entry.is_file(follow_symlinks=False):
                continue
            os.unlink(entry.path)
        except OSError:  # removed meanwhile by another writer, or not ours to remove: leave it
            continue
        removed.append(Path(entry.path))
        logger.warning("removed %s, left behind by a write of %s that was killed", entry.path, path)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename. Temporary files of `path`
    left by killed writers (older than STALE_TMP_SECONDS) are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp_files(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; the result should look like any written file
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write `text` as UTF-8 to `path`, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
