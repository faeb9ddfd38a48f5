"""Request body size limit, as a pure ASGI middleware (413 in OpenAI's error envelope).

A declared Content-Length over the limit is refused before a byte is read; a body
without one (chunked) is counted as it streams in, and the first chunk over the
limit aborts the read. Pure ASGI rather than BaseHTTPMiddleware, so streaming
responses (SSE) pass through untouched.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_body


class BodyTooLarge(HTTPException):
    """Raised from `receive` mid-body. An HTTPException, because FastAPI re-raises those
    from body parsing (anything else becomes a 400); api/app.py gives it its own handler."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, body_too_large_message(limit))
        self.limit = limit


def body_too_large_message(limit: int, size: int | None = None) -> str:
    got = f": {size} bytes" if size is not None else ""
    return f"Request body too large{got}. The maximum is {limit} bytes."


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # Multipart uploads: the file (checked exactly by the route) plus form overhead.
        self.max_upload_bytes = max_upload_bytes + max_bytes

    def _limit(self, scope: Scope) -> int:
        for name, value in scope["headers"]:
            if name == b"content-type" and value.lower().startswith(b"multipart/form-data"):
                return self.max_upload_bytes
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _reject(send, body_too_large_message(limit, int(declared)))
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counting_receive, send)


async def _reject(send: Send, message: str) -> None:
    body = json.dumps(error_body(message, code="request_too_large")).encode()
    await send({"type": "http.response.start", "status": 413, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
