"""Crash-safe checkpoints: a `checkpoint-N` counts only once its completion marker is written, last.

A kill (preemption, OOM killer) or a full disk can stop a save at any file. transformers' resume rule takes the
highest-numbered `checkpoint-N` whatever it holds, so one half-written folder blocked every rerun. Here a save
writes every file (the Trainer's, then the raw training weights), flushes them to disk, and only then writes
`checkpoint_complete.json` (the files and their sizes) by rename; old checkpoints are rotated away after that,
so the previous complete checkpoint survives until the new one is complete. Resume takes the newest complete
checkpoint and says which incomplete ones it skipped.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .errors import UsageError

if TYPE_CHECKING:
    from transformers import Trainer

logger = logging.getLogger(__name__)

MARKER_NAME = "checkpoint_complete.json"
_CHECKPOINT_RE = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")


def checkpoint_folder(trainer: Trainer, trial: Any) -> str:
    """The `checkpoint-N` folder the Trainer's _save_checkpoint writes at the current step."""
    return os.path.join(trainer._get_output_dir(trial), f"{PREFIX_CHECKPOINT_DIR}-{trainer.state.global_step}")


def checkpoint_step(path: str | Path) -> Optional[int]:
    match = _CHECKPOINT_RE.match(Path(path).name)
    return int(match.group(1)) if match else None


def is_complete(folder: str | Path) -> bool:
    """The marker is there and every file it lists still has its recorded size (an empty marker, written by hand
    for a checkpoint of an earlier version, vouches for the folder as it is)."""
    folder = Path(folder)
    try:
        text = (folder / MARKER_NAME).read_text()
        files = json.loads(text).get("files", {}) if text.strip() else {}
        return all((folder / name).stat().st_size == size for name, size in files.items())
    except (OSError, ValueError, AttributeError):
        return False


def find_checkpoints(output_dir: str | Path) -> tuple[list[str], list[str]]:
    """(complete, incomplete) `checkpoint-N` folders in output_dir, each sorted by step, oldest first."""
    complete, incomplete = [], []
    root = Path(output_dir)
    if root.is_dir():
        for path in sorted((p for p in root.iterdir() if checkpoint_step(p) is not None and p.is_dir()),
                           key=checkpoint_step):
            (complete if is_complete(path) else incomplete).append(str(path))
    return complete, incomplete


def newest_complete(output_dir: str | Path) -> Optional[str]:
    """The newest complete checkpoint in output_dir (None if none); logs the incomplete ones it passes over."""
    complete, incomplete = find_checkpoints(output_dir)
    newest = complete[-1] if complete else None
    skipped = [p for p in incomplete if newest is None or checkpoint_step(p) > checkpoint_step(newest)]
    if skipped:
        logger.warning("skipping incomplete checkpoint(s) %s (a run stopped while writing them, no %s); "
                       "resuming from %s", ", ".join(Path(p).name for p in skipped), MARKER_NAME,
                       newest or "nothing: training starts over")
    return newest


def check_resumable(path: str) -> None:
    """An explicit --resume_from_checkpoint PATH must be a complete checkpoint: one line otherwise."""
    if not Path(path).is_dir():
        raise UsageError(f"--resume_from_checkpoint {path}: no such checkpoint directory")
    if not is_complete(path):
        newest = newest_complete(Path(path).parent)
        raise UsageError(f"--resume_from_checkpoint {path}: the checkpoint is incomplete (a run stopped while "
                         f"writing it: no {MARKER_NAME}, or a file cut short); "
                         + (f"the newest complete one is {newest}" if newest else "no complete one is beside it")
                         + f" (a checkpoint of a version before markers: create an empty {MARKER_NAME} in it)")


def unmark(folder: str | Path) -> None:
    """Before (re)writing a folder: it is not complete until marked again."""
    with _suppress_missing():
        os.remove(Path(folder) / MARKER_NAME)


def mark_complete(folder: str | Path) -> None:
    """Flush every file of the folder to disk, then write the marker (by rename, so it is whole or absent)."""
    folder = Path(folder)
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MARKER_NAME):
        fsync_file(path)
        files[str(path.relative_to(folder))] = path.stat().st_size
    tmp = folder / f".{MARKER_NAME}.tmp"
    with open(tmp, "w") as f:
        json.dump({"step": checkpoint_step(folder), "files": files}, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, folder / MARKER_NAME)
    fsync_dir(folder)


def rotate(output_dir: str | Path, save_total_limit: Optional[int], keep: Optional[str] = None) -> None:
    """Keep the newest `save_total_limit` complete checkpoints (and `keep`, the best one); delete older complete
    ones, and incomplete ones older than the newest complete one (leftovers of a kill, never resumable)."""
    if not save_total_limit or save_total_limit <= 0:
        return
    complete, incomplete = find_checkpoints(output_dir)
    if not complete:
        return
    protected = set(complete[-save_total_limit:]) | ({str(Path(keep))} if keep else set())
    newest = checkpoint_step(complete[-1])
    for path in complete[:-1] + [p for p in incomplete if checkpoint_step(p) < newest]:
        if path not in protected:
            shutil.rmtree(path, ignore_errors=True)


def folder_size(folder: str | Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def is_disk_full(error: BaseException) -> bool:
    """ENOSPC (or EDQUOT) as an OSError, as torch's `[enforce fail at inline_container.cc]` RuntimeError, or as
    safetensors' `IoError(... StorageFull ...)`."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(error)
    return ("inline_container" in text or "No space left on device" in text or "StorageFull" in text
            or "QuotaExceeded" in text)


@contextmanager
def disk_full_as_usage_error(folder: str | Path, what: str, needed: Callable[[], int],
                             remove: bool = False) -> Iterator[None]:
    """A full disk while writing `folder` becomes one line naming it and the space needed (`needed()` bytes);
    `remove`: the half-written folder goes (it is incomplete anyway, and its space is needed)."""
    try:
        yield
    except Exception as err:  # re-raised unless a full disk
        if not is_disk_full(err):
            raise
        if remove:
            shutil.rmtree(folder, ignore_errors=True)
        free = _free_bytes(folder)
        raise UsageError(f"the disk is full: writing {what} to {folder} needs about {_mb(needed())} "
                         f"({_mb(free)} free there); free some space and run the same command again "
                         f"(earlier checkpoints are intact)") from err


def _mb(size: Optional[int]) -> str:
    return "? MB" if size is None else f"{size / 2**20:.1f} MB"


def _free_bytes(folder: str | Path) -> Optional[int]:
    for path in (Path(folder), *Path(folder).parents):
        if path.exists():
            try:
                return shutil.disk_usage(path).free
            except OSError:
                return None
    return None


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    try:
        fsync_file(path)
    except OSError:  # some filesystems cannot fsync a directory
        pass


@contextmanager
def _suppress_missing() -> Iterator[None]:
    try:
        yield
    except FileNotFoundError:
        pass


def resolve_resume(resume_from_checkpoint: str | bool | None, output_dir: str) -> Optional[str]:
    """Trainer.train's resume_from_checkpoint: true -> the newest complete checkpoint in output_dir (HF's own rule
    takes the highest-numbered one, complete or not); a path -> itself if complete, else one line."""
    if resume_from_checkpoint is None or resume_from_checkpoint is False:
        return None
    if resume_from_checkpoint is True:
        newest = newest_complete(output_dir)
        if newest is None:
            raise UsageError(f"No valid checkpoint found in output directory ({output_dir}) for --resume_from_checkpoint "
                             f"true: no complete "
                             f"{PREFIX_CHECKPOINT_DIR}-N (with {MARKER_NAME}) there")
        return newest
    check_resumable(str(resume_from_checkpoint))
    return str(resume_from_checkpoint)


def remove_checkpoints(output_dir: str) -> None:
    """--overwrite_output_dir: an earlier run's checkpoints go, complete or not. Left there, they would count as newer
    than this run's in the rotation, and a later run without the flag would resume from them."""
    complete, incomplete = find_checkpoints(output_dir)
    for folder in complete + incomplete:
        logger.warning("--overwrite_output_dir: removing %s, a checkpoint of an earlier run", folder)
        shutil.rmtree(folder)


def _parameter_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


@contextmanager
def saving_checkpoint(trainer, run_dir: str, folder: str) -> Iterator[None]:
    """Around a checkpoint's writes (the Trainer's and ours): the folder is unmarked first; the Trainer's rotation
    is held back (it ran before the raw training weights were written, and could delete the previous complete
    checkpoint before this one was complete); after the writes, every process's files done, the marker, then the
    rotation. A full disk: one line, the half-written folder removed, the earlier checkpoints intact."""
    args = trainer.args
    complete, _ = find_checkpoints(run_dir)
    previous = complete[-1] if complete else None
    if args.should_save:
        unmark(folder)
    limit, args.save_total_limit = args.save_total_limit, None
    try:
        with disk_full_as_usage_error(
                folder, f"checkpoint {Path(folder).name}",
                lambda: folder_size(previous) if previous and Path(previous).is_dir()
                else 4 * _parameter_bytes(trainer.model),  # weights, two Adam moments, raw training weights
                remove=args.should_save):
            yield
            trainer.accelerator.wait_for_everyone()  # under DDP each process writes its own rng_state_N.pth
            if args.should_save:
                mark_complete(folder)
    finally:
        args.save_total_limit = limit
    if args.should_save:
        rotate(run_dir, limit, trainer.state.best_model_checkpoint)


STAGING_NAME = ".final-model.tmp"


def save_final_model(trainer) -> None:
    """trainer.save_model(), crash-safe: the files are written into output_dir/.final-model.tmp, then each moved into
    output_dir by rename (a kill leaves whole files, never a cut-short model.safetensors); a full disk: one line."""
    output_dir = Path(trainer.args.output_dir)
    staging = output_dir / STAGING_NAME
    if trainer.args.should_save:
        shutil.rmtree(staging, ignore_errors=True)
    with disk_full_as_usage_error(staging, "the final model", lambda: _parameter_bytes(trainer.model),
                                  remove=trainer.args.should_save):
        trainer.save_model(str(staging), _internal_call=True)  # every process takes part (sharded models)
        if trainer.args.should_save:
            for path in sorted(staging.iterdir()):
                if path.is_file():
                    fsync_file(path)
                target = output_dir / path.name
                if path.is_dir() and target.is_dir():
                    shutil.rmtree(target)
                os.replace(path, target)
            fsync_dir(output_dir)
            staging.rmdir()
    if trainer.args.push_to_hub:
        trainer.push_to_hub(commit_message="Model save", revision=trainer.args.hub_revision)
