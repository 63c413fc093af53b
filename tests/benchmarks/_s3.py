"""A local S3 endpoint (moto's server) behind a loopback proxy that delays and counts requests."""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
        "upgrade"}


class DelayProxy:
    """Forwards every HTTP request to ``target`` after ``delay`` seconds; counts requests.

    Each proxied request waits on its own thread, so concurrent requests overlap as they would
    against a distant object store.
    """

    def __init__(self, target_port: int, delay: float = 0.020) -> None:
        self.delay = delay
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                with proxy._lock:
                    proxy.counts[self.command] += 1
                if proxy.delay:
                    time.sleep(proxy.delay)
                conn = http.client.HTTPConnection("127.0.0.1", target_port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status, resp.reason)
                for k, v in resp.getheaders():
                    if k.lower() not in _HOP and k.lower() != "content-length":
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()

    def total(self) -> int:
        return sum(self.counts.values())

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class S3:
    """moto's threaded server on loopback with a bucket, and a delaying proxy in front of it."""

    def __init__(self, delay: float = 0.020, bucket: str = "bench") -> None:
        from moto.server import ThreadedMotoServer

        self.bucket = bucket
        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.moto.start()
        self.moto_port = self.moto._server.server_address[1]
        self.proxy = DelayProxy(self.moto_port, delay)
        import boto3

        boto3.client("s3", endpoint_url=f"http://127.0.0.1:{self.moto_port}",
                     aws_access_key_id="testing", aws_secret_access_key="testing",
                     region_name="us-east-1").create_bucket(Bucket=bucket)

    def options(self, *, delayed: bool = True) -> dict:
        """s3fs storage options: through the proxy (``delayed``) or straight to moto."""
        port = self.proxy.port if delayed else self.moto_port
        return {"key": "testing", "secret": "testing", "skip_instance_cache": True,
                "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{port}",
                                  "region_name": "us-east-1"},
                "use_listings_cache": False}

    def url(self, path: str) -> str:
        return f"s3://{self.bucket}/{path}"

    def stop(self) -> None:
        self.proxy.stop()
        self.moto.stop()
