"""The HTTP service (code/serve.py): a Predictor behind FastAPI, with dynamic batching and a page to try it.

    app = create_app(Predictor.from_pretrained("user_data/stage2"))   # then: uvicorn.run(app)

POST /predict {"task": "tnews", "texts": ["...", ...], "top_k": 1} -> {"predictions": [{label, label_name,
probability[, top_k]}, ...]}, the fields of predict.py's JSON lines, in the order of the texts (a sentence-pair task
takes [text, text2] pairs). GET /tasks: the tasks, their text columns and labels, and the limits. GET /health.
GET /: the page (code/assets/serve/index.html). Every error is JSON {"detail": "one line"}: 4xx says what was wrong
with the request and what to send instead; 500 means the batch holding the request failed (the service goes on).
"""
from __future__ import annotations

import json
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from .dynamic_batching import Batcher, BatchFailed

PAGE = Path(__file__).resolve().parents[1] / "assets" / "serve" / "index.html"
BODY_SHAPE = '{"task": "tnews", "texts": ["text", ...], "top_k": 1} (a pair task: ["premise", "hypothesis"] per text)'
# texts longer than the model reads are cut by the tokenizer anyway; the limit keeps a pasted book from tying up
# the tokenizer, with room for what cleaning removes (emoji, repeated punctuation) and for non-Chinese words
CHARS_PER_TOKEN = 8


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: str
    texts: list[Any]  # each checked against the task's text columns (check_request), for a clearer message
    top_k: int = Field(1, ge=1)


@dataclass(frozen=True)
class Limits:
    max_texts_per_request: int
    max_text_chars: int

    def max_body_bytes(self, columns: int) -> int:
        """Room for the largest valid request: 6 bytes a character (a \\uXXXX escape), quotes and commas."""
        return 4096 + self.max_texts_per_request * columns * (self.max_text_chars * 6 + 8)


class RequestError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def default_max_text_chars(predictor) -> int:
    config = predictor.config
    return CHARS_PER_TOKEN * (config.max_seq_length or config.max_position_embeddings)


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def check_request(body: PredictRequest, predictor, limits: Limits) -> None:
    """A RequestError naming what is wrong with a parsed request, unless the Predictor can take it as it is."""
    if body.task not in predictor.tasks:
        raise RequestError(422, f"unknown task {body.task!r}: this model's tasks are {', '.join(predictor.tasks)} "
                                "(GET /tasks lists them with their labels)")
    texts, most = body.texts, limits.max_texts_per_request
    if not texts:
        raise RequestError(422, f"texts is empty: send 1 to {most} texts to label")
    if len(texts) > most:
        raise RequestError(413, f"{len(texts)} texts in one request, more than {most} (serve.py "
                                "--max_texts_per_request): split them over several requests")
    columns = predictor.text_columns(body.task)
    for i, row in enumerate(texts):
        where = f"texts[{i}]"
        if len(columns) == 1:
            if not isinstance(row, str):
                raise RequestError(422, f"{where}: {body.task} labels single texts, so each item is a string, not "
                                        f"{type(row).__name__} {json.dumps(row, ensure_ascii=False)[:60]}")
            parts = [row]
        else:
            if not isinstance(row, list) or len(row) != len(columns):
                got = f"a list of {len(row)}" if isinstance(row, list) else f"a {type(row).__name__}"
                raise RequestError(422, f"{where}: {body.task} labels pairs, so each item is a list of "
                                        f"{len(columns)} texts [{', '.join(columns)}], not {got}")
            parts = row
        for column, text in zip(columns, parts):
            at = where if len(columns) == 1 else f"{where} ({column})"
            if not isinstance(text, str):
                raise RequestError(422, f"{at}: a text is a string, not {type(text).__name__}")
            if not text.strip():
                raise RequestError(422, f"{at} is empty or only whitespace: send text to label")
            if len(text) > limits.max_text_chars:
                raise RequestError(413, f"{at} has {len(text)} characters, more than {limits.max_text_chars} (serve.py "
                                        f"--max_text_chars); the model reads only its first "
                                        f"{predictor.config.max_seq_length or 'few hundred'} tokens: shorten it")


def record(prediction) -> dict:
    """predict.py's JSON fields for one prediction (without its id and task)."""
    out = {"label": prediction.label, "label_name": prediction.label_name,
           "probability": round(prediction.probability, 6)}
    if prediction.top_k:
        out["top_k"] = [{"label": s.label, "label_name": s.label_name, "probability": round(s.probability, 6)}
                        for s in prediction.top_k]
    return out


def describe_validation_error(err: RequestValidationError, content_type: str) -> tuple[int, str]:
    """FastAPI's list of pydantic errors as (status, one line): 400 for a body that is not JSON, 415 for one sent
    as another content type (FastAPI then hands the raw bytes over), else 422."""
    errors = err.errors()
    invalid = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if invalid is not None:
        reason = invalid.get("ctx", {}).get("error", "")
        return 400, one_line(f"the body is not valid JSON ({reason}): send {BODY_SHAPE}")
    whole_body = [e for e in errors if tuple(e.get("loc", ())) == ("body",)]
    if whole_body and isinstance(whole_body[0].get("input"), bytes):
        return 415, one_line(f"the body was sent as Content-Type: {content_type or 'none'}, not application/json: "
                             f"send {BODY_SHAPE} with Content-Type: application/json (curl: -H 'Content-Type: "
                             "application/json')")
    if whole_body and whole_body[0].get("input") is None:
        return 422, one_line(f"the body is empty: send {BODY_SHAPE}")
    if whole_body:
        got = type(whole_body[0].get("input")).__name__
        return 422, one_line(f"the body is JSON but not an object (a {got}): send {BODY_SHAPE}")
    parts = []
    for e in errors[:3]:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.get("loc", ())[1:]).lstrip(".")
        if e.get("type") == "missing":
            parts.append(f"{where} is missing")
        elif e.get("type") == "extra_forbidden":
            parts.append(f"{where} is not a field of the request")
        else:
            parts.append(f"{where or 'the body'}: {e.get('msg')} (got {json.dumps(e.get('input'), ensure_ascii=False, default=str)[:60]})")
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return 422, one_line(f"{'; '.join(parts)}{more}; send {BODY_SHAPE}")


def too_large(max_body_bytes: int) -> JSONResponse:
    return JSONResponse({"detail": f"the body is over {max_body_bytes} bytes, more than the largest valid request "
                         "needs: send fewer or shorter texts"}, 413)


class ContentLengthLimit:
    """A 413 in the service's own words for a Content-Length over the limit, before any of the body is read.
    (The route's max_body_size counts a body sent without Content-Length as it streams in; for one with it, Starlette
    would answer in plain text.)"""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            length = dict(scope["headers"]).get(b"content-length", b"")
            if length.isdigit() and int(length) > self.max_bytes:
                await too_large(self.max_bytes)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class FormEncodedAsJson:
    """A POST whose Content-Type is curl -d's default (application/x-www-form-urlencoded) or missing is read as JSON:
    `curl URL -d '{"task": ...}'` is how most people call a JSON endpoint, and its body is the JSON either way (one
    that is not JSON still gets the 400). Other content types keep the 415."""

    LENIENT = (b"application/x-www-form-urlencoded", b"")

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST":
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            if dict(scope["headers"]).get(b"content-type", b"").split(b";")[0].strip() in self.LENIENT:
                scope = dict(scope, headers=headers + [(b"content-type", b"application/json")])
        await self.app(scope, receive, send)


def create_app(predictor, max_batch_size: int = 64, batch_wait_ms: float = 5.0, max_texts_per_request: int = 256,
               max_text_chars: Optional[int] = None) -> FastAPI:
    """The service for `predictor` (anything with Predictor's public API: predict, tasks, text_columns, config).
    max_text_chars: default CHARS_PER_TOKEN times the model's max_seq_length."""
    limits = Limits(max_texts_per_request, max_text_chars or default_max_text_chars(predictor))
    batcher = Batcher(predictor, max_batch_size, batch_wait_ms / 1000)
    page = PAGE.read_text(encoding="utf-8")

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    app = FastAPI(title="Multi-task text classification", lifespan=lifespan)
    app.state.batcher = batcher
    app.state.limits = limits
    max_body_bytes = limits.max_body_bytes(max(len(predictor.text_columns(t)) for t in predictor.tasks))
    app.add_middleware(ContentLengthLimit, max_bytes=max_body_bytes)
    app.add_middleware(FormEncodedAsJson)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError) -> JSONResponse:
        status, message = describe_validation_error(err, request.headers.get("content-type", ""))
        return JSONResponse({"detail": message}, status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:
        if err.status_code == 413:  # a body without Content-Length over max_body_bytes, refused as it streams in
            return too_large(max_body_bytes)
        return await http_exception_handler(request, err)

    @app.exception_handler(RequestError)
    async def request_error(_request: Request, err: RequestError) -> JSONResponse:
        return JSONResponse({"detail": one_line(str(err))}, err.status)

    @app.exception_handler(BatchFailed)
    async def batch_failed(_request: Request, err: BatchFailed) -> JSONResponse:
        return JSONResponse({"detail": one_line(f"inference failed for the batch holding this request ({err}); the "
                                                "service goes on: retry, and see its log for the traceback")}, 500)

    @app.post("/predict", max_body_size=max_body_bytes)
    async def predict(body: PredictRequest) -> JSONResponse:
        check_request(body, predictor, limits)
        predictions = await batcher.predict(body.task, body.texts, body.top_k)
        return JSONResponse({"predictions": [record(p) for p in predictions]})

    @app.get("/tasks")
    async def tasks() -> JSONResponse:
        heads = []
        for name in predictor.tasks:
            head = predictor.config.head(name)
            heads.append({"name": name, "text_columns": predictor.text_columns(name),
                          "labels": [{"label": label, "label_name": head.label_name(label)} for label in head.labels]})
        return JSONResponse({"tasks": heads, "max_texts_per_request": limits.max_texts_per_request,
                             "max_text_chars": limits.max_text_chars,
                             "max_seq_length": predictor.config.max_seq_length})

    @app.get("/health")
    async def health() -> JSONResponse:
        return JSONResponse({"status": "ok", "batches": batcher.batches, "running": batcher.running,
                             "queued": batcher.queued})

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    return app
