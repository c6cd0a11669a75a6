"""Label new texts with a trained model: `python code/predict.py --help`.

    python code/predict.py --model_name_or_path user_data/stage2 --tasks tnews --text "华为发布新款折叠屏手机"
    python code/predict.py --model_name_or_path user_data/stage2 --tasks tnews,ocemotion --input_file new.tsv \\
        --output_file out.jsonl --top_k 3

Input (--text, --input_file, or standard input): plain lines (a sentence pair: two tab-separated texts), the
competition's test layout (id<TAB>text[<TAB>text2], no header), TSV or CSV with a header naming the task's text
columns, or JSONL with such fields; `--input_format` overrides the detection. Output: one JSON object per input row
and task, in input order: id, task, label (raw, as in the training data), label_name, probability, and with
--top_k K > 1 the K most probable labels. An ONNX export (code/export.py's output folder) runs on ONNX Runtime.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

from mtl.atomic_write import write_text_atomic
from mtl.backends import BACKENDS
from mtl.errors import ArgumentParser, UsageError, run_cli
from mtl.new_texts import FORMATS, read_new_texts
from mtl.paths import resolve
from mtl.predictor import Predictor

logger = logging.getLogger("predict")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name_or_path", required=True, help="A model saved by train.py (a directory).")
    parser.add_argument("--tasks", required=True, help="Comma-separated task heads to apply, e.g. tnews,ocemotion.")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--text", action="append", help="A text to label (repeatable); a pair: two texts separated "
                        "by a tab. Without --text or --input_file, lines are read from standard input.")
    source.add_argument("--input_file", help="A file of texts in any of the formats above.")
    parser.add_argument("--input_format", default="auto", choices=FORMATS, help="How to read the input (default: "
                        "by the file's suffix and first line).")
    parser.add_argument("--output_file", help="Where the JSON lines go (written whole at the end); default stdout.")
    parser.add_argument("--top_k", type=int, default=1, help="Also list the K most probable labels (K > 1).")
    parser.add_argument("--batch_size", type=int, default=64, help="Texts per forward pass (length-sorted).")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda when available).")
    parser.add_argument("--backend", default="auto", choices=BACKENDS, help="torch: the PyTorch model; onnx: an "
                        "export folder written by code/export.py, run on ONNX Runtime (CPU); auto (default): by what "
                        "the folder holds.")
    parser.add_argument("--skip_bad_rows", action="store_true", help="Drop malformed rows (reported by line) "
                        "instead of stopping.")
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.top_k < 1:
        parser.error("--batch_size and --top_k must be at least 1")
    return args


def read_input(args: argparse.Namespace) -> tuple[str, bytes, str]:
    """(name for messages, bytes, format) of --text, --input_file or standard input."""
    if args.text is not None:
        return "--text", "\n".join(args.text).encode() + b"\n", "lines"
    if args.input_file:
        path = resolve(args.input_file)
        if not path.is_file():
            raise UsageError(f"{args.input_file}: no such file")
        return str(path), path.read_bytes(), args.input_format
    return "<stdin>", sys.stdin.buffer.read(), args.input_format


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO,
                        stream=sys.stderr)
    name, data, fmt = read_input(args)  # a missing input file stops here, before the model is loaded
    predictor = Predictor.from_pretrained(args.model_name_or_path, args.batch_size, args.device, args.backend)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    for task in tasks:
        predictor.config.task_index(task)  # an unknown task stops here, before any work
    keyed = []
    for task in tasks:
        table, report, used = read_new_texts(name, data, predictor.text_columns(task), fmt, args.skip_bad_rows)
        texts = list(zip(*(table.columns[c] for c in predictor.text_columns(task))))
        predictions = predictor.predict(task, texts, args.top_k)
        logger.info("%s: %s (%s format): %d rows read, %d predicted, %d skipped%s", task, name, used,
                    report.rows + len(report.dropped), len(texts), len(report.dropped),
                    f", {report.blank_lines} blank lines" if report.blank_lines else "")
        for row_id, line, p in zip(table.columns["id"], table.lines, predictions):
            record = {"id": row_id, "task": task, "label": p.label, "label_name": p.label_name,
                      "probability": round(p.probability, 6)}
            if p.top_k:
                record["top_k"] = [{"label": s.label, "label_name": s.label_name,
                                    "probability": round(s.probability, 6)} for s in p.top_k]
            keyed.append((line, tasks.index(task), record))
    # input order, and for each row the tasks in the order asked
    records = [record for _, _, record in sorted(keyed, key=lambda k: k[:2])]
    output = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if args.output_file:
        write_text_atomic(resolve(args.output_file), output)
        logger.info("wrote %d predictions to %s", len(records), args.output_file)
    else:
        sys.stdout.write(output)
    return records


if __name__ == "__main__":
    run_cli(main, "predict.py")  # a user's error: one line and exit status 1, no traceback
