"""The model's record of one task: what its head predicts and how the task's texts are read.

Standard library only: `save_pretrained` copies this file beside the weights with model.py (which imports it), so a
model loads through `AutoModel.from_pretrained(dir, trust_remote_code=True)` where this repository is absent.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass
class TaskHead:
    """One task head: config.json keeps a list of these under "tasks", one dict each."""

    name: str
    labels: list[str]  # the raw labels by class id, as in the training data (TNEWS '109')
    label_names: dict[str, str] = field(default_factory=dict)  # label -> readable name ('news_tech')
    text_columns: list[str] = field(default_factory=lambda: ["text"])  # one: single texts; two: sentence pairs
    cleaner: Optional[str] = None  # a name in mtl.cleaning.CLEANERS; None leaves texts unchanged
    class_priors: Optional[list[float]] = None  # train-split class frequencies, for the post-hoc logit adjustment

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    def label_name(self, label: str) -> str:
        """The readable name of a raw label (the label itself where none was given)."""
        return self.label_names.get(label, label)
