"""Predictor: a trained multi-task model labelling new texts, cleaned and truncated exactly as in training.

    predictor = Predictor.from_pretrained("user_data/stage2")
    predictor.predict("tnews", ["华为发布新款折叠屏手机"])[0].label_name   # 'news_tech'

The same for an ONNX export (code/export.py's output folder), run on ONNX Runtime (mtl.backends).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch

from .backends import OnnxBackend, TorchBackend, open_backend
from .cleaning import clean_texts
from .data import MultiTaskCollator, SingleTaskDataset
from .encoding import encode_with, truncating_backend
from .errors import UsageError
from .labels import IGNORE_LABEL
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


class Predictor:
    """Label new texts with one of the model's task heads, in length-sorted batches, answers in input order."""

    def __init__(self, backend: TorchBackend | OnnxBackend, tokenizer, batch_size: int = 64):
        self.backend = backend
        self.config = backend.config
        # the length training truncated to (a model saved without training records none: the model's limit)
        max_length = self.config.max_seq_length or self.config.max_position_embeddings
        self.tokenize = truncating_backend(tokenizer, max_length)
        self.collate = MultiTaskCollator(tokenizer.pad_token_id)
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(cls, name_or_path: str, batch_size: int = 64, device: Optional[str] = None,
                        backend: str = "auto") -> "Predictor":
        """`backend`: torch (the PyTorch model), onnx (an export folder written by code/export.py, run on ONNX
        Runtime), or auto (by what the folder holds)."""
        path = model_path(name_or_path)
        return cls(open_backend(path, backend, device),
                   load_tokenizer(tokenizer_source(path, str(BUNDLED_TOKENIZER_DIR))), batch_size)

    @property
    def model(self):
        """The PyTorch model (of the torch backend; an ONNX export has none)."""
        return self.backend.model

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
        return encode_with(self.tokenize, [clean_texts(cleaner, [r[c] for r in rows]) for c in range(len(columns))])

    def predict(self, task: str, texts: Sequence[str] | Sequence[Sequence[str]], top_k: int = 1) -> list[Prediction]:
        """One Prediction per text (a sentence-pair task takes (text, text2) pairs), in the order given."""
        head = self.config.head(task)
        probabilities = self.probabilities(task, self.encode(task, texts))
        labels = head.labels
        k = max(1, min(top_k, len(labels)))
        top = torch.topk(probabilities, k, dim=-1)
        result = []
        for values, indices in zip(top.values.tolist(), top.indices.tolist()):
            scores = [LabelScore(labels[i], head.label_name(labels[i]), p) for p, i in zip(values, indices)]
            result.append(Prediction(scores[0].label, scores[0].label_name, scores[0].probability,
                                     scores if top_k > 1 else []))
        return result

    def probabilities(self, task: str, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """Class probabilities (rows x classes, float32) of encoded rows (`encode`'s layout, or a token cache's
        split), run in length-sorted batches, in the rows' order."""
        rows = len(features["offsets"]) - 1
        dataset = SingleTaskDataset({**features, "labels": torch.full((rows,), IGNORE_LABEL),
                                     "ids": [str(i) for i in range(rows)]}, self.config.task_index(task))
        # longest first, so each batch pads little; the answers go back to input order
        order = torch.argsort(dataset.lengths, descending=True, stable=True).tolist()
        probabilities = torch.empty((rows, self.config.tasks[dataset.task_id].num_labels))
        for start in range(0, len(order), self.batch_size):
            index = order[start:start + self.batch_size]
            logits = self.backend.logits(dataset.task_id, self.collate([dataset[i] for i in index]))
            probabilities[index] = torch.softmax(logits.float(), dim=-1)
        return probabilities
