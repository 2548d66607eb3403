"""The API key stays secret: never in error text or the debug log, never in clear to a proxy."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from llmost_cli.api import client, transport
from llmost_cli.errors import APIError, ConfigError, LlmostError, NetworkError
from tests import fakeserver as fs
from tests.conftest import TEST_KEY

PROXY_VARS = ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"]


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[fs.RecordingProxy]:
    """A recording proxy on 127.0.0.2, named by every proxy variable (none excluded)."""
    for name in [*PROXY_VARS, "NO_PROXY", "no_proxy"]:
        monkeypatch.delenv(name, raising=False)
    with fs.RecordingProxy() as recorder:
        for name in PROXY_VARS:
            monkeypatch.setenv(name, recorder.url)
        yield recorder


def logged(lines: list[str]) -> client.Log:
    return lines.append


# --- keys that cannot be sent -----------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [TEST_KEY + "\r\nX-Evil: 1", TEST_KEY + "\n", "\x00" + TEST_KEY, TEST_KEY + "é", "a\x7fb"],
)
def test_a_key_that_cannot_be_a_header_is_refused_without_showing_it(key: str) -> None:
    with pytest.raises(ConfigError) as info:
        client.Client("http://127.0.0.1:9/v1", key)
    text = str(info.value)
    assert "API key" in text and key not in text and TEST_KEY not in text
    assert info.value.exit_code == 3 and info.value.__cause__ is None


def test_library_errors_quoting_the_key_are_replaced() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.LocalProtocolError(f"Illegal header value b'Bearer {TEST_KEY}'")

    c = client.Client("http://h:1/v1", TEST_KEY, transport=httpx.MockTransport(handler))
    with c, pytest.raises(NetworkError) as info:
        list(c.chat({"stream": True}))
    assert TEST_KEY not in str(info.value) and "invalid header" in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.parametrize("cls", [httpx.ReadError, httpx.ConnectError, httpx.RemoteProtocolError])
def test_any_error_text_holding_the_key_is_redacted(cls: type[httpx.HTTPError]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise cls(f"weird failure near {TEST_KEY}")

    c = client.Client("http://h:1/v1", TEST_KEY, retries=0, transport=httpx.MockTransport(handler))
    with c, pytest.raises(LlmostError) as info:
        list(c.chat({"stream": True}))
    assert TEST_KEY not in str(info.value) and info.value.__cause__ is None


# --- the server repeats the key -------------------------------------------------------------


def test_key_echoed_by_the_server_is_redacted_everywhere(server: fs.FakeServer) -> None:
    lines: list[str] = []
    echo = f"invalid key {TEST_KEY}"
    server.add(fs.error(503, echo, headers={"X-Echo": TEST_KEY}), fs.error(401, echo))
    c = client.Client(server.base_url, TEST_KEY, log=logged(lines), sleep=lambda s: None)
    with c, pytest.raises(APIError) as info:
        list(c.chat({"stream": True, "note": TEST_KEY}))
    exc = info.value
    assert exc.status == 401 and str(exc).startswith("HTTP 401: invalid key ***")
    assert TEST_KEY not in str(exc) and TEST_KEY not in exc.detail
    assert lines and not [line for line in lines if TEST_KEY in line]
    assert "> authorization: Bearer ***" in lines
    assert server.chat_requests()[0].headers["authorization"] == f"Bearer {TEST_KEY}"


def test_redirect_location_is_redacted_and_not_followed(server: fs.FakeServer) -> None:
    server.add(fs.redirect(f"https://evil.test/steal?k={TEST_KEY}"))
    with client.Client(server.base_url, TEST_KEY) as c, pytest.raises(APIError) as info:
        list(c.chat({"stream": True}))
    assert "not followed" in str(info.value) and TEST_KEY not in str(info.value)
    assert len(server.requests) == 1


# --- proxies --------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_plain_http_never_goes_through_a_proxy(
    server: fs.FakeServer, proxy: fs.RecordingProxy, host: str
) -> None:
    server.add(fs.stream_text("direct"))
    lines: list[str] = []
    base = server.base_url.replace("127.0.0.1", host)
    with client.Client(base, TEST_KEY, log=logged(lines)) as c:
        assert list(c.chat({"stream": True}))
    assert proxy.received() == b"" and proxy.connections == []
    assert not [line for line in lines if "proxy" in line]


def test_https_goes_through_the_proxy_as_a_tunnel_only(
    proxy: fs.RecordingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTPS_PROXY", "https_proxy"):  # the lower-case one wins
        monkeypatch.setenv(name, proxy.url.replace("://", "://someone:proxysecret@"))
    lines: list[str] = []
    c = client.Client(
        "https://llmost.test/api/v1", TEST_KEY, retries=0, timeout=5, log=logged(lines)
    )
    with c, pytest.raises(NetworkError) as info:
        list(c.chat({"stream": True}))
    seen = proxy.received()
    assert seen.startswith(b"CONNECT llmost.test:443 HTTP/1.1\r\n")
    assert TEST_KEY.encode() not in seen and b"\nauthorization:" not in seen.lower()
    assert b"proxy-authorization: basic" in seen.lower()  # the proxy's own credentials
    assert info.value.exit_code == 8 and "proxy" in str(info.value)
    assert f"{proxy.host}:{proxy.port}" in "\n".join(lines)
    assert not [line for line in lines if "proxysecret" in line or TEST_KEY in line]


def test_no_proxy_is_honoured(proxy: fs.RecordingProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "llmost.test")
    assert transport.env_proxy(httpx.URL("https://llmost.test/api/v1")) is None
    assert transport.env_proxy(httpx.URL("https://other.test/")) is not None


def test_socks_proxy_without_socksio(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ALL_PROXY", "socks5://user:s3cret@127.0.0.2:1080")
    try:
        import socksio  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="socksio") as info:
            client.Client("https://llmost.test/api/v1", TEST_KEY)
        assert "s3cret" not in str(info.value)
    else:  # pragma: no cover - depends on the environment
        client.Client("https://llmost.test/api/v1", TEST_KEY).close()


def test_unsupported_proxy_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "ftp://user:s3cret@proxy.test:21")
    with pytest.raises(ConfigError, match="not an http, https, socks5") as info:
        client.Client("https://llmost.test/api/v1", TEST_KEY)
    assert "s3cret" not in str(info.value) and "***@proxy.test:21" in str(info.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://u:p@h:1/x", "http://***@h:1/x"),
        ("http://h:1", "http://h:1"),
        ("u:p@h:1", "***@h:1"),
        ("http://a@b@h/", "http://***@h/"),
    ],
)
def test_redact_userinfo(url: str, shown: str) -> None:
    assert transport.redact_userinfo(url) == shown


def test_debug_log_of_a_normal_request(server: fs.FakeServer) -> None:
    lines: list[str] = []
    server.add(fs.stream_text("hi"))
    with client.Client(server.base_url, TEST_KEY, log=logged(lines)) as c:
        list(c.chat({"stream": True, "messages": [{"role": "user", "content": "x"}]}))
    text = "\n".join(lines)
    assert "> POST" in text and "< 200 OK" in text and "Bearer ***" in text
    assert TEST_KEY not in text
    body = next(line for line in lines if line.startswith("> {"))
    assert json.loads(body[2:])["stream"] is True


def test_debug_log_escapes_the_servers_control_characters(server: fs.FakeServer) -> None:
    lines: list[str] = []
    server.add(fs.raw_response(400, b"bad \x1b]0;pwned\x07 request\r\n", content_type="text/plain"))
    c = client.Client(server.base_url, TEST_KEY, log=logged(lines))
    with c, pytest.raises(APIError):
        list(c.chat({"stream": True}))
    body_line = next(line for line in lines if "pwned" in line)
    assert "\x1b" not in body_line and "\\x1b]0;pwned\\x07" in body_line
