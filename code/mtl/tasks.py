"""The task registry: one entry per task; everything task-specific downstream is read from here."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional

from .errors import UsageError

ROUND1_DIR = "nlp_round1_data"
ROUND2_DIR = "nlp_round2_data"


@dataclass(frozen=True)
class Task:
    """A classification task: its raw files, column layout, label set and text cleaner."""

    name: str  # lower case, used in file names, metric names and the model config
    train_file: str  # under ROUND1_DIR
    test_a_file: str  # under ROUND1_DIR
    test_b_file: str  # under ROUND2_DIR
    text_columns: tuple[str, ...]  # one column: single sentence; two: sentence pair
    labels: tuple[str, ...]  # every label string a train row may carry
    cleaner: Optional[str] = None  # a name in mtl.cleaning.CLEANERS, or None for unchanged text
    label_names: Optional[dict[str, str]] = field(default=None, hash=False)  # label -> readable name (default: itself)

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    def label_name(self, label: str) -> str:
        return (self.label_names or {}).get(label, label)

    @property
    def file_prefix(self) -> str:
        """Upper-case name, as the competition names its train files (OCNLI_train1128.csv)."""
        return self.name.upper()

    def columns(self, with_label: bool) -> tuple[str, ...]:
        return ("id", *self.text_columns) + (("label",) if with_label else ())


# CLUE's TNEWS label descriptions (its labels.json): the competition kept the codes.
TNEWS_LABEL_NAMES = {
    "100": "news_story", "101": "news_culture", "102": "news_entertainment", "103": "news_sports",
    "104": "news_finance", "106": "news_house", "107": "news_car", "108": "news_edu", "109": "news_tech",
    "110": "news_military", "112": "news_travel", "113": "news_world", "114": "news_stock",
    "115": "news_agriculture", "116": "news_game",
}

TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task(
            name="ocnli",
            train_file="OCNLI_train1128.csv",
            test_a_file="OCNLI_a.csv",
            test_b_file="ocnli_test_B.csv",
            text_columns=("premise", "hypothesis"),
            labels=("0", "1", "2"),
            label_names={"0": "entailment", "1": "neutral", "2": "contradiction"},
        ),
        Task(
            name="ocemotion",
            train_file="OCEMOTION_train1128.csv",
            test_a_file="OCEMOTION_a.csv",
            test_b_file="ocemotion_test_B.csv",
            text_columns=("text",),
            labels=("sadness", "happiness", "disgust", "anger", "like", "surprise", "fear"),
            cleaner="ocemotion",
        ),
        Task(
            name="tnews",
            train_file="TNEWS_train1128.csv",
            test_a_file="TNEWS_a.csv",
            test_b_file="tnews_test_B.csv",
            text_columns=("text",),
            labels=tuple(str(c) for c in range(100, 117) if c not in (105, 111)),
            label_names=TNEWS_LABEL_NAMES,
        ),
    )
}


def get_tasks(names: Optional[Iterable[str]] = None) -> list[Task]:
    """Registry entries for `names` (comma-separated string or list), all tasks when None, in registry order."""
    if names is None:
        return list(TASKS.values())
    if isinstance(names, str):
        names = [n for n in names.split(",") if n.strip()]
    wanted = [n.strip().lower() for n in names]
    unknown = [n for n in wanted if n not in TASKS]
    if unknown:
        raise UsageError(f"unknown task(s) {unknown}; known: {sorted(TASKS)}")
    return [t for t in TASKS.values() if t.name in wanted]
