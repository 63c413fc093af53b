"""A real S3 endpoint on loopback for the tests, and a proxy that counts or breaks requests.

The endpoint is moto's standalone server, reached over HTTP by s3fs exactly as AWS would be.
:class:`Proxy` sits in front of it: every request it forwards is recorded (method and path), so a
test can count what an operation cost, and it can fail or drop a bounded, seeded share of them.
"""

from __future__ import annotations

import http.client
import logging
import random
import socket
import threading
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Hop-by-hop headers are the proxy's own business; the body is re-framed with Content-Length.
_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "trailer",
        "upgrade", "content-length"}


class S3Server:
    """moto's standalone S3 server on a free loopback port."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"

    def reset(self) -> None:
        """Forget every bucket and object (moto's reset endpoint)."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def stop(self) -> None:
        self._server.stop()


@dataclass
class Faults:
    """Which requests a :class:`Proxy` breaks: a seeded share, at most ``limit`` of them."""

    rate: float = 0.0
    """Share of the eligible requests that fail."""
    limit: int = 0
    """At most this many failures in all, so that retries eventually get through."""
    seed: int = 0
    methods: tuple[str, ...] = ("GET", "PUT", "POST", "DELETE", "HEAD")
    """Only requests with these methods are eligible."""
    kinds: tuple[str, ...] = ("500", "503", "drop")
    """``"403"``/``"500"``/``"503"``: an S3 error response; ``"drop"``: close the connection
    unanswered."""
    paths: tuple[str, ...] = ("",)
    """Only requests whose path contains one of these are eligible."""
    injected: list[tuple[str, str, str]] = field(default_factory=list)
    """``(kind, method, path)`` of every failure injected."""

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def pick(self, method: str, path: str) -> str | None:
        if method not in self.methods or len(self.injected) >= self.limit or not any(
                p in path for p in self.paths):
            return None
        if self._random.random() >= self.rate:
            return None
        kind = self._random.choice(self.kinds)
        self.injected.append((kind, method, path))
        return kind


class Proxy:
    """An HTTP proxy on loopback in front of ``upstream`` that records every request.

    ``requests`` holds ``(method, path)`` with the query string kept, in arrival order.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = urllib.parse.urlsplit(upstream)
        self.requests: list[tuple[str, str]] = []
        self.faults = Faults()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()
            self.faults = Faults()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _record(self, method: str, path: str) -> str | None:
        with self._lock:
            self.requests.append((method, path))
            return self.faults.pick(method, path)


def _handler(proxy: Proxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        wbufsize = 1 << 16  # one send per response: a header-then-body pair of small sends
        disable_nagle_algorithm = True  # would otherwise wait for a delayed ACK each time

        def log_message(self, *args) -> None:
            pass

        def handle_expect_100(self) -> bool:  # the client waits for it before sending a body
            ok = super().handle_expect_100()
            self.wfile.flush()
            return ok

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                parts = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0], 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return b"".join(parts)
                    parts.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _forward(self) -> None:
            body = self._body()
            fault = proxy._record(self.command, self.path)
            if fault == "drop":
                self.close_connection = True
                self.connection.close()
                return
            if fault is not None:
                code = int(fault)
                reason = {403: "AccessDenied", 500: "InternalError"}.get(code, "SlowDown")
                payload = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{reason}</Code>'
                           f"<Message>injected by the test proxy</Message></Error>").encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)
                return
            up = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port,
                                            timeout=30)
            try:
                up.connect()
                up.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                headers["Content-Length"] = str(len(body))
                up.request(self.command, self.path, body=body, headers=headers)
                response = up.getresponse()
                data = response.read()
                self.send_response(response.status, response.reason)
                for k, v in response.getheaders():
                    if k.lower() not in _HOP and k.lower() not in ("server", "date"):
                        self.send_header(k, v)
                # a HEAD answer states the object's size without a body
                length = response.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length or str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
            finally:
                up.close()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

    return Handler
