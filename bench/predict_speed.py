"""Labelling new texts: the Predictor (length-sorted batches) against a one-text-at-a-time loop over the same model.

The model: the demo size (code/assets/configs/demo.json: hidden 128, 4 layers) with its weights saved by
`save_pretrained` and loaded back as predict.py loads them; speed does not depend on what the weights learned.
The texts: the bundled TNEWS test B file (1,500 headlines) and OCNLI test B (1,500 sentence pairs).
The loop is what a user writes by hand: tokenizer(text, truncation=True) -> model -> softmax, one row per call.
`pipeline("text-classification")` is not comparable: it drives single-head sequence classifiers, and the model
here needs the task's head index and (OCEMOTION) the task's cleaner.
"""
from __future__ import annotations

import argparse
import tempfile
import time

import torch
from transformers import BertConfig

from common import REPO_ROOT, header, results_path, table, write_section
from mtl.labels import label2id_for
from mtl.model import load_model
from mtl.paths import BUNDLED_TOKENIZER_DIR
from mtl.predictor import Predictor
from mtl.readers import read_task_file
from mtl.tasks import TASKS
from mtl.tokenizer import load_tokenizer


def texts_of(task: str, rows: int | None) -> list:
    t = TASKS[task]
    table_, _ = read_task_file(t, t.test_path("b", REPO_ROOT / "tcdata"), False, max_rows=rows)
    columns = [table_.columns[c] for c in t.text_columns]
    return columns[0] if len(columns) == 1 else list(zip(*columns))


def one_at_a_time(model, tokenizer, task_id: int, texts: list, max_length: int) -> list[int]:
    labels = []
    with torch.inference_mode():
        for text in texts:
            pair = (text,) if isinstance(text, str) else tuple(text)
            inputs = tokenizer(*pair, truncation=True, max_length=max_length, return_tensors="pt")
            logits = model(**inputs, task_id=task_id).logits
            labels.append(int(torch.softmax(logits.float(), -1).argmax()))
    return labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="A few rows, results not kept.")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    rows = 40 if args.smoke else None
    torch.manual_seed(0)
    tasks = list(TASKS)
    config = BertConfig.from_json_file(str(REPO_ROOT / "code" / "assets" / "configs" / "demo.json"))
    model = load_model(None, str(REPO_ROOT / "code" / "assets" / "configs" / "demo.json"),
                       [TASKS[t].head(label2id_for(TASKS[t].labels)) for t in tasks])
    model.config.max_seq_length = 128  # the demo profile's truncation
    tokenizer = load_tokenizer(BUNDLED_TOKENIZER_DIR)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        predictor = Predictor.from_pretrained(tmp, batch_size=64, device="cpu")
        for task in ("tnews", "ocnli"):
            texts = texts_of(task, rows)
            predictor.predict(task, texts[:64])  # warm-up
            start = time.perf_counter()
            batched = predictor.predict(task, texts)
            batched_s = time.perf_counter() - start
            loop_model = predictor.model
            start = time.perf_counter()
            looped = one_at_a_time(loop_model, tokenizer, predictor.config.task_index(task), texts, 128)
            loop_s = time.perf_counter() - start
            names = predictor.config.head(task).labels
            agree = sum(names[k] == p.label for k, p in zip(looped, batched)) / len(texts)
            results.append({"task": task, "rows": len(texts), "Predictor rows/s (batch 64, length-sorted)":
                            f"{len(texts) / batched_s:,.0f}", "one-at-a-time rows/s": f"{len(texts) / loop_s:,.0f}",
                            "speed-up": f"{loop_s / batched_s:.1f}x", "same labels": f"{agree:.4f}"})
    text = header("Labelling new texts: Predictor vs a one-at-a-time loop (CPU)", "python bench/predict_speed.py")
    text += (f"Model: the demo size ({config.hidden_size} hidden, {config.num_hidden_layers} layers), truncation "
             "128; texts: the bundled test B files. Both paths run the same loaded model on the same device; the "
             "loop tokenizes and runs one row per call, as code written by hand does.\n\n")
    text += table(results, list(results[0]))
    text += ("\n`pipeline(\"text-classification\")` is not comparable: it drives single-head sequence classifiers, "
             "and this model needs the task's head and (OCEMOTION) the task's cleaner.\n")
    write_section(results_path("predict", args.smoke, args.out), text)


if __name__ == "__main__":
    main()
