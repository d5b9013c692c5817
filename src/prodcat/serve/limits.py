"""Request body size cap as a small ASGI middleware (413 before the body is read when possible)."""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

from starlette.exceptions import HTTPException

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

DEFAULT_MAX_BODY_BYTES = 64 * 2**20


def too_large_message(limit: int) -> str:
    return f"request body is over this server's limit of {limit:,} bytes ({limit / 2**20:.0f} MiB)"


class BodySizeLimit:
    """Refuse request bodies over ``max_bytes`` with 413.

    A ``Content-Length`` over the limit is refused before anything is read; streamed
    (chunked) bodies are counted as they arrive and refused as soon as they pass the limit.
    """

    def __init__(self, app: Callable, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

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

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, too_large_message(self.max_bytes))
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except HTTPException as error:  # raised while reading the body outside an exception handler
            if error.status_code != 413 or started:
                raise
            await _reply(send, 413, str(error.detail))


async def _reply(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
