"""The fake LLMost server, exercised with a real HTTP client over a real socket."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakeserver import (
    DEFAULT_MODELS,
    DEFAULT_USAGE,
    FakeServer,
    RecordingProxy,
    Reply,
    bomb,
    chunk,
    comment,
    completion,
    done,
    drop,
    error,
    every,
    hang,
    json_response,
    markdown_pieces,
    midstream_error,
    pause,
    raw,
    raw_http,
    raw_response,
    redirect,
    split_text,
    stream,
    stream_text,
    stream_tool_calls,
    trickle,
)

CHAT = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True}


@pytest.fixture
def srv() -> Iterator[FakeServer]:
    with FakeServer() as server:
        yield server
    assert server.errors == []


@pytest.fixture
def client(srv: FakeServer) -> Iterator[httpx.Client]:
    # verify=False: plain HTTP; loading the CA bundle would cost ~50 ms per test
    with httpx.Client(base_url=srv.base_url, timeout=5, verify=False) as c:
        yield c


def sse_lines(client: httpx.Client, body: dict[str, Any] | None = None) -> list[str]:
    with client.stream("POST", "/chat/completions", json=body or CHAT) as resp:
        assert resp.status_code == 200
        return list(resp.iter_lines())


def data_events(lines: list[str]) -> list[Any]:
    out: list[Any] = []
    for line in lines:
        if line.startswith("data: "):
            payload = line[len("data: ") :]
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def content_of(events: list[Any]) -> str:
    return "".join(
        e["choices"][0]["delta"].get("content") or ""
        for e in events
        if isinstance(e, dict) and e["choices"]
    )


def test_stream_text_shape(srv: FakeServer, client: httpx.Client) -> None:
    text = "Привет, мир! 👋 Some **markdown**."
    srv.add(stream_text(text))
    lines = sse_lines(client)
    assert lines[0] == ": OPENROUTER PROCESSING"
    assert lines.count(": OPENROUTER PROCESSING") == 2  # leading + one mid-stream keep-alive
    events = data_events(lines)
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert content_of(events) == text
    for e in events[1:-3]:  # content chunks: LLMost style, no created / finish_reason keys
        assert "created" not in e and "finish_reason" not in e["choices"][0]
    finish, usage, last = events[-3:]
    assert finish["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop"}
    assert usage["choices"] == [] and usage["usage"] == DEFAULT_USAGE
    assert last == "[DONE]"


def test_split_text_works_on_characters() -> None:
    assert split_text("абвгдеё") == ["абвг", "деё"]
    assert "".join(markdown_pieces(500)).count("```") >= 4
    assert len(markdown_pieces(7)) == 7


def test_stream_arrives_incrementally(srv: FakeServer, client: httpx.Client) -> None:
    srv.add(stream_text(["one", "two", "three"], delay=0.15, keepalive=False))
    arrivals: list[tuple[float, str]] = []
    with client.stream("POST", "/chat/completions", json=CHAT) as resp:
        start = time.monotonic()
        for line in resp.iter_lines():
            if '"content":"' in line and '"content":""' not in line:
                arrivals.append((time.monotonic() - start, line))
    assert len(arrivals) == 3
    assert arrivals[0][0] < 0.1
    assert arrivals[2][0] - arrivals[0][0] >= 0.25


@pytest.mark.parametrize("chunked", [True, False])
@pytest.mark.parametrize("line_ending", ["\n", "\r\n"])
def test_framing_options(
    srv: FakeServer, client: httpx.Client, chunked: bool, line_ending: str
) -> None:
    srv.add(stream_text("abc def", chunked=chunked, line_ending=line_ending, fragment=3))
    with client.stream("POST", "/chat/completions", json=CHAT) as resp:
        assert ("transfer-encoding" in resp.headers) is chunked
        assert resp.headers.get("connection") == (None if chunked else "close")
        raw_body = resp.read()
    assert (b"\r\n\r\n" in raw_body) is (line_ending == "\r\n")
    lines = raw_body.decode().splitlines()
    assert content_of(data_events(lines)) == "abc def"


def test_drop_chunked_is_a_protocol_error(srv: FakeServer, client: httpx.Client) -> None:
    srv.add(stream(chunk({"choices": [{"index": 0, "delta": {"content": "par"}}]}), drop()))
    got: list[str] = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        client.stream("POST", "/chat/completions", json=CHAT) as resp,
    ):
        got.extend(resp.iter_lines())
    assert got and '"par"' in got[0]


def test_drop_connection_close_is_plain_eof(srv: FakeServer, client: httpx.Client) -> None:
    srv.add(stream(chunk({"n": 1}), drop(), chunk({"n": 2}), chunked=False))
    lines = sse_lines(client)
    assert lines == ['data: {"n":1}', ""]


def test_drop_with_reset(srv: FakeServer, client: httpx.Client) -> None:
    srv.add(stream(chunk({"n": 1}), pause(0.05), drop(reset=True)))
    with (
        pytest.raises(httpx.ReadError),
        client.stream("POST", "/chat/completions", json=CHAT) as resp,
    ):
        list(resp.iter_lines())
    assert srv.requests[0].finished.wait(1)


def test_raw_parts_split_utf8(srv: FakeServer, client: httpx.Client) -> None:
    data = 'data: {"t":"Ж"}\n\n'.encode()
    cut = data.index("Ж".encode()) + 1  # inside the two-byte character
    srv.add(stream(raw(data[:cut]), pause(0.05), raw(data[cut:]), comment("x"), done()))
    with client.stream("POST", "/chat/completions", json=CHAT) as resp:
        pieces = list(resp.iter_raw())
    body = b"".join(pieces)
    assert body == data + b": x\n\ndata: [DONE]\n\n"
    assert len(pieces) >= 2


def test_recorded_request(srv: FakeServer, client: httpx.Client) -> None:
    body = {**CHAT, "messages": [{"role": "user", "content": "Сколько?"}], "stream": False}
    client.post(
        "/chat/completions?x=1&x=2",
        json=body,
        headers={"Authorization": "Bearer llmost_k", "X-Title": "t"},
    )
    client.get("/models")
    rec = srv.requests[0]
    assert (rec.method, rec.path) == ("POST", "/api/v1/chat/completions")
    assert rec.query == {"x": ["1", "2"]}
    assert rec.headers["authorization"] == "Bearer llmost_k"
    assert rec.headers["x-title"] == "t"
    assert rec.json == body
    assert json.loads(rec.body) == body
    assert srv.requests[1].json is None
    assert srv.chat_requests() == [rec]
    assert srv.wait_requests(2, timeout=0.1) == srv.requests


def test_chunked_request_body_is_read(srv: FakeServer, client: httpx.Client) -> None:
    def gen() -> Iterator[bytes]:
        yield b'{"stream": '
        yield b"false}"

    resp = client.post("/chat/completions", content=gen())
    assert srv.requests[0].json == {"stream": False}
    assert resp.json()["choices"][0]["message"]["content"] == "Hello!"


def test_defaults(srv: FakeServer, client: httpx.Client) -> None:
    assert content_of(data_events(sse_lines(client, {**CHAT, "model": "x/y"}))) == "Hello!"
    resp = client.post("/chat/completions", json={**CHAT, "stream": False, "model": "x/y"})
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert body["object"] == "chat.completion" and body["model"] == "x/y"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Hello!"}
    assert resp.http_version == "HTTP/1.1"

    models = client.get("/models").json()["data"]
    assert models == DEFAULT_MODELS
    assert {m["pricing"]["prompt"] for m in models} >= {"-1", "0"}
    srv.models = [{"id": "only/one"}]
    assert client.get("/models").json() == {"data": [{"id": "only/one"}]}

    missing = client.get("/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == 404

    srv.reset()
    assert srv.requests == [] and srv.models == DEFAULT_MODELS


def test_queue_is_fifo_then_default(srv: FakeServer, client: httpx.Client) -> None:
    srv.add(completion("first"), completion("second"))
    srv.set_default(completion("always"))
    srv.add(json_response({"data": {"label": "k"}}), path="/api/v1/key")
    texts = [
        client.post("/chat/completions", json=CHAT).json()["choices"][0]["message"]["content"]
        for _ in range(4)
    ]
    assert texts == ["first", "second", "always", "always"]
    assert client.get("/key").json() == {"data": {"label": "k"}}
    assert client.get("/key").status_code == 404
    assert srv.pending() == 0


def test_error_with_retry_after(srv: FakeServer, client: httpx.Client) -> None:
    srv.add(
        error(429, "Rate limit exceeded", retry_after=2, metadata={"error_type": "rate"}),
        error(502, "bad", code="server_error"),
    )
    resp = client.post("/chat/completions", json=CHAT)
    assert resp.status_code == 429
    assert resp.headers["retry-after"] == "2"
    assert resp.json() == {
        "error": {"code": 429, "message": "Rate limit exceeded", "metadata": {"error_type": "rate"}}
    }
    resp = client.post("/chat/completions", json=CHAT)
    assert resp.json() == {"error": {"code": "server_error", "message": "bad"}}


def test_completion_variants(srv: FakeServer, client: httpx.Client) -> None:
    srv.add(
        completion(None, finish_reason="tool_calls", tool_calls=[("call_1", "f", '{"a":1}')]),
        completion(
            "partial",
            finish_reason="error",
            choice_extra={"error": {"code": 502, "message": "x"}},
            extra={"system_fingerprint": "fp"},
            usage=None,
        ),
    )
    first = client.post("/chat/completions", json=CHAT).json()
    msg = first["choices"][0]["message"]
    assert msg["content"] is None
    assert msg["tool_calls"][0] == {
        "id": "call_1",
        "type": "function",
        "function": {"name": "f", "arguments": '{"a":1}'},
    }
    second = client.post("/chat/completions", json=CHAT).json()
    assert second["choices"][0]["error"]["code"] == 502
    assert second["system_fingerprint"] == "fp" and "usage" not in second


@pytest.mark.parametrize("interleave", [False, True])
def test_stream_tool_calls(srv: FakeServer, client: httpx.Client, interleave: bool) -> None:
    calls = [("call_a", "get_weather", '{"city": "Москва"}'), ("call_b", "now", "{}")]
    srv.add(stream_tool_calls(calls, text="Let me check.", interleave=interleave))
    events = [e for e in data_events(sse_lines(client)) if e != "[DONE]"]
    merged: dict[int, dict[str, str]] = {}
    indexes: list[int] = []
    for e in events:
        for frag in e["choices"][0]["delta"].get("tool_calls", []) if e["choices"] else []:
            slot = merged.setdefault(frag["index"], {"id": "", "name": "", "args": ""})
            indexes.append(frag["index"])
            if "id" in frag:
                assert frag["function"]["arguments"] == "" and frag["type"] == "function"
                slot["id"], slot["name"] = frag["id"], frag["function"]["name"]
            else:
                assert set(frag) == {"index", "function"}
                slot["args"] += frag["function"]["arguments"]
    assert merged == {
        0: {"id": "call_a", "name": "get_weather", "args": '{"city": "Москва"}'},
        1: {"id": "call_b", "name": "now", "args": "{}"},
    }
    assert (indexes != sorted(indexes)) is interleave
    assert content_of(events) == "Let me check."
    assert events[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert events[-1]["choices"] == []


@pytest.mark.parametrize("with_done", [False, True])
def test_midstream_error(srv: FakeServer, client: httpx.Client, with_done: bool) -> None:
    srv.add(midstream_error("Half an ans", code="server_error", done=with_done))
    events = data_events(sse_lines(client))
    assert (events[-1] == "[DONE]") is with_done
    err = events[-2] if with_done else events[-1]
    assert err["error"] == {"code": "server_error", "message": "Provider disconnected"}
    assert err["choices"][0]["finish_reason"] == "error"
    assert content_of(events) == "Half an ans"


def test_raw_response_and_redirect(srv: FakeServer, client: httpx.Client) -> None:
    srv.add(raw_response(502, b"<html>Bad Gateway</html>"), redirect(srv.url + "/elsewhere"))
    resp = client.post("/chat/completions", json=CHAT)
    assert resp.status_code == 502 and resp.headers["content-type"] == "text/html"
    assert resp.text == "<html>Bad Gateway</html>"
    resp = client.post("/chat/completions", json=CHAT)
    assert resp.status_code == 307 and resp.headers["location"] == srv.url + "/elsewhere"


class _Broken(Reply):
    def play(self, ctx: Any) -> None:
        raise ValueError("bad script")


def test_reply_exceptions_are_recorded(capsys: pytest.CaptureFixture[str]) -> None:
    with FakeServer() as server, httpx.Client(base_url=server.base_url, timeout=5) as c:
        server.add(_Broken())
        with pytest.raises(httpx.RemoteProtocolError):
            c.post("/chat/completions", json=CHAT)
    assert [str(e) for e in server.errors] == ["bad script"]
    assert "ValueError" in capsys.readouterr().err


def test_hang_then_client_timeout(srv: FakeServer) -> None:
    srv.add(hang(30))
    with httpx.Client(base_url=srv.base_url, timeout=0.2) as c, pytest.raises(httpx.ReadTimeout):
        c.post("/chat/completions", json=CHAT)


def test_hang_then_reply_and_hang_without_reply(srv: FakeServer, client: httpx.Client) -> None:
    srv.add(hang(0.1, then=completion("late")), hang(0))
    start = time.monotonic()
    assert client.post("/chat/completions", json=CHAT).json()["choices"][0]["message"]
    assert time.monotonic() - start >= 0.1
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/chat/completions", json=CHAT)


def test_pause_mid_stream_hits_read_timeout(srv: FakeServer) -> None:
    srv.add(stream(comment(), chunk({"n": 1}), pause(30), done()))
    got: list[str] = []
    with (
        httpx.Client(base_url=srv.base_url, timeout=0.3) as c,
        pytest.raises(httpx.ReadTimeout),
        c.stream("POST", "/chat/completions", json=CHAT) as resp,
    ):
        got.extend(resp.iter_lines())
    assert 'data: {"n":1}' in got


def test_fifty_concurrent_clients(srv: FakeServer) -> None:
    # Each stream takes ~0.3 s; served one after another, 50 would take 15 s.
    srv.set_default(stream_text(["concurrent", " reply"], delay=0.3))
    results: list[str] = []
    lock = threading.Lock()
    limits = httpx.Limits(max_connections=50)
    with httpx.Client(base_url=srv.base_url, timeout=10, limits=limits) as c:

        def one() -> None:
            text = content_of(data_events(sse_lines(c)))
            with lock:
                results.append(text)

        threads = [threading.Thread(target=one) for _ in range(50)]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        elapsed = time.monotonic() - start
    assert results == ["concurrent reply"] * 50
    assert len(srv.chat_requests()) == 50
    assert elapsed < 2


def test_stop_is_clean_and_fast() -> None:
    srv = FakeServer().start()
    srv.add(hang(60), path="/api/v1/slow")
    port = srv.port
    idle = socket.create_connection(("127.0.0.1", port))  # keep-alive connection, never used
    with httpx.Client(base_url=srv.base_url, timeout=10) as c:
        c.get("/models")  # leaves a pooled keep-alive connection open
        failure: list[BaseException] = []

        def slow() -> None:
            try:
                c.get("/slow")
            except httpx.HTTPError as exc:
                failure.append(exc)

        t = threading.Thread(target=slow)
        t.start()
        srv.wait_requests(2)
        start = time.monotonic()
        srv.stop()
        assert time.monotonic() - start < 1
        t.join(5)
        assert failure  # the hanging request ended without a response
    idle.close()
    # only this server's threads: the session-wide server of the e2e tests may be running
    assert not [t for t in threading.enumerate() if t.name.startswith(f"fakeserver-{port}")]
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    srv.stop()  # idempotent
    with pytest.raises(RuntimeError):
        _ = srv.url


def test_standalone_main() -> None:
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakeserver", "--port", "0", "--tokens", "20"],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line.split()[3]
        with httpx.Client(base_url=url + "/api/v1", timeout=5) as c:
            events = data_events(sse_lines(c))
        assert content_of(events) == "".join(markdown_pieces(20))
        assert len([e for e in events if e != "[DONE]" and e["choices"]]) == 22  # role+20+finish
        proc.send_signal(signal.SIGINT)
        assert proc.wait(5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


# --- hostile behaviours -----------------------------------------------------------------


def test_trickle_sends_one_byte_at_a_time(srv: FakeServer, client: httpx.Client) -> None:
    srv.add(stream(trickle(b"data: x\n\n", 0.02)))
    with client.stream("POST", "/chat/completions", json=CHAT) as resp:
        start = time.monotonic()
        pieces = list(resp.iter_raw())
        took = time.monotonic() - start
    assert b"".join(pieces) == b"data: x\n\n" and len(pieces) >= 5 and took >= 0.1


def test_every_repeats_until_the_client_leaves(srv: FakeServer, client: httpx.Client) -> None:
    srv.add(stream(every(comment(), 0.01, count=5), done()))
    assert sse_lines(client).count(": OPENROUTER PROCESSING") == 5
    srv.add(stream(every(comment(), 0.01)))
    with client.stream("POST", "/chat/completions", json=CHAT) as resp:
        lines = resp.iter_lines()
        assert [next(lines) for _ in range(3)] == [
            ": OPENROUTER PROCESSING",
            "",
            ": OPENROUTER PROCESSING",
        ]
    srv.requests[-1].finished.wait(5)
    assert srv.requests[-1].client_gone


def test_raw_http_writes_anything(srv: FakeServer) -> None:
    srv.add(raw_http(b"HTTP/1.1 299 Odd\r\nContent-Length: 2\r\nX-A: b\r\n\r\nok", interval=0.001))
    with socket.create_connection((srv.host, srv.port), timeout=5) as conn:
        conn.sendall(b"POST /api/v1/chat/completions HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        data = b""
        while chunk_ := conn.recv(100):
            data += chunk_
    assert data == b"HTTP/1.1 299 Odd\r\nContent-Length: 2\r\nX-A: b\r\n\r\nok"


@pytest.mark.parametrize(("kind", "wbits"), [("gzip", 31), ("deflate", 15), ("raw-deflate", -15)])
def test_bomb_is_valid_compressed_data(kind: str, wbits: int) -> None:
    import zlib

    data = bomb(kind, decoded_size=8 << 20, unit=b"ab", prefix=b"data: ")
    assert len(data) < 20_000
    plain = zlib.decompress(data, wbits)
    assert plain == b"data: " + b"ab" * (7 << 19)  # whole 1 MiB blocks after the prefix


def test_recording_proxy_records_and_refuses() -> None:
    with RecordingProxy() as proxy:
        assert proxy.url.startswith("http://127.0.0.2:")
        with httpx.Client(proxy=proxy.url, timeout=5) as c:
            resp = c.get("http://example.test/x", headers={"X-Secret": "s"})
        assert resp.status_code == 502
    assert proxy.received().startswith(b"GET http://example.test/x HTTP/1.1\r\n")
    assert b"X-Secret: s" in proxy.received()
