"""Serve a trained model over HTTP, with dynamic batching and a page to try it: `python code/serve.py --help`.

    python code/serve.py --model user_data/stage2            # then open http://127.0.0.1:8000/
    curl -s localhost:8000/predict -H 'Content-Type: application/json' \\
        -d '{"task": "tnews", "texts": ["华为发布新款折叠屏手机"]}'

Endpoints: POST /predict {"task", "texts", "top_k"} -> {"predictions": [...]} (predict.py's fields: label,
label_name, probability, top_k); GET /tasks; GET /health; GET / (the page). Concurrent requests for the same task
are labelled in one batch (--max_batch_size texts, gathered for up to --batch_wait_ms). docs/serving-service.md.
"""
from __future__ import annotations

import argparse
import logging
import socket
import sys

from mtl.backends import BACKENDS
from mtl.errors import ArgumentParser, UsageError, run_cli

logger = logging.getLogger("serve")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", "--model_name_or_path", dest="model", required=True,
                        help="A model saved by train.py (a directory), as predict.py takes it.")
    parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (default 127.0.0.1: this machine "
                        "only; 0.0.0.0 for every interface).")
    parser.add_argument("--port", type=int, default=8000, help="Port (default 8000; 0: any free port, logged).")
    parser.add_argument("--max_batch_size", type=int, default=64, help="Most texts labelled in one batch (one "
                        "Predictor call), gathered from concurrent requests for the same task.")
    parser.add_argument("--batch_size", type=int, default=16, help="Texts per forward pass, as predict.py's: a "
                        "batch of concurrent requests is length-sorted and run in passes of this size, so short texts "
                        "are not padded to the longest of the batch.")
    parser.add_argument("--batch_wait_ms", type=float, default=5.0, help="How long the oldest waiting request waits "
                        "for others to join its batch, counted from when the model is free, in milliseconds (0: "
                        "batch only what queued while the previous batch ran).")
    parser.add_argument("--max_texts_per_request", type=int, default=256, help="More texts in one request are "
                        "refused (413).")
    parser.add_argument("--max_text_chars", type=int, default=None, help="Longer texts are refused (413); default "
                        "8 x the model's max_seq_length (1,024 characters for the demo's 128 tokens).")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda when available).")
    parser.add_argument("--backend", default="auto", choices=BACKENDS, help="As predict.py's: torch (the PyTorch "
                        "model), onnx (an export folder written by code/export.py, run on ONNX Runtime), or auto "
                        "(default): by what the folder holds.")
    parser.add_argument("--access_log", action="store_true", help="Log every request (uvicorn's access log).")
    args = parser.parse_args(argv)
    for flag in ("max_batch_size", "batch_size", "max_texts_per_request", "max_text_chars"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            parser.error(f"--{flag} must be at least 1, not {value}")
    if args.batch_wait_ms < 0:
        parser.error(f"--batch_wait_ms must be 0 or more, not {args.batch_wait_ms}")
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be 0 to 65535, not {args.port}")
    return args


def bind(host: str, port: int) -> socket.socket:
    """A socket listening on host:port, or a UsageError in one line (port taken, unknown host). Listening from here
    on, a client that connects as soon as the address is logged waits in the backlog until uvicorn accepts it."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)  # uvicorn's default backlog
    except OSError as err:
        raise UsageError(f"cannot listen on {host}:{port} ({err.strerror or err}): pass another --port (or "
                         "--host), or stop what listens there") from None
    return sock


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO,
                        stream=sys.stderr)
    import uvicorn

    from mtl.predictor import Predictor
    from mtl.serving import create_app

    # a folder that is not a trained model stops here, in one line, before any port is taken
    predictor = Predictor.from_pretrained(args.model, args.batch_size, args.device, args.backend)
    app = create_app(predictor, args.max_batch_size, args.batch_wait_ms, args.max_texts_per_request,
                     args.max_text_chars)
    sock = bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    logger.info("serving %s (tasks %s) on http://%s:%d/ (Ctrl-C stops)", args.model, ", ".join(predictor.tasks),
                shown, port)
    # asyncio's own loop, not uvloop where installed: with inference on a worker thread, uvloop served a tenth of the
    # rows/s at 32 concurrent requests on the 2-core CPU machine (docs/serving-service.md, Speed)
    config = uvicorn.Config(app, loop="asyncio", access_log=args.access_log, log_level="info",
                            timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    run_cli(main, "serve.py")  # a user's error: one line and exit status 1, no traceback
