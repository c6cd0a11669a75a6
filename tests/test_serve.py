"""The HTTP service (serve.py, mtl.serving, mtl.dynamic_batching) on a tiny untrained model with the competition's
three heads: its answers equal the Predictor's, concurrent requests share Predictor calls without mixing tasks or
answers, every bad request gets a one-line 4xx, a failing batch fails only its own requests, and the CLI."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

import predict
import serve
from helpers import DATA_DIR, REPO_ROOT, save_tiny_model
from mtl.errors import UsageError
from mtl.predictor import Predictor
from mtl.readers import read_task_file
from mtl.serving import create_app, record
from mtl.tasks import TASKS


def bundled_texts(task: str, rows: int) -> list:
    """The first rows of the task's bundled test B file: strings, or (premise, hypothesis) lists for OCNLI."""
    spec = TASKS[task]
    table, _ = read_task_file(spec, spec.test_path("b", DATA_DIR), False, max_rows=rows)
    columns = [table.columns[c] for c in spec.text_columns]
    return list(columns[0]) if len(columns) == 1 else [list(pair) for pair in zip(*columns)]


TNEWS = bundled_texts("tnews", 40)
OCNLI = bundled_texts("ocnli", 12)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("serve") / "model")


@pytest.fixture(scope="module")
def predictor(model_dir):
    loaded = Predictor.from_pretrained(str(model_dir), device="cpu")
    assert len({p.label for p in loaded.predict("tnews", TNEWS)}) >= 3  # answers differ from text to text
    return loaded


@pytest.fixture(scope="module")
def client(predictor):
    with TestClient(create_app(predictor)) as test_client:
        yield test_client


def expected(predictor, task, texts, top_k=1) -> list[dict]:
    return [record(p) for p in predictor.predict(task, texts, top_k)]


def assert_same(answer: list[dict], want: list[dict]) -> None:
    """Equal labels and names in the same order; probabilities equal up to float noise (other batches pad else)."""
    assert [(a["label"], a["label_name"]) for a in answer] == [(w["label"], w["label_name"]) for w in want]
    for a, w in zip(answer, want):
        assert a["probability"] == pytest.approx(w["probability"], abs=2e-5)
        assert [s["label"] for s in a.get("top_k", [])] == [s["label"] for s in w.get("top_k", [])]


class Spy:
    """The Predictor, recording each predict call; `gate` (if set) holds the first call until it is opened."""

    def __init__(self, predictor, gate: threading.Event | None = None, fail_on: str | None = None):
        self._predictor = predictor
        self.calls: list[tuple[str, list]] = []
        self.gate = gate
        self.entered = threading.Event()
        self.fail_on = fail_on

    def __getattr__(self, name):
        return getattr(self._predictor, name)

    def predict(self, task, texts, top_k=1):
        self.calls.append((task, list(texts)))
        self.entered.set()
        if self.gate is not None and len(self.calls) == 1:
            assert self.gate.wait(20)
        if self.fail_on is not None and self.fail_on in texts:
            raise RuntimeError(f"planted failure on {self.fail_on!r}\nsecond line of the message")
        return self._predictor.predict(task, texts, top_k)


def wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def post_all(client, bodies: list[dict]) -> list:
    """The bodies posted at once from as many threads; the responses in the bodies' order."""
    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(lambda body: client.post("/predict", json=body), bodies))


def test_answers_equal_the_predictors_and_predict_py_fields(client, predictor, model_dir, capsys):
    for task, texts, top_k in (("tnews", TNEWS[:5], 1), ("ocemotion", TNEWS[5:8], 3), ("ocnli", OCNLI[:4], 2),
                               ("tnews", TNEWS[:2], 99)):
        response = client.post("/predict", json={"task": task, "texts": texts, "top_k": top_k})
        assert response.status_code == 200, response.text
        assert_same(response.json()["predictions"], expected(predictor, task, texts, top_k))
    # the same fields as predict.py's JSON lines, less their id and task
    lines = predict.main(["--model_name_or_path", str(model_dir), "--tasks", "tnews", "--text", TNEWS[0],
                          "--top_k", "2"])
    capsys.readouterr()
    served = client.post("/predict", json={"task": "tnews", "texts": [TNEWS[0]], "top_k": 2}).json()
    assert served["predictions"] == [{k: v for k, v in lines[0].items() if k not in ("id", "task")}]


def test_tasks_health_and_page(client, predictor):
    tasks = {t["name"]: t for t in client.get("/tasks").json()["tasks"]}
    assert list(tasks) == predictor.tasks
    assert tasks["ocnli"]["text_columns"] == ["premise", "hypothesis"]
    assert {"label": "109", "label_name": "news_tech"} in tasks["tnews"]["labels"]
    assert client.get("/health").json()["status"] == "ok"
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="task"' in page.text and "fetch(\"predict\"" in page.text


def test_concurrent_requests_share_predictor_calls_each_answer_in_its_own_order(predictor):
    """16 requests of 1 to 3 texts each: the first is held in the Predictor until the other 15 have queued, which
    then go as one call; every request gets the answers of an unbatched call, in its own order."""
    gate = threading.Event()
    spy = Spy(predictor, gate)
    bodies = [{"task": "tnews", "texts": TNEWS[i:i + 1 + i % 3][::-1]} for i in range(16)]
    total = sum(len(b["texts"]) for b in bodies)
    with TestClient(create_app(spy, max_batch_size=64, batch_wait_ms=0)) as client:
        batcher = client.app.state.batcher
        with ThreadPoolExecutor(16) as pool:
            futures = [pool.submit(client.post, "/predict", json=body) for body in bodies]
            wait_until(lambda: spy.entered.is_set() and batcher.queued == total - len(spy.calls[0][1]))
            gate.set()
            responses = [f.result() for f in futures]
    assert len(spy.calls) == 2 and sum(len(texts) for _, texts in spy.calls) == total
    for body, response in zip(bodies, responses):
        assert response.status_code == 200, response.text
        assert_same(response.json()["predictions"], expected(predictor, "tnews", body["texts"]))


def test_the_wait_window_gathers_one_call_per_task_and_never_mixes_tasks(predictor):
    """12 requests, TNEWS and OCNLI alternating, all sent within the first request's 1 s window: exactly one call per
    task, each holding all of that task's texts; top_k per request."""
    spy = Spy(predictor)
    bodies = [{"task": "tnews", "texts": [TNEWS[i]], "top_k": 1 + i % 3} if i % 2 else
              {"task": "ocnli", "texts": [OCNLI[i % len(OCNLI)]]} for i in range(12)]
    with TestClient(create_app(spy, batch_wait_ms=1000)) as client:
        responses = post_all(client, bodies)
    assert sorted((task, len(texts)) for task, texts in spy.calls) == [("ocnli", 6), ("tnews", 6)]
    for task, texts in spy.calls:  # a pair for OCNLI, a string for TNEWS
        assert all(isinstance(t, list) for t in texts) if task == "ocnli" else all(isinstance(t, str) for t in texts)
    for body, response in zip(bodies, responses):
        assert response.status_code == 200, response.text
        assert_same(response.json()["predictions"],
                    expected(predictor, body["task"], body["texts"], body.get("top_k", 1)))


def test_after_a_batch_the_window_waits_for_the_clients_it_answered(predictor):
    """B queues while A's batch runs, for longer than the window; A's client, answered, sends C at once: B waits
    the window from when the worker is free, so B and C go together (closed-loop clients do not split in two
    half-size batches)."""
    gate = threading.Event()
    spy = Spy(predictor, gate)
    with ThreadPoolExecutor(2) as pool, TestClient(create_app(spy, batch_wait_ms=300)) as client:
        a = pool.submit(client.post, "/predict", json={"task": "tnews", "texts": [TNEWS[0]]})
        wait_until(spy.entered.is_set)
        b = pool.submit(client.post, "/predict", json={"task": "tnews", "texts": [TNEWS[1]]})
        wait_until(lambda: client.app.state.batcher.queued == 1)
        time.sleep(0.4)
        gate.set()
        assert a.result(timeout=30).status_code == 200
        c = client.post("/predict", json={"task": "tnews", "texts": [TNEWS[2]]})
        assert c.status_code == 200 and b.result(timeout=30).status_code == 200
    assert [texts for _, texts in spy.calls] == [[TNEWS[0]], [TNEWS[1], TNEWS[2]]]


def test_max_batch_size_bounds_each_call_and_a_larger_request_goes_whole(predictor):
    gate = threading.Event()
    spy = Spy(predictor, gate)
    bodies = [{"task": "tnews", "texts": [TNEWS[i]]} for i in range(9)] + [{"task": "tnews", "texts": TNEWS[:7]}]
    with TestClient(create_app(spy, max_batch_size=4, batch_wait_ms=0)) as client:
        batcher = client.app.state.batcher
        with ThreadPoolExecutor(len(bodies)) as pool:
            futures = [pool.submit(client.post, "/predict", json=body) for body in bodies]
            wait_until(lambda: spy.entered.is_set() and batcher.queued == 16 - len(spy.calls[0][1]))
            gate.set()
            responses = [f.result() for f in futures]
    assert all(r.status_code == 200 for r in responses)
    sizes = [len(texts) for _, texts in spy.calls]
    assert sorted(sizes)[-1] == 7 and all(size <= 4 for size in sizes if size != 7) and sum(sizes) == 16


def test_health_answers_while_a_batch_runs(predictor):
    gate = threading.Event()
    spy = Spy(predictor, gate)
    with TestClient(create_app(spy)) as client:
        with ThreadPoolExecutor(2) as pool:
            pending = pool.submit(client.post, "/predict", json={"task": "tnews", "texts": TNEWS[:3]})
            try:
                wait_until(spy.entered.is_set)
                health = pool.submit(client.get, "/health").result(timeout=10)
                assert health.status_code == 200 and health.json()["running"] == 3
            finally:
                gate.set()
            assert pending.result().status_code == 200


def test_a_failing_batch_fails_its_own_requests_and_the_service_goes_on(predictor):
    spy = Spy(predictor, fail_on="boom")
    with ThreadPoolExecutor(1) as pool, TestClient(create_app(spy), raise_server_exceptions=False) as client:
        def post(texts):  # a service that died would never answer: fail instead of hanging
            return pool.submit(client.post, "/predict", json={"task": "tnews", "texts": texts}).result(timeout=30)

        failed = post(["fine", "boom"])
        assert failed.status_code == 500
        detail = failed.json()["detail"]
        assert "\n" not in detail and "RuntimeError: planted failure on 'boom' second line" in detail
        good = post(TNEWS[:2])
        assert good.status_code == 200
        assert_same(good.json()["predictions"], expected(predictor, "tnews", TNEWS[:2]))


LONG = "长" * 513  # the default limit: 8 characters a token of the model's 64
BAD_REQUESTS = [  # (id, body: JSON value or raw bytes, content type, status, words the one-line message holds)
    ("unknown task", {"task": "weibo", "texts": ["x"]}, None, 422,
     "unknown task 'weibo': this model's tasks are ocnli, ocemotion, tnews"),
    ("empty list", {"task": "tnews", "texts": []}, None, 422, "texts is empty: send 1 to 256 texts"),
    ("empty text", {"task": "tnews", "texts": ["ok", ""]}, None, 422, "texts[1] is empty or only whitespace"),
    ("whitespace text", {"task": "tnews", "texts": [" \t\u3000"]}, None, 422, "texts[0] is empty or only whitespace"),
    ("whitespace in a pair", {"task": "ocnli", "texts": [["他来了", "  "]]}, None, 422,
     "texts[0] (hypothesis) is empty or only whitespace"),
    ("over-long text", {"task": "tnews", "texts": ["ok", LONG]}, None, 413,
     "texts[1] has 513 characters, more than 512 (serve.py --max_text_chars)"),
    ("a string to a pair task", {"task": "ocnli", "texts": ["他来了"]}, None, 422,
     "texts[0]: ocnli labels pairs, so each item is a list of 2 texts [premise, hypothesis], not a str"),
    ("three texts to a pair task", {"task": "ocnli", "texts": [["a", "b", "c"]]}, None, 422, "not a list of 3"),
    ("a pair to a single-text task", {"task": "tnews", "texts": [["a", "b"]]}, None, 422,
     "tnews labels single texts, so each item is a string, not list"),
    ("a number as text", {"task": "tnews", "texts": [7]}, None, 422, "each item is a string, not int 7"),
    ("too many texts", {"task": "tnews", "texts": ["x"] * 257}, None, 413,
     "257 texts in one request, more than 256 (serve.py --max_texts_per_request)"),
    ("not JSON", b'{"task": "tnews", "texts": ["x"', "application/json", 400, "the body is not valid JSON"),
    ("plain text", b'{"task": "tnews", "texts": ["x"]}', "text/plain", 415,
     "sent as Content-Type: text/plain, not application/json"),
    ("form-encoded, not JSON", b"task=tnews&texts=x", "application/x-www-form-urlencoded", 400,
     "the body is not valid JSON"),
    ("empty body", b"", "application/json", 422, "the body is empty"),
    ("a list body", [{"task": "tnews"}], None, 422, "the body is JSON but not an object (a list)"),
    ("top_k 0", {"task": "tnews", "texts": ["x"], "top_k": 0}, None, 422,
     "top_k: Input should be greater than or equal to 1 (got 0)"),
    ("missing and unknown fields", {"texts": ["x"], "topk": 2}, None, 422,
     "task is missing; topk is not a field of the request"),
    ("a huge body", b'{"task": "tnews", "texts": ["' + b"x" * 5_000_000 + b'"]}', "application/json", 413,
     "the body is over"),
    ("a huge body in chunks", (b'{"task": "tnews", "texts": ["', *[b"x" * 1_000_000] * 5, b'"]}'),
     "application/json", 413, "the body is over"),  # no Content-Length: counted as it streams in
]


@pytest.mark.parametrize("body, content_type, status, message", [b[1:] for b in BAD_REQUESTS],
                         ids=[b[0] for b in BAD_REQUESTS])
def test_a_bad_request_gets_one_line_saying_what_to_send_and_the_next_good_one_works(
        client, predictor, body, content_type, status, message):
    if isinstance(body, (bytes, tuple)):
        content = iter(body) if isinstance(body, tuple) else body
        response = client.post("/predict", content=content, headers={"Content-Type": content_type})
    else:
        response = client.post("/predict", json=body)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and message in detail
    good = client.post("/predict", json={"task": "tnews", "texts": TNEWS[:2]})
    assert good.status_code == 200
    assert_same(good.json()["predictions"], expected(predictor, "tnews", TNEWS[:2]))


def test_cli_refuses_a_folder_that_is_no_trained_model_before_taking_the_port(model_dir, monkeypatch):
    """The bundled encoder has no task heads; a PyTorch model is no ONNX export: one line, and no port taken (bind
    never runs)."""
    monkeypatch.setattr(serve, "bind", lambda *_: pytest.fail("bound a port before checking the model"))
    for flags, message in ((["--model", str(REPO_ROOT / "code" / "assets" / "demo_encoder")],
                            "a pretrained encoder with no task heads"),
                           (["--model", str(model_dir), "--backend", "onnx"], "export.py")):
        with pytest.raises(UsageError) as err:
            serve.main(flags)
        assert message in str(err.value) and "\n" not in str(err.value)


def test_cli_refuses_a_port_in_use_and_bad_flags(model_dir, monkeypatch):
    monkeypatch.setattr("uvicorn.Server.run", lambda *_, **__: pytest.fail("served on a port in use"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UsageError, match=f"cannot listen on 127.0.0.1:{port} .*pass another --port"):
            serve.main(["--model", str(model_dir), "--port", str(port)])
    for flags, message in ((["--max_batch_size", "0"], "--max_batch_size must be at least 1"),
                           (["--batch_wait_ms", "-1"], "--batch_wait_ms must be 0 or more"),
                           (["--port", "70000"], "--port must be 0 to 65535")):
        with pytest.raises(UsageError, match=message):
            serve.main(["--model", str(model_dir), *flags])


@pytest.mark.slow
def test_serve_py_serves_over_http_and_stops_on_ctrl_c(model_dir, predictor):
    """The real CLI on a free port (--port 0, read from its log), asked with curl as a user would."""
    process = subprocess.Popen([sys.executable, str(REPO_ROOT / "code" / "serve.py"), "--model", str(model_dir),
                                "--port", "0", "--batch_wait_ms", "2"], stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"},
                               # Ctrl-C's default action, as in a terminal: a pytest-xdist worker ignores SIGINT, and
                               # its children would inherit that (uvicorn's re-raised SIGINT would then be ignored)
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        log = []
        for line in process.stderr:
            log.append(line)
            if "Application startup complete" in line:
                break
        url = next(m.group(1) for line in log if (m := re.search(r"on (http://\S+/) ", line)))
        body = json.dumps({"task": "ocnli", "texts": OCNLI[:2], "top_k": 2}, ensure_ascii=False)
        if shutil.which("curl"):
            out = subprocess.run(["curl", "-sS", "-H", "Content-Type: application/json", "-d", body,
                                  f"{url}predict"], capture_output=True, text=True, timeout=60)
            answer = json.loads(out.stdout)
        else:  # what curl sends, from Python
            import httpx

            answer = httpx.post(f"{url}predict", content=body.encode(), timeout=60,
                                headers={"Content-Type": "application/json"}).json()
        assert_same(answer["predictions"], expected(predictor, "ocnli", OCNLI[:2], 2))
    finally:
        process.send_signal(signal.SIGINT)
        rest = process.communicate(timeout=30)[1]
    # uvicorn shuts down cleanly, then re-raises the signal, so the exit status is Ctrl-C's
    assert "Application shutdown complete" in rest and process.returncode == -signal.SIGINT, rest[-2000:]


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", None])
def test_a_json_body_sent_as_curl_d_sends_it_is_answered(client, predictor, content_type):
    """`curl URL -d '{...}'` (form-encoded by default) or a client sending no Content-Type: the body is JSON, so it
    is read as JSON (the issue's own example command)."""
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/predict", content='{"task": "tnews", "texts": ["华为发布新款折叠屏手机"]}'.encode(),
                           headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["predictions"][0]["label_name"] == predictor.predict("tnews", ["华为发布新款折叠屏手机"])[0].label_name
