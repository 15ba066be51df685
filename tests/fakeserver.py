"""A scriptable, fault-injecting OpenAI-compatible server for engine tests.

Runs on 127.0.0.1 (port 0) in a daemon thread and records every request, so tests
can assert what was sent and how many attempts were made.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    #: a dict is sent as JSON, str/bytes verbatim; None means the default echo answer
    body: dict[str, Any] | str | bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None

    @property
    def last_user(self) -> str:
        return (self.body or {}).get("messages", [{}])[-1].get("content", "")


def echo_answer(call: Call) -> dict[str, Any]:
    """The default 200 body: echoes the last message, so order can be checked."""
    text = f"echo: {call.last_user}"
    return {"id": "x", "object": "chat.completion", "model": "fake-served",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": len(call.last_user.split()),
                      "completion_tokens": len(text.split()), "total_tokens": 0}}


class FakeServer:
    """``queue(...)`` replies are served first (to chat requests, in order); then
    ``rule(call)`` may return a Reply; otherwise the echo answer is sent."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.scripted: list[Reply] = []
        self.rule: Callable[[Call], Reply | None] | None = None
        self.models = ["fake-served"]
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,),
                                        daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    @property
    def chat_calls(self) -> list[Call]:
        return [c for c in self.calls if c.path.endswith("/chat/completions")]

    def queue(self, *replies: Reply) -> None:
        self.scripted.extend(replies)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _reply_for(self, call: Call) -> Reply:
        with self._lock:
            self.calls.append(call)
            if call.path.endswith("/models") and call.method == "GET":
                return Reply(body={"object": "list", "data": [
                    {"id": m, "object": "model"} for m in self.models]})
            if self.scripted:
                return self.scripted.pop(0)
        reply = self.rule(call) if self.rule else None
        return reply or Reply()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                call = Call(self.command, self.path, dict(self.headers), body)
                with server._lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    reply = server._reply_for(call)
                    if reply.delay:
                        time.sleep(reply.delay)
                    payload = reply.body if reply.body is not None else echo_answer(call)
                    data = (json.dumps(payload).encode() if isinstance(payload, dict) else
                            payload.encode() if isinstance(payload, str) else payload)
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test); nothing to answer
                finally:
                    with server._lock:
                        server.in_flight -= 1

            do_GET = _serve
            do_POST = _serve

        return Handler
