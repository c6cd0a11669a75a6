"""Exporting a trained multi-task model to one ONNX graph (code/export.py), optionally with int8 weights.

The graph runs the encoder once and returns every task head's logits (`logits_<task>`): one file serves every task
and stores the encoder's weights once (a graph per head would copy the encoder per task; a task-id input would need
control flow or padded outputs). The logits are the eval-mode model's, logit adjustment included: the graph calls
the model's own encode -> head_logits -> adjust_logits, the path `BertMultiTaskModel.forward` takes in eval mode.

Exporter: torch.onnx.export(dynamo=True). It captures the model with torch.export, which refuses data-dependent
Python branches instead of silently freezing them; the TorchScript tracer froze two of transformers' mask branches
into constants (TracerWarnings), correct today only because this model never takes them. Both gave logits within
3e-7 of PyTorch's; the dynamo export takes longer (seconds to a minute), which an export can afford.

The export is written into a staging folder beside output_dir and renamed into place when complete, so a kill or a
full disk leaves output_dir as it was (the earlier export, or nothing), never half an export.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import torch
from torch import nn
from transformers import BertConfig

from .checkpoints import disk_full_as_usage_error, fsync_dir, fsync_file
from .errors import UsageError
from .model import BertMultiTaskModel, load_model
from .onnx_backend import EXPORT_KEY, INPUT_NAMES, export_record, output_name
from .paths import BUNDLED_TOKENIZER_DIR
from .tokenizer import load_tokenizer, tokenizer_source
from .trained_model import check_trained_model

logger = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
QUANTIZATIONS = ("int8",)
MIN_OPSET = 18  # the oldest opset the dynamo exporter writes
PROTOBUF_LIMIT = 2**31 - 1  # one ONNX file (a protobuf) holds at most 2 GiB
TOLERANCE = 1e-4  # the exported graph's fp32 logits against the model's, checked before anything is written


class AllHeads(nn.Module):
    """The eval-mode model with every head at once: (input_ids, attention_mask, token_type_ids) -> one logits tensor
    per task, in config.tasks order, each as `BertMultiTaskModel.forward` returns it in eval mode."""

    def __init__(self, model: BertMultiTaskModel):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        hidden = self.model.encode(input_ids, attention_mask, token_type_ids)
        return tuple(self.model.adjust_logits(self.model.head_logits(hidden, attention_mask, i), i)
                     for i in range(len(self.model.config.tasks)))


def sample_inputs(model: BertMultiTaskModel, rows: int, length: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random token ids with the last row padded and a second segment: every input's role is exercised."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(1, model.config.vocab_size, (rows, length), generator=generator)
    attention_mask = torch.ones(rows, length, dtype=torch.long)
    attention_mask[-1, length // 2:] = 0
    input_ids[attention_mask == 0] = model.config.pad_token_id or 0
    token_type_ids = torch.zeros(rows, length, dtype=torch.long)
    token_type_ids[:, length // 3:] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}


@contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """The exporter's loggers at ERROR only: they log every graph pass, and warn that torchvision is absent."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def export_graph(model: BertMultiTaskModel, path: Path, opset: Optional[int] = None) -> int:
    """Write the fp32 graph of every head to `path` (batch and sequence axes dynamic) and check it; return its
    opset."""
    import onnx

    batch = torch.export.Dim("batch")
    sequence = torch.export.Dim("sequence", max=model.config.max_position_embeddings)
    inputs = sample_inputs(model.eval(), 2, 8)  # 2 and 8: sizes 0 and 1 would be specialised, not dynamic
    with warnings.catch_warnings(), _quiet("torch.onnx", "onnxscript", "onnx_ir"):
        # the three inputs share both axes: the exporter says so for each name it merges
        warnings.filterwarnings("ignore", message=r".*axis name: .* will not be used")
        warnings.filterwarnings("ignore", category=FutureWarning)  # torch's own pytree deprecations
        program = torch.onnx.export(
            AllHeads(model).eval(), tuple(inputs.values()), dynamo=True, opset_version=opset, verbose=False,
            input_names=list(INPUT_NAMES), output_names=[output_name(t) for t in model.config.task_names],
            dynamic_shapes={name: {0: batch, 1: sequence} for name in INPUT_NAMES})
        program.save(str(path), external_data=False)
    onnx.checker.check_model(str(path))
    return next(o.version for o in onnx.load(str(path), load_external_data=False).opset_import if o.domain in ("", "ai.onnx"))


def check_graph(model: BertMultiTaskModel, path: Path) -> float:
    """The graph's logits against the model's on rows of another shape than the export's sample (so the dynamic
    axes are exercised); a RuntimeError beyond TOLERANCE. Returns the largest difference."""
    import onnxruntime as ort

    inputs = sample_inputs(model, 3, 11, seed=1)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {k: v.numpy() for k, v in inputs.items()})
    worst = 0.0
    with torch.inference_mode():
        for task_id, got in enumerate(outputs):
            expected = model(**inputs, task_id=task_id).logits.float().numpy()
            worst = max(worst, float(np.abs(got - expected).max()))
    if not worst <= TOLERANCE:
        raise RuntimeError(f"the exported graph's logits differ from the model's by {worst:.3g} (> {TOLERANCE}); "
                           "nothing was written")
    return worst


def quantize_int8(source: Path, target: Path) -> None:
    """ONNX Runtime's dynamic quantization: the weight matrices of every linear layer (the encoder's and the heads')
    stored as int8 (QInt8, a scale per output channel), their inputs quantized per batch at run time (no
    calibration data); the embeddings stay fp32. Measured on a briefly trained demo model, against quantize_dynamic's
    defaults (the embeddings too, one scale per tensor): at the same speed, labels equal to fp32's on 99.5-99.75%
    of the validation rows instead of 99.0-99.4% (docs/serving.md)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet(""):  # the quantizer logs every tensor it skips, at INFO, on the root logger
        quantize_dynamic(source, target, weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul"])
    onnx.checker.check_model(str(target))


def check_output_dir(output_dir: Path, source: str) -> None:
    """output_dir must be new, empty, or an earlier export of the same model (replaced): one line otherwise."""
    if output_dir.exists() and not output_dir.is_dir():
        raise UsageError(f"--output_dir {output_dir}: a file; give a new or empty directory")
    if not output_dir.is_dir() or not any(output_dir.iterdir()):
        return
    record = export_record(output_dir)
    if record is None:
        raise UsageError(f"--output_dir {output_dir}: holds other files (not an ONNX export), which the export "
                         "would replace; give a new or empty directory")
    if record.get("source") != source:
        raise UsageError(f"--output_dir {output_dir}: holds the ONNX export of another model ({record.get('source')});"
                         " give a new or empty directory, or remove that export first")


def _sibling(output_dir: Path, what: str) -> Path:
    return output_dir.parent / f".{output_dir.name}.export-{what}"


def _fsync_tree(folder: Path) -> None:
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        fsync_file(path)
    fsync_dir(folder)


def _publish(staging: Path, output_dir: Path) -> None:
    """Put the complete staging folder in output_dir's place: two renames, so output_dir is the earlier export or
    the new one, whole (between the renames, for an instant, neither: the earlier one is then at `.export-old`)."""
    old = _sibling(output_dir, "old")
    if output_dir.exists():
        os.replace(output_dir, old)
    os.replace(staging, output_dir)
    fsync_dir(output_dir.parent)
    shutil.rmtree(old, ignore_errors=True)


def export_model(model_name_or_path: str, output_dir: Path, quantize: Optional[str] = None,
                 opset: Optional[int] = None) -> dict[str, Any]:
    """Export the trained model at `model_name_or_path` (a folder or hub id, as mtl.paths.model_path gives it) to
    output_dir: model.onnx, the model's config.json with the export's record under "onnx", the tokenizer. Returns
    the record."""
    if quantize not in (None, *QUANTIZATIONS):
        raise UsageError(f"--quantize {quantize}: one of {', '.join(QUANTIZATIONS)} (or leave it out for fp32)")
    check_trained_model(model_name_or_path)
    source = str(Path(model_name_or_path).resolve()) if Path(model_name_or_path).exists() else model_name_or_path
    check_output_dir(output_dir, source)
    model = load_model(model_name_or_path, None, []).float().eval()  # fp32 whatever it was saved in (fp16, bf16)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    if weights > PROTOBUF_LIMIT:
        raise UsageError(f"{model_name_or_path}: {weights / 2**30:.1f} GiB of weights, more than one ONNX file holds "
                         "(2 GiB); this exporter writes a single file")
    staging = _sibling(output_dir, "tmp")
    for leftover in (staging, _sibling(output_dir, "old")):
        if leftover.exists():
            logger.warning("removing %s, left by an export that was killed", leftover)
            shutil.rmtree(leftover)
    staging.mkdir(parents=True)
    try:
        with disk_full_as_usage_error(staging, "the ONNX export", lambda: 2 * weights, remove=True):
            fp32 = staging / (ONNX_FILE if quantize is None else "model.fp32.onnx")
            used_opset = export_graph(model, fp32, opset)
            worst = check_graph(model, fp32)
            logger.info("exported %s (opset %d); its logits are within %.2g of the model's", fp32.name, used_opset,
                        worst)
            if quantize == "int8":
                quantize_int8(fp32, staging / ONNX_FILE)
                fp32.unlink()
            load_tokenizer(tokenizer_source(model_name_or_path, str(BUNDLED_TOKENIZER_DIR))).save_pretrained(staging)
            record = {"file": ONNX_FILE, "quantization": quantize, "opset": used_opset, "source": source,
                      "logit_adjustment": model.config.logit_adjustment,
                      "exporter": f"torch.onnx.export (dynamo), torch {torch.__version__}"}
            config, _ = BertConfig.get_config_dict(model_name_or_path)
            config = {k: v for k, v in config.items() if k != "auto_map"}  # its model.py is not copied here
            (staging / "config.json").write_text(
                json.dumps({**config, EXPORT_KEY: record}, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
            _fsync_tree(staging)
            _publish(staging, output_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # an error: nothing half-written stays behind
    return record
