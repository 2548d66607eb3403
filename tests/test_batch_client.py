"""The async batch client against the fake server: what the server sends, the wire rules."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from llmost_cli.api.batch_client import STREAM_LIMIT, BatchHTTPClient
from llmost_cli.core.batch import Attempt
from llmost_cli.core.events import Finish, TextDelta
from llmost_cli.errors import ConfigError, NetworkError, RequestTimeout, StreamError
from tests import fakeserver as fs
from tests.conftest import TEST_KEY, Runner

BODY = {"messages": [{"role": "user", "content": "hi"}], "stream": True}


def attempt(server: fs.FakeServer, body: dict[str, Any] = BODY, **kw: Any) -> Attempt:
    async def go() -> Attempt:
        client = BatchHTTPClient(server.base_url, TEST_KEY, **kw)
        try:
            return await client.attempt(body)
        finally:
            await client.aclose()

    return asyncio.run(go())


def text(result: Attempt) -> str:
    return "".join(e.text for e in result.events if isinstance(e, TextDelta))


def test_stream_and_json_answers(server: fs.FakeServer) -> None:
    result = attempt(server)
    assert result.error is None and text(result) == "Hello!"
    assert Finish("stop") in result.events
    result = attempt(server, {**BODY, "stream": False})
    assert result.error is None and text(result) == "Hello!"
    req = server.chat_requests()[0]
    assert req.headers["authorization"] == f"Bearer {TEST_KEY}"
    assert req.headers["accept"] == "text/event-stream"
    assert json.loads(req.body) == BODY


def test_compressed_stream(server: fs.FakeServer) -> None:
    chunk = {"choices": [{"index": 0, "delta": {"content": "zipped"}}]}
    end = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    raw = f"data: {json.dumps(chunk)}\n\ndata: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode()
    server.add(fs.stream(fs.raw(gzip.compress(raw)), headers={"Content-Encoding": "gzip"}))
    result = attempt(server)
    assert result.error is None and text(result) == "zipped"


@pytest.mark.no_cover  # a size test: the example tests measure these lines
@pytest.mark.parametrize("stream", [True, False])
def test_decompression_bomb_is_refused(server: fs.FakeServer, stream: bool) -> None:
    headers = {"Content-Encoding": "gzip"}
    if stream:
        unit = b'data: {"choices":[{"index":0,"delta":{"content":"lol"}}]}\n\n'
        server.add(fs.stream(fs.raw(fs.bomb("gzip", unit=unit)), headers=headers))
    else:
        body = fs.bomb("gzip", unit=b" ")
        server.add(fs.raw_response(200, body, content_type="application/json", headers=headers))
    result = attempt(server, {**BODY, "stream": stream})
    assert isinstance(result.error, StreamError) and not result.retry
    assert "decompression bomb" in str(result.error) or "larger than" in str(result.error)


@pytest.mark.no_cover  # a size test: the example tests measure these lines
def test_a_stream_over_the_limit_is_refused(server: fs.FakeServer) -> None:
    piece = b'data: {"choices":[{"index":0,"delta":{"content":"' + b"x" * 60000 + b'"}}]}\n\n'
    server.add(fs.stream(fs.every(fs.raw(piece), 0, STREAM_LIMIT // len(piece) + 2)))
    result = attempt(server)
    assert isinstance(result.error, StreamError) and "larger than 32 MiB" in str(result.error)


def test_error_statuses_and_retry_advice(server: fs.FakeServer) -> None:
    server.add(
        fs.error(429, "slow down", retry_after=3),
        fs.error(503, "busy", retry_after=999),
        fs.error(400, "bad request"),
        fs.raw_response(502, b"<html><title>Bad gateway</title></html>"),
        fs.redirect("https://elsewhere.example/v1"),
    )
    r429, r503, r400, r502, r307 = (attempt(server) for _ in range(5))
    assert (r429.retry, r429.retry_after, r429.reason) == (True, 3.0, "HTTP 429")
    assert str(r429.error).startswith("HTTP 429: slow down")
    assert r503.retry is False  # a Retry-After longer than MAX_RETRY_AFTER is not waited for
    assert r400.retry is False and r400.error is not None and r400.error.code == 400
    assert r502.retry is True and "Bad gateway" in str(r502.error)
    assert r307.retry is False and "not followed" in str(r307.error)


def test_mid_stream_drop_keeps_the_text(server: fs.FakeServer) -> None:
    server.add(fs.stream(fs.chunk({"choices": [{"index": 0, "delta": {"content": "par"}}]}),
                         fs.drop()))  # fmt: skip
    result = attempt(server)
    assert text(result) == "par" and isinstance(result.error, NetworkError)
    assert not result.retry and not result.unreachable


def test_timeouts(server: fs.FakeServer) -> None:
    server.add(fs.hang(5))
    result = attempt(server, timeout=0.3)
    assert isinstance(result.error, RequestTimeout) and "response headers" in str(result.error)
    # keep-alive comments are not progress
    server.add(fs.stream(fs.every(fs.comment(), 0.05)))
    result = attempt(server, timeout=0.4)
    assert isinstance(result.error, RequestTimeout) and "keep-alive" in str(result.error)
    # data events are
    slow = fs.stream_text([f"w{i} " for i in range(12)], delay=0.1)
    server.add(slow)
    result = attempt(server, timeout=0.5)
    assert result.error is None and text(result).startswith("w0 w1")


def test_connection_refused_is_retryable_and_unreachable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def go() -> Attempt:
        client = BatchHTTPClient(f"http://127.0.0.1:{port}/v1", TEST_KEY)
        try:
            return await client.attempt(BODY)
        finally:
            await client.aclose()

    result = asyncio.run(go())
    assert result.retry and result.unreachable and isinstance(result.error, NetworkError)
    assert "cannot connect to 127.0.0.1" in str(result.error)


def test_a_key_with_a_control_character_is_refused() -> None:
    with pytest.raises(ConfigError):
        BatchHTTPClient("http://127.0.0.1:1/v1", "abc\ndef")


def test_plain_http_never_goes_through_a_proxy(llmost: Runner, server: fs.FakeServer) -> None:
    with fs.RecordingProxy() as proxy:
        env = {"HTTPS_PROXY": proxy.url, "HTTP_PROXY": proxy.url, "ALL_PROXY": proxy.url}
        r = llmost("batch", "-", input='"a"\n"b"\n', env=env)
        assert r.rc == 0, r
        assert proxy.received() == b""
    assert len(server.chat_requests()) == 2


def test_debug_shows_traffic_without_the_key(llmost: Runner, server: fs.FakeServer) -> None:
    r = llmost("--debug", "batch", "-", input='"a"\n')
    assert r.rc == 0 and "> POST" in r.stderr and "< 200" in r.stderr
    assert TEST_KEY not in r.stderr and TEST_KEY not in r.stdout


def test_unreachable_server_stops_the_batch_with_exit_8(llmost: Runner) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"LLMOST_BASE_URL": f"http://127.0.0.1:{port}/v1"}
    r = llmost("batch", "-", "--retries", "1", input='"a"\n"b"\n"c"\n', env=env)
    assert r.rc == 8 and "cannot connect" in r.stderr and r.stdout == ""
    assert "3 not written" in r.stderr


# --- TLS and proxies ------------------------------------------------------------------------


class TLSRelay:
    """TLS on 127.0.0.1 in front of the (plain http) fake server, with a self-signed
    certificate for localhost made by the openssl command."""

    def __init__(self, target: fs.FakeServer, tmp: Path) -> None:
        if shutil.which("openssl") is None:
            pytest.skip("needs the openssl command")
        self.cert, key = tmp / "cert.pem", tmp / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-days", "2",
             "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
             "-keyout", str(key), "-out", str(self.cert)],
            check=True, capture_output=True,
        )  # fmt: skip
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(self.cert, key)
        self.target = target
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.handshakes = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, conn: socket.socket) -> None:
        try:
            tls = self.ctx.wrap_socket(conn, server_side=True)
        except (OSError, ssl.SSLError):
            conn.close()
            return
        self.handshakes += 1
        upstream = socket.create_connection((self.target.host, self.target.port))

        def pump(src: socket.socket, dst: socket.socket) -> None:
            with contextlib.suppress(OSError, ValueError):
                while data := src.recv(65536):
                    dst.sendall(data)
            with contextlib.suppress(OSError, ValueError):
                dst.shutdown(socket.SHUT_WR)

        with tls, upstream:
            back = threading.Thread(target=pump, args=(upstream, tls), daemon=True)
            back.start()
            pump(tls, upstream)
            back.join(5)

    def close(self) -> None:
        self.sock.close()


def test_https_with_certificate_verification(
    llmost: Runner, server: fs.FakeServer, tmp_path: Path
) -> None:
    relay = TLSRelay(server, tmp_path)
    try:
        env = {"LLMOST_BASE_URL": f"https://localhost:{relay.port}/api/v1"}
        r = llmost("batch", "-", "--retries", "0", input='"a"\n"b"\n', env=env)
        assert r.rc == 8 and "certificate" in r.stderr  # self-signed: refused
        r = llmost("batch", "-", input='"a"\n"b"\n', env=env | {"SSL_CERT_FILE": str(relay.cert)})
        assert r.rc == 0, r
        assert [json.loads(x)["content"] for x in r.stdout.splitlines()] == ["Hello!", "Hello!"]
    finally:
        relay.close()


def test_https_goes_through_the_proxy_as_a_tunnel(llmost: Runner) -> None:
    with fs.RecordingProxy() as proxy:
        env = {"LLMOST_BASE_URL": "https://llmost.ru/api/v1", "HTTPS_PROXY": proxy.url}
        r = llmost("batch", "-", "--retries", "0", input='"a"\n', env=env)
        assert r.rc == 8 and "proxy" in r.stderr
        received = proxy.received()
    assert received.startswith(b"CONNECT llmost.ru:443 HTTP/1.1")
    assert TEST_KEY.encode() not in received
