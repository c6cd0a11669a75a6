"""Read, clean, tokenize and cache the tasks' data (default: the competition's): `python code/preprocess.py [profile.json] --help`."""
from __future__ import annotations

import dataclasses
import logging
import sys
import time

from transformers import HfArgumentParser

from mtl.args import DataTrainingArguments, expand_json_argument_file
from mtl.cache import load_or_build_task
from mtl.errors import run_cli
from mtl.tasks import get_tasks
from mtl.tokenizer import load_tokenizer

logger = logging.getLogger("preprocess")


def main(argv: list[str] | None = None) -> None:
    parser = HfArgumentParser(DataTrainingArguments, description=__doc__)
    # A training profile (JSON) may come first: its data arguments are read, the others left to train.py.
    argv = expand_json_argument_file(sys.argv[1:] if argv is None else argv,
                                     known={f.name for f in dataclasses.fields(DataTrainingArguments)})
    (args,) = parser.parse_args_into_dataclasses(args=argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    start = time.perf_counter()
    tokenizer = load_tokenizer(args.tokenizer_dir)
    for task in get_tasks(args.tasks):
        load_or_build_task(task, tokenizer, args)
    logger.info("preprocessing done in %.2fs", time.perf_counter() - start)


if __name__ == "__main__":
    run_cli(main, "preprocess.py")  # a user's error: one line and exit status 1, no traceback
