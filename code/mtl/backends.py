"""What runs a Predictor's batches: the PyTorch model (`torch`) or its ONNX export on ONNX Runtime (`onnx`).

Each backend has a `config` (the model's BertMultiTaskConfig) and `logits(task_id, batch)`: one task head's
eval-mode logits (float32, on the CPU) for a batch padded by MultiTaskCollator.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from .errors import UsageError
from .model import BertMultiTaskModel, load_model
from .onnx_backend import OnnxBackend, export_record
from .trained_model import check_trained_model

BACKENDS = ("auto", "torch", "onnx")


class TorchBackend:
    kind = "torch"

    def __init__(self, model: BertMultiTaskModel, device: Optional[str] = None):
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self.device).eval()
        self.config = model.config

    def logits(self, task_id: int, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {k: batch[k].to(self.device) for k in ("input_ids", "attention_mask", "token_type_ids")}
        with torch.inference_mode():
            return self.model(**inputs, task_id=task_id).logits.float().cpu()


def open_backend(path: str, backend: str = "auto", device: Optional[str] = None) -> TorchBackend | OnnxBackend:
    """The backend for a model folder (or hub id), as mtl.paths.model_path gives it. `auto`: ONNX Runtime for an
    export folder (its config.json records the graph), PyTorch otherwise."""
    if backend not in BACKENDS:
        raise UsageError(f"backend {backend!r}: one of {', '.join(BACKENDS)}")
    exported = Path(path).is_dir() and export_record(path) is not None
    if backend == "onnx" or (backend == "auto" and exported):
        if not exported:
            check_trained_model(path)  # something else than a trained model is named as such first
            raise UsageError(f"{path}: a PyTorch model, not an ONNX export; run python code/export.py "
                             f"--model_name_or_path {path} --output_dir DIR first, then pass DIR (docs/serving.md)")
        if device is not None and torch.device(device).type != "cpu":
            raise UsageError(f"--device {device}: the ONNX backend runs on the CPU (CPUExecutionProvider); leave "
                             "--device out, or use --backend torch with the PyTorch model")
        return OnnxBackend(path)
    check_trained_model(path)  # an export folder is refused here, naming the model it came from
    return TorchBackend(load_model(path, None, []), device)
