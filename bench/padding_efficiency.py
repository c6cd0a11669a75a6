"""Fraction of computed tokens that are real tokens, for four ways of batching the bundled train splits.

pad to max_seq_length | mixed-task random batches padded to their longest | task-homogeneous batches padded to their
longest (2020) | task-homogeneous + length-grouped (MultiTaskBatchSampler with lengths)."""
from __future__ import annotations

import argparse
import json

import torch

from common import header, results_path, table, work_dir, write_section
from mtl.args import DataTrainingArguments
from mtl.cache import load_or_build_task
from mtl.data import MultiTaskBatchSampler
from mtl.paths import BUNDLED_TOKENIZER_DIR
from mtl.tasks import get_tasks
from mtl.tokenizer import load_tokenizer


def efficiency(batches: list[list[int]], lengths: torch.Tensor) -> float:
    real = sum(int(lengths[b].sum()) for b in batches)
    computed = sum(len(b) * int(lengths[b].max()) for b in batches)
    return real / computed


def measure(lengths: list[torch.Tensor], batch_size: int, max_seq_length: int, seed: int = 0) -> dict[str, float]:
    flat = torch.cat(lengths)
    sizes = [len(x) for x in lengths]
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(flat), generator=g).tolist()
    mixed = [perm[s:s + batch_size] for s in range(0, len(perm), batch_size)]
    homogeneous = MultiTaskBatchSampler(sizes, batch_size, seed=seed).batches(0)
    grouped = MultiTaskBatchSampler(sizes, batch_size, seed=seed, lengths=lengths).batches(0)
    return {
        f"pad to {max_seq_length}": float(flat.sum()) / (len(flat) * max_seq_length),
        "mixed-task, pad to batch max": efficiency(mixed, flat),
        "task-homogeneous, dynamic (2020)": efficiency(homogeneous, flat),
        "task-homogeneous, length-grouped": efficiency(grouped, flat),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="debug-sized data (first 1000 rows per file), for CI")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    data = DataTrainingArguments(debug=args.smoke, data_save_dir=str(work_dir("bench_smoke" if args.smoke else "")),
                                 cleaned_dir=str(work_dir("bench_smoke" if args.smoke else ""))).data_settings()
    tokenizer = load_tokenizer(BUNDLED_TOKENIZER_DIR)
    lengths = []
    for task in get_tasks(None):
        train = load_or_build_task(task, tokenizer, data)["train"]
        lengths.append(train["offsets"][1:] - train["offsets"][:-1])
    rows = []
    for batch_size in (16, 32):
        for name, value in measure(lengths, batch_size, data.max_seq_length).items():
            rows.append({"batch size": batch_size, "batching": name, "real / computed tokens": f"{value:.3f}"})
    text = header("Padding efficiency (train splits of the three tasks)", "python bench/padding_efficiency.py")
    text += table(rows, ["batch size", "batching", "real / computed tokens"])
    out = results_path("padding", args.smoke, args.out)
    write_section(out, text)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
