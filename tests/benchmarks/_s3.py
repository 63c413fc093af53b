"""A local S3 endpoint for the benchmarks: moto's S3 behind an HTTP front end that delays requests.

The endpoint runs in a child process (``python -m tests.benchmarks._s3``), never in the
benchmark's: a bucket's CPU time is not its reader's, and a test server answering in the reader's
process would hold the interpreter lock the reader needs.

In the child, moto's S3 application (a WSGI app) is called straight from an asyncio HTTP server
that listens on two loopback ports:

- the *delayed* port waits ``delay`` seconds before it answers each request (on its own: the waits
  of concurrent requests overlap, as against a distant object store) and counts the requests.
  moto's app then answers one request at a time, in about a millisecond, which if anything slows
  concurrent reads, never one-at-a-time ones;
- the *direct* port answers at once, uncounted (setting up data is not what is measured).

This replaces moto's own server and a forwarding proxy, which spent about 4 ms of the machine's
CPU per request (a thread per connection, a second HTTP hop, and a search of moto's package for
the service under a global lock): on a 2-core machine that CPU, not the client, bounded how fast
concurrent requests could be answered. moto's S3 itself still serves every request.

The parent controls the child over its stdin and stdout, one line per command: ``total``
(requests on the delayed port since the last ``reset``), ``reset``, ``delay SECONDS``, ``stop``.
"""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import threading
from typing import Any
from urllib.parse import unquote

_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
        "upgrade", "content-length", "expect"}
_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class _Closed(Exception):
    """The client closed the connection between requests."""


class Endpoint:
    """moto's S3 app served over HTTP on two loopback ports (see the module docstring).

    Runs its asyncio loop in a thread of the calling process; :class:`S3` runs it in a child.
    """

    def __init__(self, delay: float = 0.020) -> None:
        from moto.server import create_backend_app

        self.app = create_backend_app("s3")
        self.delay = delay
        self.requests = 0
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        self._servers = [asyncio.run_coroutine_threadsafe(self._listen(delayed), self._loop)
                         .result() for delayed in (True, False)]
        self.delayed_port, self.direct_port = (s.sockets[0].getsockname()[1]
                                               for s in self._servers)

    async def _listen(self, delayed: bool) -> asyncio.Server:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._serve(reader, writer, delayed)

        return await asyncio.start_server(serve, "127.0.0.1", 0, backlog=1024, limit=1 << 20)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     delayed: bool) -> None:
        try:
            while True:
                method, target, headers = await _read_request(reader)
                if headers.get("expect", "").lower() == "100-continue":
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                body = await _read_body(reader, headers)
                if delayed:
                    self.requests += 1  # reset only while no request is under way
                    if self.delay:
                        await asyncio.sleep(self.delay)
                status, reply_headers, reply = self._call(method, target, headers, body,
                                                          writer.get_extra_info("sockname"))
                if method == "HEAD":  # the object's size, as the app gave it
                    length = next((v for k, v in reply_headers
                                   if k.lower() == "content-length"), "0")
                else:
                    length = str(len(reply))
                lines = [f"HTTP/1.1 {status}",
                         *(f"{k}: {v}" for k, v in reply_headers if k.lower() not in _HOP),
                         f"Content-Length: {length}"]
                writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
                if reply and method != "HEAD":
                    writer.write(reply)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (_Closed, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def _call(self, method: str, target: str, headers: dict[str, str], body: bytes,
              sockname: Any) -> tuple[str, list[tuple[str, str]], bytes]:
        """One request through moto's WSGI app, with the environ werkzeug's server would build."""
        path, _, query = target.partition("?")
        environ: dict[str, Any] = {
            "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr, "wsgi.multithread": False, "wsgi.multiprocess": False,
            "wsgi.run_once": False, "REQUEST_METHOD": method, "SCRIPT_NAME": "",
            "PATH_INFO": _latin1(unquote(path)), "QUERY_STRING": _latin1(query),
            "REQUEST_URI": _latin1(target), "RAW_URI": _latin1(target),
            "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": 0, "SERVER_NAME": sockname[0],
            "SERVER_PORT": str(sockname[1]), "SERVER_PROTOCOL": "HTTP/1.1",
            "CONTENT_LENGTH": str(len(body)),
        }
        for name, value in headers.items():
            if "_" in name or name in ("content-length", "transfer-encoding", "expect"):
                continue  # as werkzeug: an underscore could spoof a dashed header
            key = name.upper().replace("-", "_")
            environ[key if key == "CONTENT_TYPE" else f"HTTP_{key}"] = value
        started: list = []

        def start_response(status: str, response_headers: list, exc_info: Any = None) -> None:
            started[:] = [status, response_headers]

        result = self.app(environ, start_response)
        try:
            reply = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        return started[0], started[1], reply

    def stop(self) -> None:
        for server in self._servers:
            self._loop.call_soon_threadsafe(server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)


def _latin1(text: str) -> str:
    return text.encode().decode("latin-1")  # WSGI's "bytes as latin-1" strings


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str]]:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if not e.partial:
            raise _Closed from None
        raise
    first, *lines = head[:-4].decode("latin-1").split("\r\n")
    method, target, _ = first.split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip()
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    return method, target, headers


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                    pass
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    length = int(headers.get("content-length") or 0)
    return await reader.readexactly(length) if length else b""


class S3:
    """moto's S3 with a bucket, behind a delaying front end, in a child process.

    Parameters
    ----------
    delay
        Seconds every request on the delayed port waits before it is answered.
    bucket
        The bucket created at start.
    """

    def __init__(self, delay: float = 0.020, bucket: str = "bench") -> None:
        self.bucket = bucket
        self._child = subprocess.Popen(
            [sys.executable, "-m", "tests.benchmarks._s3", str(delay), bucket], cwd=_REPO,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        ready = self._child.stdout.readline().split()
        if not ready or ready[0] != "ready":
            self._child.kill()
            raise RuntimeError("the S3 test server did not start (is moto[server] installed?)")
        self.delayed_port, self.direct_port = int(ready[1]), int(ready[2])

    @property
    def pid(self) -> int:
        """The child process that serves the endpoint."""
        return self._child.pid

    def _ask(self, command: str) -> str:
        self._child.stdin.write(command + "\n")
        self._child.stdin.flush()
        return self._child.stdout.readline().strip()

    def reset(self) -> None:
        """Count requests on the delayed port from zero."""
        self._ask("reset")

    def total(self) -> int:
        """Requests on the delayed port since the last :meth:`reset`."""
        return int(self._ask("total"))

    def set_delay(self, seconds: float) -> None:
        self._ask(f"delay {seconds}")

    def options(self, *, delayed: bool = True) -> dict:
        """s3fs storage options for the delayed port or the direct one."""
        port = self.delayed_port if delayed else self.direct_port
        return {"key": "testing", "secret": "testing", "skip_instance_cache": True,
                "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{port}",
                                  "region_name": "us-east-1"},
                "use_listings_cache": False}

    def url(self, path: str) -> str:
        return f"s3://{self.bucket}/{path}"

    def stop(self) -> None:
        if self._child.poll() is None:
            try:
                self._ask("stop")
                self._child.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self._child.kill()
                self._child.wait()


def _serve(delay: float, bucket: str) -> None:
    import boto3

    endpoint = Endpoint(delay)
    boto3.client("s3", endpoint_url=f"http://127.0.0.1:{endpoint.direct_port}",
                 aws_access_key_id="testing", aws_secret_access_key="testing",
                 region_name="us-east-1").create_bucket(Bucket=bucket)
    print("ready", endpoint.delayed_port, endpoint.direct_port, flush=True)
    for line in sys.stdin:
        command, *args = line.split() or [""]
        if command == "total":
            print(endpoint.requests, flush=True)
        elif command == "reset":
            endpoint.requests = 0
            print("ok", flush=True)
        elif command == "delay":
            endpoint.delay = float(args[0])
            print("ok", flush=True)
        elif command == "stop":
            break
    endpoint.stop()


if __name__ == "__main__":
    _serve(float(sys.argv[1]), sys.argv[2])
