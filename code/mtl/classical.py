"""Classical peers on the same split and metric (each task's, from its spec): majority class, and TF-IDF character
1-3-grams + logistic regression."""
from __future__ import annotations

import logging
import time

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from .cache import DataSettings
from .labels import label2id_for
from .metrics import SCORERS
from .task_files import TaskFiles, subsample, train_validation_tables
from .tasks import Task

logger = logging.getLogger(__name__)


def task_split_texts(task: Task, settings: DataSettings) -> tuple[dict[str, list[str]], list[str], dict[str, list[str]], list[str]]:
    """The cleaned texts and labels of the same train/validation split the caches use (same function, seed, ratio)."""
    _, train, val, _ = train_validation_tables(task, TaskFiles.of(task, settings.data_dir, None), settings.reading)
    train = subsample(train, settings.max_train_samples, settings.reading.split_seed)  # the rows train.py trains on
    texts = lambda table: {c: table.columns[c] for c in task.text_columns}  # noqa: E731
    return texts(train), train.columns["label"], texts(val), val.columns["label"]


def majority_predictions(train_labels: list[str], rows: int) -> list[str]:
    values, counts = np.unique(train_labels, return_counts=True)
    return [str(values[counts.argmax()])] * rows


def tfidf_lr_predictions(train: dict[str, list[str]], train_labels: list[str], val: dict[str, list[str]],
                         C: float = 1.0) -> list[str]:
    """One character 1-3-gram TF-IDF per text column (a pair gets two, side by side), then logistic regression."""
    blocks_train, blocks_val = [], []
    for column in train:
        vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=2, sublinear_tf=True)
        blocks_train.append(vectorizer.fit_transform(train[column]))
        blocks_val.append(vectorizer.transform(val[column]))
    x_train, x_val = sp.hstack(blocks_train).tocsr(), sp.hstack(blocks_val).tocsr()
    classifier = LogisticRegression(C=C, max_iter=2000)
    classifier.fit(x_train, train_labels)
    return [str(x) for x in classifier.predict(x_val)]


def task_score(task: Task, gold: list[str], predicted: list[str]) -> float:
    """The task's own metric (its spec's; macro-F1 for the competition's), as train.py reports it."""
    label2id = label2id_for(task.labels if task.labels is not None else set(gold) | set(predicted))
    pos = label2id[task.metric.pos_label] if task.metric.pos_label is not None else None
    ids = lambda labels: np.array([label2id[x] for x in labels])  # noqa: E731
    return float(SCORERS[task.metric.name](ids(gold), ids(predicted), pos))


def classical_scores(tasks: list[Task], settings: DataSettings) -> dict[str, dict[str, float]]:
    """{'majority': {task: score, ..., 'avg': mean}, 'tfidf_lr': {...}} on the validation split, each task scored by
    its metric."""
    out: dict[str, dict[str, float]] = {"majority": {}, "tfidf_lr": {}}
    for task in tasks:
        start = time.perf_counter()
        train, y_train, val, y_val = task_split_texts(task, settings)
        out["majority"][task.name] = task_score(task, y_val, majority_predictions(y_train, len(y_val)))
        out["tfidf_lr"][task.name] = task_score(task, y_val, tfidf_lr_predictions(train, y_train, val))
        logger.info("%s: majority %.4f, tfidf+lr %.4f (%.1fs)", task.name, out["majority"][task.name],
                    out["tfidf_lr"][task.name], time.perf_counter() - start)
    for scores in out.values():
        scores["avg"] = float(np.mean([scores[t.name] for t in tasks]))
    return out
