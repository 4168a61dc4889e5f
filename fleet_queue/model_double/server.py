"""The double's HTTP server: routes, streaming, recording; one thread per request.

Stdlib `http.server` on purpose: a test double should start in milliseconds and
depend on nothing. HTTP/1.1 with chunked SSE, so clients keep their connections
as they would with the real APIs, and a dropped stream is a truncated chunk
sequence the client must notice.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from fleet_queue.model_double import anthropic_api, openai_api
from fleet_queue.model_double.recorded import RecordedRequest
from fleet_queue.model_double.replies import Api, Reply
from fleet_queue.model_double.script import card_closer, side_reply

Responder = Callable[[RecordedRequest], Reply]

ANTHROPIC_MODELS = ["claude-sonnet-4-5", "claude-opus-4-1", "claude-haiku-4-5"]
OPENAI_MODELS = ["gpt-5-codex", "gpt-5"]


class ModelDouble:
    """A loopback model server for the Anthropic Messages and OpenAI Responses APIs.

    Scripted replies (`script`) answer main turns in order; then `responder`
    (default: `card_closer`). Side requests (no tools offered) get short plausible
    answers and never consume the script.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, log: bool = False, dump: Path | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.log = log
        self.dump = dump
        self.responder: Responder = card_closer
        self.side_responder: Responder = side_reply
        self._script: list[Reply] = []
        self._requests: list[RecordedRequest] = []
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("model double: not started")
        return f"http://{self.host}:{self._server.server_address[1]}"

    def start(self) -> ModelDouble:
        handler = type("Handler", (_Handler,), {"double": self})
        self._server = _Server((self.host, self.port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="model-double", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; requests held by `never` or a think time end at once. Idempotent."""
        self._stopping.set()
        if self._server is not None and self._thread is not None and self._thread.is_alive():
            self._server.shutdown()
            self._server.server_close()
        with self._changed:
            self._changed.notify_all()

    def __enter__(self) -> ModelDouble:
        return self if self._server is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def script(self, *replies: Reply) -> None:
        with self._changed:
            self._script.extend(replies)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._changed:
            return list(self._requests)

    def main_turns(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.is_main_turn]

    def prompts(self) -> list[str]:
        """The user texts the main turns carried, each once, in the order first seen."""
        seen: list[str] = []
        for request in self.main_turns():
            text = request.last_user_text()
            if text and text not in seen:
                seen.append(text)
        return seen

    def wait_for(
        self, predicate: Callable[[RecordedRequest], bool], timeout: float
    ) -> RecordedRequest:
        """The first recorded request (past or future) the predicate accepts."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for request in self._requests:
                    if predicate(request):
                        return request
                left = deadline - time.monotonic()
                if left <= 0 or self._stopping.is_set():
                    break
                self._changed.wait(left)
            summary = [f"{r.method} {r.path} main={r.is_main_turn}" for r in self._requests]
        raise TimeoutError(
            f"model double: no matching request within {timeout:.1f}s; "
            f"{len(summary)} received: {summary[-8:]}"
        )

    def _record(self, request: RecordedRequest) -> None:
        with self._changed:
            self._requests.append(request)
            number = len(self._requests)
            self._changed.notify_all()
        if self.dump is not None:
            self.dump.mkdir(mode=0o700, parents=True, exist_ok=True)
            record = {"method": request.method, "path": request.path, "headers": request.headers}
            record["body"] = request.body
            (self.dump / f"{number:05d}.json").write_text(json.dumps(record, indent=1))
        if self.log:
            text = request.last_user_text().replace("\n", "\\n")[:80]
            print(
                f"{request.method} {request.path} main={request.is_main_turn} user={text!r}",
                file=sys.stderr,
                flush=True,
            )

    def _reply_for(self, request: RecordedRequest) -> Reply:
        if not request.is_main_turn:
            return self.side_responder(request)
        with self._changed:
            if self._script:
                return self._script.pop(0)
        return self.responder(request)

    def _wait(self, seconds: float | None) -> None:
        """Sleep, cut short by stop; None waits for stop."""
        self._stopping.wait(seconds)


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (a CLI killed mid-turn) is not the double's error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    double: ModelDouble
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the record is the log."""

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._send_json(200, {})

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else {}
        except ValueError:
            body = raw.decode("utf-8", "replace")
        headers = {k.lower(): v for k, v in self.headers.items()}
        path = self.path.split("?", 1)[0]
        api: Api = (
            "openai"
            if path.startswith("/v1/responses") or path.startswith("/v1/chat")
            else "anthropic"
        )
        if path == "/v1/models" and "anthropic-version" not in headers:
            api = "openai"
        request = RecordedRequest(api, self.path, headers, body, time.time(), self.command)
        self.double._record(request)
        if path.endswith("/count_tokens"):
            self._send_json(200, anthropic_api.count_tokens(body if isinstance(body, dict) else {}))
        elif path.startswith("/v1/models"):
            ids = ANTHROPIC_MODELS if api == "anthropic" else OPENAI_MODELS
            self._send_json(200, (anthropic_api if api == "anthropic" else openai_api).models(ids))
        elif self.command == "POST" and path in ("/v1/messages", "/v1/responses"):
            self._answer(request, self.double._reply_for(request))
        else:
            self._send_json(
                404, {"error": {"type": "not_found_error", "message": f"no route {path}"}}
            )

    def _answer(self, request: RecordedRequest, reply: Reply) -> None:
        double = self.double
        if reply.never:
            double._wait(None)
            self.close_connection = True
            return
        if reply.think_time:
            double._wait(reply.think_time)
        wire = anthropic_api if request.api == "anthropic" else openai_api
        if reply.error is not None:
            retry = {"retry-after": "0"} if reply.error == 429 else {}
            self._send_json(reply.error, wire.error(reply.error), retry)
            return
        wire_body = request.body if isinstance(request.body, dict) else {}
        if not request.streaming:
            if reply.drop_stream:
                self.close_connection = True
                return
            self._send_json(200, wire.body(reply, wire_body))
            return
        sse = wire.stream(reply, wire_body)
        self._stream(sse, drop_after=len(sse) // 2 if reply.drop_stream else None)

    def _stream(self, sse: list[tuple[str, dict[str, Any]]], drop_after: int | None) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self._common_headers()
        self.end_headers()
        for n, (name, data) in enumerate(sse):
            if drop_after is not None and n >= drop_after:
                self.close_connection = True
                self.wfile.flush()
                return  # no terminating chunk: the client sees a truncated body
            frame = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _send_json(self, status: int, body: Any, extra: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self._common_headers()
        self.end_headers()
        self.wfile.write(data)

    def _common_headers(self) -> None:
        rid = f"req_{uuid.uuid4().hex[:24]}"
        self.send_header("request-id", rid)
        self.send_header("x-request-id", rid)
