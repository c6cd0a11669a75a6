"""Is a folder a trained multi-task model? One line saying what it is instead, and what to pass."""
from __future__ import annotations

import json
from pathlib import Path

from .errors import UsageError
from .model import head_names

TRAINED_MODEL = ("pass a trained multi-task model instead: train.py's --output_dir (config.json naming the task "
                 "heads, model.safetensors, the tokenizer)")


def _weight_files(folder: Path) -> list[Path]:
    """The safetensors files save_pretrained wrote: model.safetensors, or the shards its index names."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_bytes().decode("utf-8"))["weight_map"].values()))
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError):
            raise UsageError(f"{index}: damaged (not the index save_pretrained writes); {TRAINED_MODEL}") from None
        return [folder / name for name in shards]
    return [folder / "model.safetensors"]


def check_trained_model(name_or_path: str, flag: str = "--model_name_or_path") -> None:
    """A UsageError in one line, saying what was given and what to pass instead, unless `name_or_path` is a trained
    multi-task model: a folder (or hub id) whose config names task heads, and, for a folder, whose weights are whole.
    Caught here: a file; a folder without config.json (not a saved model); an encoder with no task heads (the
    bundled code/assets/demo_encoder, hfl/chinese-roberta-wwm-ext-large: what train.py starts from); an ONNX export
    (code/export.py's output: no PyTorch weights); weights missing or cut short (a copy or download that did not
    finish, a full disk)."""
    from safetensors import SafetensorError, safe_open
    from transformers import BertConfig

    where = f"{flag} {name_or_path}"
    folder = Path(name_or_path)
    if folder.exists():
        if not folder.is_dir():
            raise UsageError(f"{where}: a file, not a model folder; {TRAINED_MODEL}")
        config_file = folder / "config.json"
        if not config_file.is_file():
            raise UsageError(f"{where}: a folder without config.json, so not a saved model; {TRAINED_MODEL}")
        try:
            config = json.loads(config_file.read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise UsageError(f"{config_file}: damaged, not JSON ({err}); {TRAINED_MODEL}") from None
    else:  # a hub id (mtl.paths.model_path checked it is cached or reachable)
        config, _ = BertConfig.get_config_dict(name_or_path)
    if not isinstance(config, dict) or not head_names(config, where):
        raise UsageError(f"{where}: a pretrained encoder with no task heads (its config.json names no tasks), not a "
                         f"trained multi-task model; {TRAINED_MODEL} (train.py --model_name_or_path {name_or_path} "
                         "fine-tunes one from it)")
    if not folder.exists():
        return
    export = config.get("onnx")
    if isinstance(export, dict):
        raise UsageError(f"{where}: an ONNX export (export.py's output, no PyTorch weights) of the model "
                         f"{export.get('source')}; pass that model itself, or run the export through predict.py "
                         "--backend onnx (or auto)")
    if not any(folder.glob("*.safetensors")) and (folder / "pytorch_model.bin").is_file():
        return  # an older checkpoint format: transformers reads and checks it
    for weights in _weight_files(folder):
        if not weights.is_file():
            raise UsageError(f"{where}: no {weights.name} beside config.json (the model was not saved completely: a "
                             f"run killed before it saved, or a copy that missed it); {TRAINED_MODEL}")
        try:
            with safe_open(str(weights), "pt"):
                pass  # the header is read and checked against the file's size
        except SafetensorError as err:
            raise UsageError(f"{weights}: damaged, cut short by a copy, download or full disk ({err}); copy or "
                             "save the model again") from None
