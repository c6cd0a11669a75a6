"""Predictor: a trained multi-task model labelling new texts, cleaned and truncated exactly as in training.

    predictor = Predictor.from_pretrained("user_data/stage2")
    predictor.predict("tnews", ["华为发布新款折叠屏手机"])[0].label_name   # 'news_tech'
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import torch

from .cleaning import clean_texts
from .data import MultiTaskCollator, SingleTaskDataset
from .encoding import encode_with, truncating_backend
from .errors import UsageError
from .labels import IGNORE_LABEL
from .model import BertMultiTaskModel, head_names, load_model
from .paths import BUNDLED_TOKENIZER_DIR, model_path
from .tokenizer import load_tokenizer, tokenizer_source


@dataclass
class LabelScore:
    label: str  # the raw label, as in the training data (TNEWS '109')
    label_name: str  # its readable name ('news_tech')
    probability: float


@dataclass
class Prediction(LabelScore):
    top_k: list[LabelScore] = field(default_factory=list)  # the k most probable labels, best first


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
    bundled code/assets/demo_encoder, hfl/chinese-roberta-wwm-ext-large: what train.py starts from); weights missing
    or cut short (a copy or download that did not finish, a full disk)."""
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


class Predictor:
    """Label new texts with one of the model's task heads, in length-sorted batches, answers in input order."""

    def __init__(self, model: BertMultiTaskModel, tokenizer, batch_size: int = 64, device: Optional[str] = None):
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self.device).eval()
        self.config = model.config
        # the length training truncated to (a model saved without training records none: the model's limit)
        max_length = self.config.max_seq_length or self.config.max_position_embeddings
        self.backend = truncating_backend(tokenizer, max_length)
        self.collate = MultiTaskCollator(tokenizer.pad_token_id)
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(cls, name_or_path: str, batch_size: int = 64, device: Optional[str] = None) -> "Predictor":
        path = model_path(name_or_path)
        check_trained_model(path)
        model = load_model(path, None, [])
        return cls(model, load_tokenizer(tokenizer_source(path, str(BUNDLED_TOKENIZER_DIR))), batch_size, device)

    @property
    def tasks(self) -> list[str]:
        return list(self.config.task_names)

    def text_columns(self, task: str) -> list[str]:
        return list(self.config.head(task).text_columns)

    def encode(self, task: str, texts: Sequence[str] | Sequence[Sequence[str]]) -> dict[str, torch.Tensor]:
        """Token ids as training cached them: the task's cleaner, then the tokenizer truncating to max_seq_length."""
        columns = self.text_columns(task)
        rows = [[t] if isinstance(t, str) else list(t) for t in texts]
        bad = next((i for i, r in enumerate(rows) if len(r) != len(columns)), None)
        if bad is not None:
            raise UsageError(f"{task} reads {len(columns)} text(s) per row ({', '.join(columns)}); row {bad + 1} has "
                             f"{len(rows[bad])}")
        cleaner = self.config.head(task).cleaner
        return encode_with(self.backend, [clean_texts(cleaner, [r[c] for r in rows]) for c in range(len(columns))])

    def predict(self, task: str, texts: Sequence[str] | Sequence[Sequence[str]], top_k: int = 1) -> list[Prediction]:
        """One Prediction per text (a sentence-pair task takes (text, text2) pairs), in the order given."""
        features = self.encode(task, texts)
        rows = len(texts)
        features.update(labels=torch.full((rows,), IGNORE_LABEL), ids=[str(i) for i in range(rows)])
        dataset = SingleTaskDataset(features, self.config.task_index(task))
        # longest first, so each batch pads little; the answers go back to input order
        order = torch.argsort(dataset.lengths, descending=True, stable=True).tolist()
        head = self.config.tasks[dataset.task_id]
        probabilities = torch.empty((rows, head.num_labels))
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                index = order[start:start + self.batch_size]
                batch = self.collate([dataset[i] for i in index])
                inputs = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
                logits = self.model(**inputs).logits
                probabilities[index] = torch.softmax(logits.float(), dim=-1).cpu()
        labels = head.labels
        k = max(1, min(top_k, len(labels)))
        top = torch.topk(probabilities, k, dim=-1)
        result = []
        for values, indices in zip(top.values.tolist(), top.indices.tolist()):
            scores = [LabelScore(labels[i], head.label_name(labels[i]), p) for p, i in zip(values, indices)]
            result.append(Prediction(scores[0].label, scores[0].label_name, scores[0].probability,
                                     scores if top_k > 1 else []))
        return result
