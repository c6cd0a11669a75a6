"""Running an exported model (code/export.py's output) on ONNX Runtime's CPU provider.

An export folder holds model.onnx (one graph: the encoder once, then every task head), the model's config.json with
an "onnx" record added, and the tokenizer. The graph's inputs are input_ids, attention_mask and token_type_ids
(int64, batch x sequence, both axes dynamic); its outputs are `logits_<task>`, each head's eval-mode logits with the
config's post-hoc logit adjustment already applied, exactly as the PyTorch model returns them.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from .errors import UsageError
from .model import BertMultiTaskConfig

EXPORT_KEY = "onnx"  # config.json's record of the export: file, quantization, opset, source, logit adjustment
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


def output_name(task: str) -> str:
    return f"logits_{task}"


def export_record(folder: str | Path) -> Optional[dict[str, Any]]:
    """The "onnx" record of an export folder's config.json; None for anything else (a PyTorch model, a hub id, a
    folder without a readable config)."""
    config_file = Path(folder) / "config.json"
    try:
        config = json.loads(config_file.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    record = config.get(EXPORT_KEY) if isinstance(config, dict) else None
    return record if isinstance(record, dict) else None


class OnnxBackend:
    """Logits of one task head for a padded batch, from an export folder, on the CPU."""

    kind = "onnx"

    def __init__(self, folder: str | Path, threads: Optional[int] = None):
        import onnxruntime as ort

        folder = Path(folder)
        record = export_record(folder)
        if record is None:
            raise UsageError(f"{folder}: not an ONNX export (its config.json has no \"{EXPORT_KEY}\" record); "
                             f"run python code/export.py --model_name_or_path {folder} --output_dir DIR first")
        self.config = BertMultiTaskConfig.from_pretrained(str(folder))
        self.record = record
        graph = folder / str(record.get("file"))
        if not graph.is_file():
            raise UsageError(f"{folder}: no {graph.name} beside config.json (a copy that missed it); export again")
        baked = float(record.get("logit_adjustment", 0.0))
        if self.config.logit_adjustment != baked:
            # the adjustment is constants inside the graph: a changed config.json cannot change what it computes
            raise UsageError(f"{folder}/config.json: logit_adjustment {self.config.logit_adjustment:g}, but the "
                             f"graph applies {baked:g} (it was exported with it); export again from the PyTorch "
                             f"model with the logit_adjustment wanted in its config.json")
        options = ort.SessionOptions()
        # as many threads as PyTorch would use (its default: the physical cores; OMP_NUM_THREADS overrides both),
        # so the two backends are compared on equal terms; one inter-op thread: the graph is a single chain
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        outputs = {o.name for o in self.session.get_outputs()}
        missing = [t for t in self.config.task_names if output_name(t) not in outputs]
        if missing:
            raise UsageError(f"{graph}: no output for the task(s) {missing} its config.json names; export again")

    def logits(self, task_id: int, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        feeds = {name: batch[name].numpy().astype(np.int64, copy=False) for name in INPUT_NAMES}
        (logits,) = self.session.run([output_name(self.config.tasks[task_id].name)], feeds)
        return torch.from_numpy(logits)
