"""ONNX Runtime against PyTorch eager for labelling texts (CPU): int8's agreement with fp32, and rows/s.

A trained model (`--model_dir`; by default one trained here: the bundled demo encoder fine-tuned for --train_steps
steps with the demo profile's stage-1 settings, logit adjustment 0.3 included) is exported twice, fp32 and int8.
Accuracy: on each task's validation split (the rows train.py holds out: the same reader, split ratio and seed),
int8's labels against fp32's, and both macro-F1s against the gold labels. Speed: the bundled TNEWS and OCNLI test B
files (1,500 headlines, 1,500 sentence pairs) through Predictor.predict (read, clean, tokenize, length-sorted
batches of 64) on PyTorch eager, ONNX fp32 and ONNX int8: the same rows, the same batch size and the same threads,
side by side, order rotated each repeat, the median kept; "model only" times the forward passes of the same batches
(tokenization excluded). Then a randomly initialised model of RoBERTa-large shape (hidden 1024, 24 layers, 16
heads) on fewer rows.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from common import REPO_ROOT, header, results_path, table, work_dir, write_section
from mtl.args import DataTrainingArguments
from mtl.cache import load_or_build_task, read_label2id
from mtl.labels import label2id_for
from mtl.metrics import SCORERS
from mtl.model import load_model
from mtl.onnx_export import export_model
from mtl.paths import BUNDLED_TOKENIZER_DIR, resolve
from mtl.predictor import Predictor
from mtl.tasks import TASKS
from mtl.tokenizer import load_tokenizer
from predict_speed import texts_of

LARGE = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096)
BACKENDS = ("torch", "onnx fp32", "onnx int8")


def train_demo(folder, steps: int) -> None:
    """The bundled demo encoder fine-tuned for `steps` steps with run.sh's demo stage-1 settings."""
    subprocess.run([sys.executable, str(REPO_ROOT / "code/train.py"), str(REPO_ROOT / "code/assets/profiles/demo_stage1.json"),
                    "--model_name_or_path", str(REPO_ROOT / "code/assets/demo_encoder"), *data_args(folder.parent),
                    "--output_dir", str(folder), "--do_train", "--max_steps", str(steps), "--eval_strategy", "no",
                    "--save_strategy", "no", "--load_best_model_at_end", "false", "--report_to", "none",
                    "--disable_tqdm", "true", "--pseudo", "false"], check=True)


def data_args(folder) -> list[str]:
    return ["--data_dir", str(REPO_ROOT / "tcdata"), "--data_save_dir", str(folder), "--cleaned_dir", str(folder)]


def exports(model_dir, out) -> dict[str, str]:
    """The model and its fp32 and int8 exports, by backend name (this script's earlier exports removed first: they
    may be of another model, which export.py would refuse to replace)."""
    folders = {"torch": str(model_dir)}
    for quantize in ("fp32", "int8"):
        shutil.rmtree(out / quantize, ignore_errors=True)
        export_model(str(model_dir), out / quantize, None if quantize == "fp32" else quantize)
        folders[f"onnx {quantize}"] = str(out / quantize)
    return folders


def with_default_int8(fp32, folder) -> str:
    """A copy of the fp32 export quantized with quantize_dynamic's defaults (every op it can, embeddings included; one
    scale per tensor), to compare with export.py's int8 (linear layers only, a scale per output channel)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(fp32, folder)
    quantize_dynamic(Path(fp32) / "model.onnx", folder / "model.onnx", weight_type=QuantType.QInt8)
    return str(folder)


def accuracy(folders: dict[str, str], work, rows: int | None) -> list[dict]:
    """Per task, on its validation split: int8's labels against fp32's, and each one's macro-F1."""
    variants = {"onnx fp32": folders["onnx fp32"], "onnx int8": folders["onnx int8"],
                "defaults": with_default_int8(folders["onnx fp32"], work / "exports" / "int8_defaults")}
    predictors = {name: Predictor.from_pretrained(folder) for name, folder in variants.items()}
    config = predictors["onnx fp32"].config
    settings = DataTrainingArguments(data_dir=str(REPO_ROOT / "tcdata"), cleaned_dir=str(work),
                                     data_save_dir=str(work), tokenizer_dir=str(BUNDLED_TOKENIZER_DIR),
                                     max_seq_length=config.max_seq_length).data_settings()
    tokenizer = load_tokenizer(BUNDLED_TOKENIZER_DIR)
    results = []
    for task in config.task_names:
        val = load_or_build_task(TASKS[task], tokenizer, settings)["val"]
        if rows is not None:
            val = {"input_ids": val["input_ids"], "token_type_ids": val["token_type_ids"],
                   "offsets": val["offsets"][:rows + 1], "labels": val["labels"][:rows]}
        id2label = {i: label for label, i in read_label2id(TASKS[task], settings.data_save_dir).items()}
        gold = [id2label[int(i)] for i in val["labels"]]
        labels = {}
        for name, predictor in predictors.items():
            ids = predictor.probabilities(task, val).argmax(-1).tolist()
            labels[name] = [config.head(task).labels[i] for i in ids]
        f1 = {name: SCORERS["macro_f1"](gold, predicted, None) for name, predicted in labels.items()}
        agree = {name: np.mean([a == b for a, b in zip(labels["onnx fp32"], predicted)])
                 for name, predicted in labels.items()}
        results.append({"task": task, "validation rows": len(gold),
                        "int8 = fp32 labels": f"{agree['onnx int8']:.4f}",
                        "macro-F1 fp32": f"{f1['onnx fp32']:.4f}", "macro-F1 int8": f"{f1['onnx int8']:.4f}",
                        "Δ macro-F1": f"{f1['onnx int8'] - f1['onnx fp32']:+.4f}",
                        "quantize_dynamic defaults: = fp32 labels": f"{agree['defaults']:.4f}",
                        "its Δ macro-F1": f"{f1['defaults'] - f1['onnx fp32']:+.4f}"})
    return results


def speed(folders: dict[str, str], tasks: list[str], rows: int | None, repeats: int, label: str) -> list[dict]:
    """rows/s of each backend on the same rows (end to end, and the forward passes alone); medians of `repeats`
    runs, the backends' order rotated each run."""
    predictors = {name: Predictor.from_pretrained(folder, batch_size=64, device="cpu")
                  for name, folder in folders.items()}
    results = []
    for task in tasks:
        texts = texts_of(task, rows)
        features = predictors["torch"].encode(task, texts)
        times = {name: {"end to end": [], "model only": []} for name in predictors}
        for predictor in predictors.values():
            predictor.predict(task, texts[:64])  # warm-up (ONNX Runtime plans its first shapes)
        for run in range(repeats):
            order = list(predictors)[run % len(predictors):] + list(predictors)[:run % len(predictors)]
            for name in order:
                start = time.perf_counter()
                predictors[name].predict(task, texts)
                times[name]["end to end"].append(time.perf_counter() - start)
                start = time.perf_counter()
                predictors[name].probabilities(task, features)
                times[name]["model only"].append(time.perf_counter() - start)
        eager = {kind: statistics.median(t) for kind, t in times["torch"].items()}
        for name, measured in times.items():
            median = {kind: statistics.median(t) for kind, t in measured.items()}
            results.append({"model": label, "task": task, "rows": len(texts), "backend": name,
                            "rows/s end to end": f"{len(texts) / median['end to end']:,.1f}",
                            "× eager": f"{eager['end to end'] / median['end to end']:.2f}x",
                            "rows/s model only": f"{len(texts) / median['model only']:,.1f}",
                            "× eager (model only)": f"{eager['model only'] / median['model only']:.2f}x"})
    return results


def size_mb(folder: str) -> str:
    return f"{(Path(folder) / 'model.onnx').stat().st_size / 1e6:,.1f} MB"


def random_model(folder, shape: dict) -> None:
    """A randomly initialised model of the tiny config's vocabulary and `shape`, with the three competition heads."""
    torch.manual_seed(0)
    model = load_model(None, str(REPO_ROOT / "code/assets/configs/tiny.json"),
                       [TASKS[t].head(label2id_for(TASKS[t].labels)) for t in TASKS],
                       config_overrides=",".join(f"{k}={v}" for k, v in shape.items()) or None)
    model.config.max_seq_length = 128
    model.save_pretrained(folder)
    load_tokenizer(BUNDLED_TOKENIZER_DIR).save_pretrained(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model_dir", help="A trained model (default: train one here, see --train_steps).")
    parser.add_argument("--train_steps", type=int, default=600, help="Steps of the model trained when --model_dir "
                        "is not given (reused when already there).")
    parser.add_argument("--threads", type=int, default=2, help="Intra-op threads of PyTorch and ONNX Runtime.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--large_rows", type=int, default=256, help="Rows of each task for the large shape.")
    parser.add_argument("--smoke", action="store_true", help="Tiny models, a few rows, results not kept.")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)  # ONNX Runtime takes the same number (mtl.onnx_backend)
    work = work_dir("onnx_speed")
    model_dir = resolve(args.model_dir) if args.model_dir else work / "model"
    if args.smoke:  # a random tiny model: the paths run, the numbers mean nothing
        model_dir = work / "smoke_model"
        random_model(model_dir, {})
    elif not args.model_dir and not (model_dir / "model.safetensors").is_file():
        train_demo(model_dir, args.train_steps)
    rows = 40 if args.smoke else None
    repeats = 1 if args.smoke else args.repeats
    folders = exports(model_dir, work / "exports")
    sizes = {name: size_mb(folder) for name, folder in folders.items() if name != "torch"}
    quality = accuracy(folders, work, rows)
    fast = speed(folders, ["tnews", "ocnli"], rows, repeats, "trained" if not args.smoke else "tiny")
    if not args.smoke:  # smoke mode skips the two exports of a second model
        large = work / "large"
        random_model(large, LARGE)
        large_folders = exports(large, work / "large_exports")
        sizes.update({f"RoBERTa-large shape {name}": size_mb(folder) for name, folder in large_folders.items()
                      if name != "torch"})
        fast += speed(large_folders, ["tnews", "ocnli"], args.large_rows, repeats, "RoBERTa-large shape")
    config = json.loads((model_dir / "config.json").read_text())
    text = header("ONNX Runtime: int8 against fp32 and PyTorch eager (CPU)", "python bench/onnx_speed.py"
                  + (f" --model_dir {args.model_dir}" if args.model_dir else ""))
    steps = json.loads((model_dir / "trainer_state.json").read_text())["global_step"] \
        if (model_dir / "trainer_state.json").is_file() else "?"
    name = ("a random tiny model (smoke)" if args.smoke else args.model_dir if args.model_dir
            else f"the bundled demo encoder fine-tuned for {steps} steps with the demo's stage-1 settings")
    text += (f"Model: {name} (hidden "
             f"{config['hidden_size']}, {config['num_hidden_layers']} layers, truncation {config['max_seq_length']}, "
             f"logit adjustment {config['logit_adjustment']}); {args.threads} threads for PyTorch and ONNX Runtime; "
             "int8: export.py's (ONNX Runtime's dynamic quantization of the linear layers: int8 weights, a scale per "
             "output channel; embeddings fp32); for comparison, quantize_dynamic's defaults (every op it can, the "
             "embeddings too, a scale per tensor).\n\n")
    text += "Validation splits (the rows train.py holds out):\n\n" + table(quality, list(quality[0]))
    text += "\nSpeed (test B files; batches of 64, length-sorted; medians):\n\n" + table(fast, list(fast[0]))
    text += "\nmodel.onnx: " + ", ".join(f"{name} {mb}" for name, mb in sizes.items()) + ".\n"
    write_section(results_path("onnx", args.smoke, args.out), text)


if __name__ == "__main__":
    main()
