"""Preprocessing speed: this project's pipeline against a faithful re-creation of the 2020 algorithm, on the full
bundled data (3 tasks; train + test A + test B), side by side in one run.

2020: `pd.read_csv(sep='\t', header=None)`; OCEMOTION emoji replaced by `str.replace` over every entry of a
~1,300-entry emoji table per text, then its bracket/punctuation regexes one mark at a time; one tokenizer call per
row over `iterrows()`. Here: lossless reader, one regex pass + demojize only where an emoji can be, and the Rust
tokenizer's batched `encode_batch`."""
from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import emoji
import pandas as pd

from common import REPO_ROOT, header, results_path, table, work_dir, write_section
from mtl.args import DataTrainingArguments
from mtl.cache import build_task_cache
from mtl.cleaning import clean_texts
from mtl.encoding import encode
from mtl.readers import read_task_file
from mtl.tasks import get_tasks
from mtl.tokenizer import load_tokenizer

DATA = REPO_ROOT / "tcdata"
TASKS = get_tasks(None)


def files(task):
    return [(task.train_path(DATA), True), (task.test_path("a", DATA), False),
            (task.test_path("b", DATA), False)]


# ---- the 2020 algorithm ----------------------------------------------------------------------------------------
EMOJI_TABLE = {}  # ~1,300 emoji -> Chinese name, like the baseline's hand-kept mapping file
for e, data in emoji.EMOJI_DATA.items():
    if "zh" in data and len(EMOJI_TABLE) < 1300:
        EMOJI_TABLE[e] = data["zh"].strip(":")


def clean_2020(text: str) -> str:
    for k, v in EMOJI_TABLE.items():
        text = text.replace(k, v)
    text = re.sub(r"\[+", "", text)
    text = re.sub(r"\]+", "", text)
    for p in [",", "\\.", "\\!", "，", "。", "！", "、", "\\?", "？"]:
        text = re.sub(p + "{2,}", p.lstrip("\\"), text)
    return text


def run_2020(tokenizer, max_rows=None) -> dict[str, float]:
    t = {"read": 0.0, "clean": 0.0, "tokenize": 0.0, "rows": 0}
    for task in TASKS:
        for path, _ in files(task):
            start = time.perf_counter()
            df = pd.read_csv(path, sep="\t", header=None, nrows=max_rows)
            t["read"] += time.perf_counter() - start
            t["rows"] += len(df)
            start = time.perf_counter()
            if task.cleaner:
                df[1] = df[1].astype(str).map(clean_2020)
            t["clean"] += time.perf_counter() - start
            start = time.perf_counter()
            for _, row in df.iterrows():
                if len(task.text_columns) == 2:
                    tokenizer(str(row[1]), str(row[2]), truncation=True, max_length=300)
                else:
                    tokenizer(str(row[1]), truncation=True, max_length=300)
            t["tokenize"] += time.perf_counter() - start
    return t


# ---- this project ---------------------------------------------------------------------------------------------
def run_project(tokenizer, max_rows=None) -> dict[str, float]:
    t = {"read": 0.0, "clean": 0.0, "tokenize": 0.0, "rows": 0}
    for task in TASKS:
        for path, with_label in files(task):
            start = time.perf_counter()
            table_, _ = read_task_file(task, path, with_label, max_rows=max_rows)
            t["read"] += time.perf_counter() - start
            t["rows"] += len(table_)
            start = time.perf_counter()
            texts = [clean_texts(task.cleaner, table_.columns[c]) for c in task.text_columns]
            t["clean"] += time.perf_counter() - start
            start = time.perf_counter()
            encode(tokenizer, texts, 300)
            t["tokenize"] += time.perf_counter() - start
    return t


def run_pipeline(tokenizer, tmp: Path, debug: bool) -> float:
    """The whole of preprocess.py's work (also writing cleaned TSVs, splitting, saving caches)."""
    data = DataTrainingArguments(data_dir=str(DATA), cleaned_dir=str(tmp), data_save_dir=str(tmp), debug=debug,
                                 max_seq_length=300).data_settings()
    start = time.perf_counter()
    for task in TASKS:
        build_task_cache(task, tokenizer, data)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="first 300 rows per file, for CI")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    max_rows = 300 if args.smoke else None
    tokenizer = load_tokenizer("code/assets/tokenizer" if not (REPO_ROOT / "code").exists() else str(REPO_ROOT / "code/assets/tokenizer"))
    tokenizer("预热")  # load lazily-built pieces before timing
    ours = run_project(tokenizer, max_rows)
    old = run_2020(tokenizer, max_rows)
    whole = run_pipeline(tokenizer, work_dir("bench_preprocess"), args.smoke)
    rows = []
    for stage in ("read", "clean", "tokenize"):
        rows.append({"stage": stage, "2020 (s)": f"{old[stage]:.2f}", "this project (s)": f"{ours[stage]:.2f}",
                     "speed-up": f"{old[stage] / max(ours[stage], 1e-9):.1f}x"})
    total_old, total_ours = sum(old[s] for s in ("read", "clean", "tokenize")), sum(ours[s] for s in ("read", "clean", "tokenize"))
    rows.append({"stage": "read + clean + tokenize", "2020 (s)": f"{total_old:.2f}", "this project (s)": f"{total_ours:.2f}",
                 "speed-up": f"{total_old / total_ours:.1f}x"})
    text = header("Preprocessing speed (full bundled data: 3 tasks, train + test A + test B)",
                  "python bench/preprocess_speed.py" + (" --smoke" if args.smoke else ""))
    text += table(rows, ["stage", "2020 (s)", "this project (s)", "speed-up"])
    text += (f"\nRows: {ours['rows']:,} here, {old['rows']:,} kept by the 2020 reader (pd.read_csv loses rows at quote "
             f"characters). Throughput: {ours['rows'] / total_ours:,.0f} rows/s here, {old['rows'] / total_old:,.0f} "
             f"rows/s in 2020. The whole of preprocess.py's work in-process (read, clean, write cleaned TSVs, tokenize, "
             f"split, save caches): {whole:.2f} s.\n")
    write_section(results_path("preprocess", args.smoke, args.out), text)


if __name__ == "__main__":
    main()
