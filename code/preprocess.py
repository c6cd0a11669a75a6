"""Read, clean, tokenize and cache the tasks' data (default: the competition's): `python code/preprocess.py [profile.json] --help`."""
from __future__ import annotations

import logging
import time

from mtl.args import TRAIN_ARGUMENTS, DataTrainingArguments, check_writable_dirs, field_names, parse_cli, tasks_of
from mtl.cache import load_or_build_task
from mtl.errors import run_cli
from mtl.paths import resolve
from mtl.tokenizer import load_tokenizer

logger = logging.getLogger("preprocess")


def main(argv: list[str] | None = None) -> None:
    # A training profile (JSON) may come first: its data arguments are read, the others left to train.py.
    (args,) = parse_cli((DataTrainingArguments,), argv, description=__doc__, profile_keys=field_names(TRAIN_ARGUMENTS))
    check_writable_dirs({"--data_save_dir": args.data_save_dir, "--cleaned_dir": args.cleaned_dir})
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    start = time.perf_counter()
    settings = args.data_settings()  # the paths resolved, once
    tokenizer = load_tokenizer(resolve(args.tokenizer_dir))
    for task in tasks_of(args.tasks):
        load_or_build_task(task, tokenizer, settings)
    logger.info("preprocessing done in %.2fs", time.perf_counter() - start)


if __name__ == "__main__":
    run_cli(main, "preprocess.py")  # a user's error: one line and exit status 1, no traceback
