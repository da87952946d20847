"""An ASGI response held back until its body is complete, so that a rewritten body is sent.

Used where a document is rewritten per caller (capabilities in tiles/service.py, OGC API links
in services/access/key_links.py): the start message waits for the last body part, then goes out with
the new body's Content-Length.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import Message, Send


class HeldResponse:
    """The held `http.response.start` message and the body parts received so far."""

    def __init__(self, start: Message):
        self.start = start
        self.parts: list[bytes] = []

    def add(self, message: Message) -> bytes | None:
        """The whole body once `message` is the last part, else None (more to come)."""
        self.parts.append(message.get("body", b""))
        return None if message.get("more_body") else b"".join(self.parts)

    async def send(self, send: Send, body: bytes, drop: Iterable[bytes] = (),
                   extra: Iterable[tuple[bytes, bytes]] = ()) -> None:
        """The start (headers in `drop` removed, `extra` added, Content-Length of `body`), then
        `body`."""
        gone = {b"content-length", *drop}
        headers = [(k, v) for k, v in self.start.get("headers", []) if k.lower() not in gone]
        headers += [*extra, (b"content-length", str(len(body)).encode())]
        await send({**self.start, "headers": headers})
        await send({"type": "http.response.body", "body": body})
