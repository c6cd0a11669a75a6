"""The classical peers use exactly the validation split that train.py's caches hold."""
from __future__ import annotations

from helpers import data_args
from mtl.cache import load_or_build_task
from mtl.classical import majority_f1, task_split_texts, tfidf_lr_f1
from mtl.labels import label2id_for
from mtl.tasks import TASKS


def test_peers_score_the_cached_validation_split(tmp_path, small_data_dir, tokenizer):
    task = TASKS["ocemotion"]
    args = data_args(tmp_path, small_data_dir)
    cached = load_or_build_task(task, tokenizer, args)
    train, y_train, val, y_val = task_split_texts(task, args)
    id2label = {i: label for label, i in label2id_for(task.labels).items()}
    assert y_val == [id2label[int(i)] for i in cached["val"]["labels"]]
    assert len(y_train) == len(cached["train"]["ids"])
    assert all("😆" not in t for t in train["text"])  # cleaned like the caches
    assert 0.0 <= majority_f1(y_train, y_val) < tfidf_lr_f1(train, y_train, val, y_val) <= 1.0
