"""The classical peers use exactly the validation split that train.py's caches hold."""
from __future__ import annotations

from helpers import data_settings
from mtl.cache import load_or_build_task
from mtl.classical import majority_predictions, task_score, task_split_texts, tfidf_lr_predictions
from mtl.labels import label2id_for
from mtl.tasks import TASKS


def test_peers_score_the_cached_validation_split(tmp_path, small_data_dir, tokenizer):
    task = TASKS["ocemotion"]
    settings = data_settings(tmp_path, small_data_dir)
    cached = load_or_build_task(task, tokenizer, settings)
    train, y_train, val, y_val = task_split_texts(task, settings)
    id2label = {i: label for label, i in label2id_for(task.labels).items()}
    assert y_val == [id2label[int(i)] for i in cached["val"]["labels"]]
    assert len(y_train) == len(cached["train"]["ids"])
    assert all("😆" not in t for t in train["text"])  # cleaned like the caches
    majority = task_score(task, y_val, majority_predictions(y_train, len(y_val)))
    assert 0.0 <= majority < task_score(task, y_val, tfidf_lr_predictions(train, y_train, val)) <= 1.0


def test_a_peer_is_scored_by_the_tasks_own_metric():
    from helpers import REPO_ROOT
    from mtl.tasks import load_spec

    task = load_spec(REPO_ROOT / "data" / "extra" / "waimai_sentiment.json")  # F1 of the positive class "1"
    gold, predicted = ["1", "1", "0", "0"], ["1", "0", "0", "0"]
    assert task_score(task, gold, predicted) == 2 / 3  # precision 1, recall 1/2
    assert task_score(TASKS["ocnli"], ["0", "1", "2"], ["0", "1", "1"]) == (1 + 2 / 3 + 0) / 3  # macro-F1
