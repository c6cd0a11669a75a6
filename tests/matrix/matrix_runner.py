"""train.py with its training batches recorded: the pairwise support-matrix test's instrument, run as
`torchrun ... tests/matrix/matrix_runner.py <train.py arguments>` or in-process through `recording()`.

Each process writes $MATRIX_RECORD/rank{R}.json: the batches of every training epoch (global row indices, in the
order the Trainer took them), its optimizer steps and a checksum of each of its model's tensors after training.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Iterator

import train
from mtl.data import MultiTaskBatchSampler
from mtl.trainer import MultiTaskTrainer


@contextlib.contextmanager
def recording(record: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Inside, training samplers append each epoch's batches to record["epochs"] as they are taken, and
    MultiTaskTrainer.train stores the steps and the trained weights' checksums in `record`."""
    record.setdefault("epochs", [])
    original_iter, original_train = MultiTaskBatchSampler.__iter__, MultiTaskTrainer.train

    def recording_iter(self):
        if not self.shuffle:  # evaluation order
            yield from original_iter(self)
            return
        epoch: list[list[int]] = []
        record["epochs"].append(epoch)
        for batch in original_iter(self):
            epoch.append(list(batch))
            yield batch

    def recording_train(self, *args, **kwargs):
        output = original_train(self, *args, **kwargs)
        record["global_step"] = self.state.global_step
        record["checksums"] = {n: float(p.double().sum()) for n, p in self.model.state_dict().items()}
        return output

    MultiTaskBatchSampler.__iter__, MultiTaskTrainer.train = recording_iter, recording_train
    try:
        yield record
    finally:
        MultiTaskBatchSampler.__iter__, MultiTaskTrainer.train = original_iter, original_train


if __name__ == "__main__":
    record: dict[str, Any] = {}
    try:
        with recording(record):
            train.main(sys.argv[1:])
    finally:
        out = Path(os.environ["MATRIX_RECORD"])
        out.mkdir(parents=True, exist_ok=True)
        (out / f"rank{os.environ.get('RANK', '0')}.json").write_text(json.dumps(record))
