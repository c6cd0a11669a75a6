"""Export a trained model to ONNX, to run on ONNX Runtime: `python code/export.py --help`.

    python code/export.py --model_name_or_path user_data/stage2 --output_dir user_data/stage2_onnx
    python code/export.py --model_name_or_path user_data/stage2 --output_dir user_data/stage2_int8 --quantize int8
    python code/predict.py --model_name_or_path user_data/stage2_int8 --tasks tnews --text "华为发布新款折叠屏手机"

The output folder holds model.onnx (one graph: the encoder once, every task head's logits as `logits_<task>`, batch
and sequence lengths dynamic, the logit adjustment included), the model's config.json with a record of the export
under "onnx", and the tokenizer. predict.py and Predictor run it on ONNX Runtime (docs/serving.md).
"""
from __future__ import annotations

import argparse
import logging
import sys

from mtl.errors import ArgumentParser, run_cli
from mtl.onnx_export import MIN_OPSET, QUANTIZATIONS, export_model
from mtl.paths import model_path, resolve

logger = logging.getLogger("export")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    import torch.onnx._constants as onnx_constants

    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name_or_path", required=True, help="A model saved by train.py (a directory).")
    parser.add_argument("--output_dir", required=True, help="Where the export goes: a new or empty directory, or an "
                        "earlier export of the same model (replaced).")
    parser.add_argument("--quantize", choices=QUANTIZATIONS, default=None, help="int8: weights stored as int8, "
                        "activations quantized at run time (ONNX Runtime's dynamic quantization); default fp32.")
    parser.add_argument("--opset", type=int, default=None, help=f"ONNX opset, {MIN_OPSET} to "
                        f"{onnx_constants.ONNX_MAX_OPSET} (default: the exporter's, "
                        f"{onnx_constants.ONNX_DEFAULT_OPSET}).")
    args = parser.parse_args(argv)
    if args.opset is not None and not MIN_OPSET <= args.opset <= onnx_constants.ONNX_MAX_OPSET:
        parser.error(f"--opset {args.opset}: the exporter writes opsets {MIN_OPSET} to "
                     f"{onnx_constants.ONNX_MAX_OPSET}")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO,
                        stream=sys.stderr)
    record = export_model(model_path(args.model_name_or_path), resolve(args.output_dir), args.quantize, args.opset)
    logger.info("wrote %s: %s (%s, opset %d)", args.output_dir, record["file"], record["quantization"] or "fp32",
                record["opset"])
    return record


if __name__ == "__main__":
    run_cli(main, "export.py")  # a user's error: one line and exit status 1, no traceback
