"""The HTTP service under load: rows/s and latency at concurrency 1, 8 and 32, beside the offline Predictor.

    python bench/serve_load.py                      # the bundled demo encoder with fresh heads (truncation 128)
    python bench/serve_load.py --model user_data/stage2

Starts `code/serve.py` on a free port of 127.0.0.1; a client in this process keeps N requests in flight (N = the
concurrency), each one TNEWS test B headline, for --seconds per level (at most --max_requests). Reported: rows/s,
p50 and p99 latency, texts per Predictor call (the batching), and whether every served label equals the offline
Predictor's for the same text. The offline rate is Predictor.predict over the same headlines in one call (batches of
64, length-sorted), measured in this run before the service starts, so both share the machine's state. Speed does not
depend on what the head weights learned, hence the fresh heads.

The client is a small HTTP/1.1 keep-alive client on asyncio streams rather than httpx: on a 2-core machine the
client's own CPU comes out of the server's, and httpx spends several times more per request.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import REPO_ROOT, header, results_path, table, write_section
from mtl.labels import label2id_for
from mtl.model import load_model
from mtl.paths import BUNDLED_TOKENIZER_DIR
from mtl.predictor import Predictor
from mtl.readers import read_task_file
from mtl.tasks import TASKS
from mtl.tokenizer import load_tokenizer

DEMO_ENCODER = REPO_ROOT / "code" / "assets" / "demo_encoder"
TINY_CONFIG = REPO_ROOT / "code" / "assets" / "configs" / "tiny.json"


def fresh_heads_model(folder: Path, smoke: bool) -> Path:
    """The demo encoder (smoke: the tiny config) with the competition's heads, untrained, saved as train.py saves."""
    heads = [task.head(label2id_for(task.labels)) for task in TASKS.values()]
    model = load_model(None, str(TINY_CONFIG), heads) if smoke else load_model(str(DEMO_ENCODER), None, heads)
    model.config.max_seq_length = 128  # the demo profile's truncation
    model.save_pretrained(folder)
    load_tokenizer(BUNDLED_TOKENIZER_DIR).save_pretrained(folder)
    return folder


def headlines(rows: int | None) -> list[str]:
    task = TASKS["tnews"]
    table_, _ = read_task_file(task, task.test_path("b", REPO_ROOT / "tcdata"), False, max_rows=rows)
    return list(table_.columns["text"])


def offline(model: str, texts: list[str], batch_size: int) -> dict:
    """Rows/s of the Predictor in this process, no HTTP (the better of two runs each: this machine is shared):
    "sorted 64": one call over all the texts, length-sorted in passes of 64 (predict.py's default);
    "sorted": the same in passes of `batch_size` (the service's); "calls of 32": one call per 32 texts in file
    order, the batches the service gets at concurrency 32 at best. Also the labels, to check the service's."""
    predictor = Predictor.from_pretrained(model, batch_size=batch_size, device="cpu")
    predictor.predict("tnews", texts[:64])

    def rate(run) -> float:
        best = float("inf")
        for _ in range(2):
            start = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - start)
        return len(texts) / best

    rates = {"sorted": rate(lambda: predictor.predict("tnews", texts)),
             "calls of 32": rate(lambda: [predictor.predict("tnews", texts[i:i + 32]) for i in range(0, len(texts), 32)])}
    predictor.batch_size = 64
    rates["sorted 64"] = rate(lambda: predictor.predict("tnews", texts))
    return {"rates": rates, "labels": [p.label for p in predictor.predict("tnews", texts)]}


class Server:
    """code/serve.py in a subprocess on a free port; its log goes to a file."""

    def __init__(self, model: str, flags: list[str], log: Path):
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, str(REPO_ROOT / "code" / "serve.py"), "--model", model, "--port", "0", *flags],
            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        lines = []
        for line in self.process.stderr:
            lines.append(line)
            if "Application startup complete" in line:
                break
        match = next((m for line in lines if (m := re.search(r"on http://([\d.]+):(\d+)/", line))), None)
        if match is None:
            raise SystemExit("serve.py did not start:\n" + "".join(lines))
        self.host, self.port = match.group(1), int(match.group(2))
        self._drain = threading.Thread(target=self._copy_log, args=(lines,), daemon=True)
        self._drain.start()

    def _copy_log(self, lines: list[str]) -> None:
        with open(self.log, "w", encoding="utf-8") as out:
            out.writelines(lines)
            for line in self.process.stderr:
                out.write(line)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


class Connection:
    """One keep-alive HTTP/1.1 connection to the service (the requests and answers are the service's own)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n")
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return int(status_line.split()[1]), await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def load(host: str, port: int, texts: list[str], expected: list[str], concurrency: int, seconds: float,
               max_requests: int) -> dict:
    """`concurrency` clients, each sending its next text as soon as its previous answer is in."""
    connections = [Connection(host, port) for _ in range(concurrency)]
    bodies = [json.dumps({"task": "tnews", "texts": [t]}, ensure_ascii=False).encode() for t in texts]
    latencies, wrong, failed = [], 0, 0
    counter = iter(range(10 ** 9))

    async def client(connection: Connection, until: float, record: bool) -> None:
        nonlocal wrong, failed
        while time.perf_counter() < until:
            i = next(counter)
            if record and i >= max_requests:
                return
            start = time.perf_counter()
            status, answer = await connection.request("POST", "/predict", bodies[i % len(bodies)])
            if not record:
                continue
            latencies.append(time.perf_counter() - start)
            if status != 200:
                failed += 1
            elif json.loads(answer)["predictions"][0]["label"] != expected[i % len(expected)]:
                wrong += 1

    async def batches() -> int:
        return json.loads((await connections[0].request("GET", "/health"))[1])["batches"]

    warm_up = min(1.0, seconds / 5)
    await asyncio.gather(*(client(c, time.perf_counter() + warm_up, False) for c in connections))
    counter = iter(range(10 ** 9))
    calls_before = await batches()
    start = time.perf_counter()
    await asyncio.gather(*(client(c, start + seconds, True) for c in connections))
    elapsed = time.perf_counter() - start
    calls = await batches() - calls_before
    for connection in connections:
        connection.close()
    latencies.sort()
    done = len(latencies)
    return {"requests": done, "rows/s": done / elapsed, "p50": statistics.median(latencies) * 1000,
            "p99": latencies[min(done - 1, int(0.99 * done))] * 1000, "per call": done / max(calls, 1),
            "wrong": wrong, "failed": failed}


def row(wait: float, concurrency: int, result: dict, offline_rate: float) -> dict:
    return {"batch_wait_ms": f"{wait:g}", "concurrency": concurrency, "requests": f"{result['requests']:,}",
            "rows/s": f"{result['rows/s']:,.0f}", "of offline": f"{result['rows/s'] / offline_rate:.0%}",
            "p50 ms": f"{result['p50']:.1f}", "p99 ms": f"{result['p99']:.1f}",
            "texts per Predictor call": f"{result['per call']:.1f}",
            "wrong labels / failed": f"{result['wrong']} / {result['failed']}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="A trained model folder (default: the bundled demo encoder "
                        "with fresh heads, truncation 128).")
    parser.add_argument("--concurrency", default="1,8,32", help="Requests in flight, one level after another.")
    parser.add_argument("--seconds", type=float, default=15.0, help="Measured time per level (after a warm-up of "
                        "a fifth of it, 1 s at most).")
    parser.add_argument("--max_requests", type=int, default=20000, help="At most this many requests per level.")
    parser.add_argument("--max_batch_size", type=int, default=64, help="serve.py's --max_batch_size.")
    parser.add_argument("--batch_size", type=int, default=16, help="serve.py's --batch_size (texts per forward pass).")
    parser.add_argument("--batch_wait_ms", default="5", help="serve.py's --batch_wait_ms; several, comma-separated: "
                        "one service after another, the same levels each.")
    parser.add_argument("--smoke", action="store_true", help="A tiny model, 1 s per level; results not kept.")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    waits = [float(w) for w in args.batch_wait_ms.split(",")]
    load_before = os.getloadavg()[0]
    seconds = 1.0 if args.smoke else args.seconds
    texts = headlines(200 if args.smoke else None)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or str(fresh_heads_model(Path(tmp) / "model", args.smoke))
        measured = offline(model, texts, args.batch_size)
        gc.collect()  # the offline model's memory, before the service loads its own
        expected, rates = measured["labels"], measured["rates"]
        offline_rate = max(rates["sorted"], rates["sorted 64"])  # the service is held to the better of the two
        rows = []
        for wait in waits:
            server = Server(model, ["--max_batch_size", str(args.max_batch_size), "--batch_size",
                                    str(args.batch_size), "--batch_wait_ms", str(wait), "--device", "cpu"],
                            Path(tmp) / "serve.log")
            try:
                for concurrency in levels:
                    result = asyncio.run(load(server.host, server.port, texts, expected, concurrency, seconds,
                                              args.max_requests))
                    rows.append(row(wait, concurrency, result, offline_rate))
                    print(rows[-1], flush=True)
            finally:
                server.stop()
    load_after = os.getloadavg()[0]
    described = (f"--model {args.model}" if args.model else "the tiny config (smoke run)" if args.smoke else
                 "the bundled demo encoder (256 hidden, 4 layers) with fresh heads")
    command = "python bench/serve_load.py" + (f" --model {args.model}" if args.model else "") + (
        f" --max_batch_size {args.max_batch_size} --batch_size {args.batch_size} --batch_wait_ms {args.batch_wait_ms}")

    text = header("The HTTP service under load (CPU)", command)
    text += (f"Model: {described}, truncation 128. Each request: one TNEWS test B headline (POST /predict, keep-alive "
             f"HTTP/1.1 on 127.0.0.1, the client in the same machine's other process); {seconds:g} s per level after "
             f"a {min(1.0, seconds / 5):g} s warm-up. Offline, in the same run: `Predictor.predict` over the same {len(texts):,} headlines in one call, "
             f"length-sorted, {rates['sorted 64']:,.0f} rows/s in forward passes of 64 (predict.py's default) and "
             f"{rates['sorted']:,.0f} in passes of {args.batch_size}; \"of offline\" is of the better, "
             f"**{offline_rate:,.0f} rows/s**. For scale, the Predictor on calls of 32 headlines in file order (the "
             f"batches the service gets at concurrency 32, without HTTP): {rates['calls of 32']:,.0f} rows/s "
             f"({rates['calls of 32'] / offline_rate:.0%}). Load average (1 min) {load_before:.1f} at the start, "
             f"{load_after:.1f} at the end (2 cores, shared).\n\n")
    text += table(rows, list(rows[0]))
    write_section(results_path("serve", args.smoke, args.out), text)


if __name__ == "__main__":
    main()
