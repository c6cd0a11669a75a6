"""Dynamic batching for the service: concurrent requests for one task become one Predictor call.

Requests wait in one queue per task. One loop on the event loop picks the task whose oldest request has waited
longest, waits until that request has waited `wait_s` while the worker was free, or its task has `max_batch_size`
texts queued, then hands the queued requests (in arrival order, up to `max_batch_size` texts; one request at least, whatever its size) to the
Predictor on a single worker thread: the model is not re-entrant, and on a CPU a second thread would only share the
same cores. While a batch runs, the event loop stays free (health checks answer) and new requests queue up, so the
next batch is larger the busier the service is. A batch that raises fails its own requests only.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

logger = logging.getLogger(__name__)


class BatchFailed(RuntimeError):
    """The Predictor raised on a batch; every request in that batch gets this, the service goes on."""


@dataclass
class _Request:
    texts: Sequence[Any]
    top_k: int
    future: asyncio.Future
    arrived: float = field(default_factory=time.monotonic)


def _trimmed(prediction, top_k: int):
    """A prediction made with a larger top_k, as a call with this request's top_k gives it."""
    return replace(prediction, top_k=list(prediction.top_k[:top_k]) if top_k > 1 else [])


class Batcher:
    """`await batcher.predict(task, texts, top_k)`: the Predictor's answer for these texts, computed in a batch with
    the other requests for the same task that arrive within the wait window. start() and stop() run on the event
    loop that serves the requests (the app's lifespan)."""

    def __init__(self, predictor, max_batch_size: int = 64, wait_s: float = 0.002):
        self.predictor = predictor
        self.max_batch_size = max_batch_size
        self.wait_s = wait_s
        self.batches = 0  # Predictor calls made, for /health and the tests
        self.running = 0  # texts in the batch now on the worker thread
        self._queues: dict[str, deque[_Request]] = {}
        self._queued_texts: dict[str, int] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._wakeup: asyncio.Event | None = None
        self._loop_task: asyncio.Task | None = None
        self._free_since = 0.0  # when the worker finished its last batch

    @property
    def queued(self) -> int:
        """Texts waiting for a batch."""
        return sum(self._queued_texts.values())

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self._wakeup = asyncio.Event()
        self._loop_task = asyncio.create_task(self._dispatch_forever(), name="batcher")

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        for queue in self._queues.values():
            for request in queue:
                if not request.future.done():
                    request.future.set_exception(BatchFailed("the service is shutting down"))
        self._queues.clear()
        self._queued_texts.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    async def predict(self, task: str, texts: Sequence[Any], top_k: int = 1) -> list:
        if self._wakeup is None:
            raise RuntimeError("Batcher.start() was not awaited (the app's lifespan did not run)")
        request = _Request(texts, top_k, asyncio.get_running_loop().create_future())
        self._queues.setdefault(task, deque()).append(request)
        self._queued_texts[task] = self._queued_texts.get(task, 0) + len(texts)
        self._wakeup.set()
        return await request.future

    async def _dispatch_forever(self) -> None:
        while True:
            task = self._oldest_task()
            if task is None:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self._wait_for_more(task)
            batch = self._take(task)
            if batch:
                await self._run(task, batch)

    def _oldest_task(self) -> str | None:
        heads = [(queue[0].arrived, task) for task, queue in self._queues.items() if queue]
        return min(heads)[1] if heads else None

    async def _wait_for_more(self, task: str) -> None:
        """Until the task's oldest request has waited wait_s while the worker was free, or a full batch of its
        texts is queued. Counted from when the worker became free too: the clients answered by the batch that just
        ended come back within a round trip, and join the requests that queued while it ran instead of making a
        second, half-size batch."""
        deadline = max(self._queues[task][0].arrived, self._free_since) + self.wait_s
        while self._queued_texts[task] < self.max_batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                return

    def _take(self, task: str) -> list[_Request]:
        """The task's queued requests in arrival order, up to max_batch_size texts (one request at least);
        requests whose client has gone are dropped."""
        queue, batch, size = self._queues[task], [], 0
        while queue and (not batch or size + len(queue[0].texts) <= self.max_batch_size):
            request = queue.popleft()
            self._queued_texts[task] -= len(request.texts)
            if not request.future.done():  # cancelled: the client disconnected while it waited
                batch.append(request)
                size += len(request.texts)
        return batch

    async def _run(self, task: str, batch: list[_Request]) -> None:
        texts = [text for request in batch for text in request.texts]
        top_k = max(request.top_k for request in batch)
        self.running = len(texts)
        failure = BatchFailed("the service stopped before this batch finished")
        try:
            predictions = await asyncio.get_running_loop().run_in_executor(
                self._executor, self.predictor.predict, task, texts, top_k)
            if len(predictions) != len(texts):
                raise RuntimeError(f"the Predictor gave {len(predictions)} answers for {len(texts)} texts")
        except Exception as err:
            logger.exception("batch of %d request(s), %d text(s) for task %s failed", len(batch), len(texts), task)
            failure = BatchFailed(f"{type(err).__name__}: {err}")
        else:
            start = 0
            for request in batch:
                answer = predictions[start:start + len(request.texts)]
                start += len(request.texts)
                if request.top_k != top_k:
                    answer = [_trimmed(p, request.top_k) for p in answer]
                if not request.future.done():
                    request.future.set_result(answer)
        finally:
            self.running = 0
            self.batches += 1
            self._free_since = time.monotonic()
            for request in batch:  # whatever happened, no request of the batch is left waiting
                if not request.future.done():
                    request.future.set_exception(failure)
