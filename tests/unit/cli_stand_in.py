"""A stand-in daemon for CLI tests: a stdlib HTTP server on 127.0.0.1 that answers through a function (or
with a settable status and body) and keeps every request as it came: method, raw target, path, query, body."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Answer = Callable[[str, str, dict[str, list[str]], Any], tuple[int, Any]]


@dataclass(frozen=True)
class Seen:
    method: str
    target: str  # the raw request target, escapes and query included
    path: str
    query: dict[str, list[str]]
    body: Any


class StandIn:
    """Answers with `answer(method, path, query, body)`, or, without one, with `status` and `body`."""

    def __init__(self, answer: Answer | None = None) -> None:
        self.seen: list[Seen] = []
        self.status = 404
        self.body: Any = {"error": {"code": "not_found", "message": "no such thing"}}
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                parts = urlsplit(self.path)
                seen = Seen(self.command, self.path, parts.path, parse_qs(parts.query),
                            json.loads(raw) if raw else None)
                stand_in.seen.append(seen)
                status, reply = (answer(seen.method, seen.path, seen.query, seen.body) if answer is not None
                                 else (stand_in.status, stand_in.body))
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def requests(self) -> list[tuple[str, str]]:
        """(method, raw target) of each request."""
        return [(s.method, s.target) for s in self.seen]

    def paths(self) -> list[str]:
        return [s.target for s in self.seen]

    def posts(self) -> list[tuple[str, Any]]:
        return [(s.path, s.body) for s in self.seen if s.method == "POST"]


@contextmanager
def serving(answer: Answer | None = None) -> Iterator[StandIn]:
    stand_in = StandIn(answer)
    thread = threading.Thread(target=stand_in.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield stand_in
    finally:
        stand_in.server.shutdown()
        stand_in.server.server_close()
        thread.join(5)
