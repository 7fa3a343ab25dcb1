"""The feed server: a threaded HTTP/1.1 server on 127.0.0.1, in a process of its own.

Run: python server.py CORPUS_DIR   (prints its port on the first line of stdout, then serves
until its stdin closes). One thread per connection, keep-alive, and a minimal request parser:
http.server spends about 1.5 ms of CPU on each request, which on 2 cores made the server, not
the clients, the bottleneck of the unchanged round.

It answers conditional GETs: If-None-Match first, else If-Modified-Since, with 304 Not
Modified when the document is unchanged.

Control (for the benchmark's own processes, outside the timed rounds):
  POST /_control/generation/N   serve generation N (1: first state; 2: some feeds changed)
  POST /_control/reset-stats    zero the counters
  GET  /_stats                  {"200": n, "304": n, "404": n, "bytes": n, "cpu_s": s} since
                                the last reset (cpu_s: this process's CPU time)
"""

from __future__ import annotations

import json
import socket
import socketserver
import sys
import threading
import time
from email.utils import parsedate_to_datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import Document, read_documents

_REASONS = {200: "OK", 304: "Not Modified", 400: "Bad Request", 404: "Not Found"}


class State:
    def __init__(self, generations: list[dict[str, Document]]) -> None:
        self.generations = generations
        self.generation = 1
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.cpu_at_reset = time.process_time()

    def document(self, path: str) -> Document | None:
        for generation in range(self.generation, 0, -1):
            document = self.generations[generation - 1].get(path)
            if document is not None:
                return document
        return None

    def count(self, key: str, amount: int = 1) -> None:
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + amount

    def stats(self) -> dict[str, float]:
        with self.lock:
            return {**self.counts, "cpu_s": time.process_time() - self.cpu_at_reset}

    def reset(self) -> None:
        with self.lock:
            self.counts = {}
            self.cpu_at_reset = time.process_time()


class Handler(socketserver.BaseRequestHandler):
    server: Server

    def handle(self) -> None:
        connection: socket.socket = self.request
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pending = b""
        while True:
            while b"\r\n\r\n" not in pending:
                chunk = connection.recv(65536)
                if not chunk:
                    return
                pending += chunk
            head, _, pending = pending.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            try:
                method, target, version = lines[0].split(" ", 2)
            except ValueError:
                connection.sendall(_response(400, {}, b"bad request\n", "text/plain"))
                return
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length") or 0)
            while len(pending) < length:
                chunk = connection.recv(65536)
                if not chunk:
                    return
                pending += chunk
            pending = pending[length:]
            connection.sendall(self._answer(method, target.split("?", 1)[0], headers))
            if headers.get("connection", "").lower() == "close" or version == "HTTP/1.0":
                return

    def _answer(self, method: str, path: str, headers: dict[str, str]) -> bytes:
        state = self.server.state
        if method == "POST" and path.startswith("/_control/generation/"):
            with state.lock:
                state.generation = int(path.rsplit("/", 1)[1])
            return _response(200, {}, b"ok\n", "text/plain")
        if method == "POST" and path == "/_control/reset-stats":
            state.reset()
            return _response(200, {}, b"ok\n", "text/plain")
        if path == "/_stats":
            return _response(200, {}, json.dumps(state.stats()).encode(), "application/json")
        document = state.document(path) if method in ("GET", "HEAD") else None
        if document is None:
            state.count("404")
            return _response(404, {}, b"not found\n", "text/plain")
        validators = {"ETag": document.etag, "Last-Modified": document.last_modified}
        if _not_modified(headers.get("if-none-match"), headers.get("if-modified-since"), document):
            state.count("304")
            return _response(304, validators, None, None)
        state.count("200")
        state.count("bytes", len(document.body))
        body = document.body if method == "GET" else b""
        return _response(200, validators, body, document.content_type + "; charset=utf-8")


def _response(
    status: int, headers: dict[str, str], body: bytes | None, content_type: str | None
) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS[status]}", "Server: ingest-bench"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def _not_modified(
    if_none_match: str | None, if_modified_since: str | None, document: Document
) -> bool:
    if if_none_match is not None:
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or document.etag in tags
    if if_modified_since is not None:
        try:
            since = parsedate_to_datetime(if_modified_since)
            return parsedate_to_datetime(document.last_modified) <= since
        except (TypeError, ValueError):
            return False
    return False


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, state: State) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.state = state


def main() -> None:
    server = Server(State(read_documents(Path(sys.argv[1]))))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    sys.stdin.read()  # the parent closes our stdin (or dies): stop
    server.shutdown()


if __name__ == "__main__":
    main()
