"""The server's defences against costly or abandoned requests.

- :class:`BodySizeLimit` (ASGI middleware): a body cap (413 before the body is read when
  possible), a deadline for receiving the whole body (408), and one log line (no traceback)
  when a client abandons its upload.
- :class:`DecodeGate`: at most ``max_decodes`` requests with photos decode at the same time in a
  worker process; the others wait up to ``decode_wait_s`` and then get 503 with ``Retry-After``.
- :class:`GuardedH11Protocol`: uvicorn's HTTP/1.1 protocol plus a deadline for a request's
  headers (uvicorn has none: a client sending half a request line kept a connection open for
  minutes). :func:`server_options` gives the uvicorn settings that use it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from contextlib import contextmanager
from typing import Any, Awaitable, Callable, Iterator

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from uvicorn.protocols.http.h11_impl import H11Protocol

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

DEFAULT_MAX_BODY_BYTES = 64 * 2**20
DEFAULT_BODY_TIMEOUT_S = 60.0
"""Seconds a client has to send a whole request body (64 MiB at about 1 MiB/s)."""
DEFAULT_MAX_DECODES = 2
"""Requests with photos decoding at once, per worker process (each can hold a 16 MP image)."""
DEFAULT_DECODE_WAIT_S = 30.0
HEADER_TIMEOUT_ENV = "PRODCAT_SERVE_HEADER_TIMEOUT"
DEFAULT_HEADER_TIMEOUT_S = 10.0
"""Seconds a client has to send a request's headers (``$PRODCAT_SERVE_HEADER_TIMEOUT``)."""
KEEP_ALIVE_S = 5
MAX_HEADER_BYTES = 64 * 1024

logger = logging.getLogger("prodcat.serve")


def too_large_message(limit: int) -> str:
    return f"request body is over this server's limit of {limit:,} bytes ({limit / 2**20:.0f} MiB)"


class BodySizeLimit:
    """Refuse request bodies over ``max_bytes`` with 413, and bodies not received within
    ``timeout_s`` with 408; log an abandoned upload in one line.

    A ``Content-Length`` over the limit is refused before anything is read; streamed
    (chunked) bodies are counted as they arrive and refused as soon as they pass the limit.
    """

    def __init__(self, app: Callable, max_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 timeout_s: float = DEFAULT_BODY_TIMEOUT_S) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _reply(send, 400, "Content-Length header is not a number")
                    return
        if declared is not None and declared > self.max_bytes:
            await _reply(send, 413, too_large_message(self.max_bytes))
            return

        received = 0
        started = False
        body_done = False
        deadline = time.monotonic() + self.timeout_s

        async def counting_receive() -> Message:
            nonlocal received, body_done
            if body_done:  # later calls wait for a disconnect: no deadline
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), timeout=max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                raise HTTPException(408, f"the request body was not received within {self.timeout_s:g} s") from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, too_large_message(self.max_bytes))
                body_done = not message.get("more_body", False)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except HTTPException as error:  # raised while reading the body outside an exception handler
            if error.status_code not in (408, 413) or started:
                raise
            await _reply(send, error.status_code, str(error.detail))
        except ClientDisconnect:
            client = scope.get("client") or ("?", 0)
            logger.warning("%s:%s abandoned its %s %s request after %d body bytes", client[0], client[1],
                           scope.get("method"), scope.get("path"), received)


async def _reply(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class DecodeGate:
    """At most ``slots`` holders at once (threads of one worker process); others wait up to
    ``wait_s`` seconds, then get HTTP 503 with ``Retry-After``."""

    def __init__(self, slots: int = DEFAULT_MAX_DECODES, wait_s: float = DEFAULT_DECODE_WAIT_S) -> None:
        if slots < 1:
            raise ValueError(f"slots must be at least 1, got {slots}")
        self.slots = slots
        self.wait_s = wait_s
        self._semaphore = threading.BoundedSemaphore(slots)

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one decoding slot for the ``with`` block."""
        if not self._semaphore.acquire(timeout=self.wait_s):
            raise HTTPException(503, f"the server is busy decoding other photos ({self.slots} at a time); "
                                     "retry in a few seconds", headers={"Retry-After": "5"})
        try:
            yield
        finally:
            self._semaphore.release()


def header_timeout_s() -> float:
    """The headers deadline: ``$PRODCAT_SERVE_HEADER_TIMEOUT`` seconds, default 10."""
    try:
        return max(0.1, float(os.environ.get(HEADER_TIMEOUT_ENV) or DEFAULT_HEADER_TIMEOUT_S))
    except ValueError:
        return DEFAULT_HEADER_TIMEOUT_S


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol; a connection whose next request's headers are not complete within
    :func:`header_timeout_s` of its first byte (or of the connection) is closed."""

    _timer: asyncio.TimerHandle | None = None
    _timer_cycle: object = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        between_requests = self.cycle is None or self.cycle.response_complete
        if between_requests and (self._timer is None or self._timer_cycle is not self.cycle):
            self._arm()
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_cycle = self.cycle
        self._timer = self.loop.call_later(header_timeout_s(), self._expired, self.cycle)

    def _expired(self, cycle: object) -> None:
        self._timer = None
        if self.cycle is cycle and not self.transport.is_closing():  # no new request began in time
            client = self.client or ("?", 0)
            logger.warning("%s:%s closed: request headers not received within %g s", client[0], client[1],
                           header_timeout_s())
            self.transport.close()


def server_options() -> dict[str, Any]:
    """uvicorn settings: the guarded HTTP/1.1 protocol, keep-alive and header size limits."""
    return {"http": GuardedH11Protocol, "timeout_keep_alive": KEEP_ALIVE_S,
            "h11_max_incomplete_event_size": MAX_HEADER_BYTES}
