"""Classical peers on the same split and metric: majority class, and TF-IDF character 1-3-grams + logistic regression."""
from __future__ import annotations

import logging
import time

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

from .args import DataTrainingArguments
from .task_files import TaskFiles, train_validation_tables
from .tasks import Task

logger = logging.getLogger(__name__)


def task_split_texts(task: Task, args: DataTrainingArguments) -> tuple[dict[str, list[str]], list[str], dict[str, list[str]], list[str]]:
    """The cleaned texts and labels of the same train/validation split the caches use (same function, seed, ratio)."""
    _, train, val, _ = train_validation_tables(task, TaskFiles.of(task, args.data_dir, None), args)
    texts = lambda table: {c: table.columns[c] for c in task.text_columns}  # noqa: E731
    return texts(train), train.columns["label"], texts(val), val.columns["label"]


def majority_f1(train_labels: list[str], val_labels: list[str]) -> float:
    values, counts = np.unique(train_labels, return_counts=True)
    guess = values[counts.argmax()]
    return float(f1_score(val_labels, [guess] * len(val_labels), average="macro"))


def tfidf_lr_f1(train: dict[str, list[str]], train_labels: list[str], val: dict[str, list[str]],
                val_labels: list[str], C: float = 1.0) -> float:
    """One character 1-3-gram TF-IDF per text column (a pair gets two, side by side), then logistic regression."""
    blocks_train, blocks_val = [], []
    for column in train:
        vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=2, sublinear_tf=True)
        blocks_train.append(vectorizer.fit_transform(train[column]))
        blocks_val.append(vectorizer.transform(val[column]))
    x_train, x_val = sp.hstack(blocks_train).tocsr(), sp.hstack(blocks_val).tocsr()
    classifier = LogisticRegression(C=C, max_iter=2000)
    classifier.fit(x_train, train_labels)
    return float(f1_score(val_labels, classifier.predict(x_val), average="macro"))


def classical_scores(tasks: list[Task], args: DataTrainingArguments) -> dict[str, dict[str, float]]:
    """{'majority': {task: F1, ..., 'avg': mean}, 'tfidf_lr': {...}} on the validation split."""
    out: dict[str, dict[str, float]] = {"majority": {}, "tfidf_lr": {}}
    for task in tasks:
        start = time.perf_counter()
        train, y_train, val, y_val = task_split_texts(task, args)
        out["majority"][task.name] = majority_f1(y_train, y_val)
        out["tfidf_lr"][task.name] = tfidf_lr_f1(train, y_train, val, y_val)
        logger.info("%s: majority %.4f, tfidf+lr %.4f (%.1fs)", task.name, out["majority"][task.name],
                    out["tfidf_lr"][task.name], time.perf_counter() - start)
    for scores in out.values():
        scores["avg"] = float(np.mean([scores[t.name] for t in tasks]))
    return out
