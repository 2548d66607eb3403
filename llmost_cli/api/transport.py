"""The httpx transport: httpcore's connection pool over sockets whose every wait is bounded by
the request's deadline, and the proxy rule.

``--timeout`` must bound the wait for a response however the server dribbles it, but a socket
timeout bounds one ``recv`` only. So each request carries :class:`Budget` values as its httpcore
timeouts: floats that also hold the request's :class:`~llmost_cli.api.limits.Deadline`. The
network streams below cut every connect, read and write to the time the deadline has left, and
a name lookup (which ignores socket timeouts) is waited for in a helper thread.

Proxy rule (DESIGN.md §9, the key never travels in clear to a non-loopback host): a plain
``http://`` base URL (the settings allow it for loopback only) never goes through a proxy; an
``https://`` one may, as a CONNECT tunnel (or SOCKS), so the proxy only ever sees TLS.
"""

from __future__ import annotations

import contextlib
import ipaddress
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpcore
import httpx

from llmost_cli.api import chunked
from llmost_cli.api.limits import Deadline
from llmost_cli.errors import ConfigError

_WRITE_PIECE = 64 * 1024  # writes are cut so that each piece gets the time left

# A chunked body reaches httpx as one piece per network read, not one per HTTP chunk (token).
chunked.install()


class Budget(float):
    """A timeout value that also carries the deadline of its request."""

    deadline: Deadline

    def __new__(cls, seconds: float, deadline: Deadline) -> Budget:
        self = super().__new__(cls, seconds)
        self.deadline = deadline
        return self


def timeouts(deadline: Deadline, connect_cap: float) -> dict[str, float]:
    """The ``timeout`` request extension that makes the transport honour ``deadline``."""
    whole = Budget(deadline.seconds, deadline)
    return {
        "connect": Budget(min(deadline.seconds, connect_cap), deadline),
        "read": whole,
        "write": whole,
        "pool": whole,
    }


def _left(timeout: float | None) -> float | None:
    if isinstance(timeout, Budget):
        # Once the time is up, a millisecond still lets bytes that are already there be read.
        return max(min(float(timeout), timeout.deadline.remaining()), 0.001)
    return timeout


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        for start in range(0, len(buffer), _WRITE_PIECE):
            self._inner.write(buffer[start : start + _WRITE_PIECE], _left(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, _left(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


class _Backend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        limit = _left(timeout)

        def connect() -> httpcore.NetworkStream:
            return self._inner.connect_tcp(host, port, limit, local_address, socket_options)

        if limit is None or _is_ip(host):
            return _Stream(connect())
        return _Stream(_within(limit, connect, host))

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:  # pragma: no cover - llmost never uses a unix socket
        return _Stream(self._inner.connect_unix_socket(path, _left(timeout), socket_options))

    def sleep(self, seconds: float) -> None:  # pragma: no cover - httpcore's connect retries: 0
        self._inner.sleep(seconds)


def _within(
    seconds: float, connect: Callable[[], httpcore.NetworkStream], host: str
) -> httpcore.NetworkStream:
    """``connect()`` in a helper thread, given up after ``seconds``: the name lookup inside it
    does not obey socket timeouts. A connection that succeeds too late is closed."""
    lock = threading.Lock()
    done = threading.Event()
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["stream"] = connect()
        except BaseException as exc:  # handed to the waiting thread
            box["error"] = exc
        with lock:
            done.set()
            late = box.get("abandoned", False)
        if late and "stream" in box:
            with contextlib.suppress(Exception):
                box["stream"].close()

    threading.Thread(target=run, name="llmost-connect", daemon=True).start()
    done.wait(seconds)
    with lock:
        if not done.is_set():
            box["abandoned"] = True
            raise httpcore.ConnectTimeout(f"timed out looking up or connecting to {host}")
    if "error" in box:
        raise box["error"]
    stream: httpcore.NetworkStream = box["stream"]
    return stream


# httpcore's exceptions as httpx's, most specific first (what httpx's own transport does).
_EXCEPTIONS: tuple[tuple[type[Exception], type[httpx.HTTPError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextlib.contextmanager
def mapped() -> Iterator[None]:
    """httpcore's exceptions as httpx's (what the clients catch)."""
    try:
        yield
    except Exception as exc:
        for theirs, ours in _EXCEPTIONS:
            if isinstance(exc, theirs):
                raise ours(str(exc)) from exc
        raise


def core_request(request: httpx.Request) -> httpcore.Request:
    """The httpcore request for an httpx one (what httpx's own transports do)."""
    return httpcore.Request(
        method=request.method,
        url=httpcore.URL(
            scheme=request.url.raw_scheme,
            host=request.url.raw_host,
            port=request.url.port,
            target=request.url.raw_path,
        ),
        headers=request.headers.raw,
        content=request.stream,
        extensions=request.extensions,
    )


class _ResponseStream(httpx.SyncByteStream):
    def __init__(self, inner: Iterable[bytes]) -> None:
        self._inner = inner

    def __iter__(self) -> Iterator[bytes]:
        with mapped():
            yield from self._inner

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            with mapped():
                close()


Pool = httpcore.ConnectionPool | httpcore.HTTPProxy | httpcore.SOCKSProxy


class Transport(httpx.BaseTransport):
    """httpcore's pool (or proxy) on the deadline-bound network backend."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        req = core_request(request)
        with mapped():
            resp = self._pool.handle_request(req)
        assert isinstance(resp.stream, Iterable)
        return httpx.Response(
            status_code=resp.status,
            headers=resp.headers,
            stream=_ResponseStream(resp.stream),
            extensions=resp.extensions,
        )

    def close(self) -> None:
        with mapped():
            self._pool.close()


def env_proxy(url: httpx.URL) -> httpx.Proxy | None:
    """The proxy the environment (``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``...) names for
    ``url``; never one for plain http, which would carry the key in clear."""
    if url.scheme != "https":
        return None
    import urllib.request  # here: plain http never needs it, and it costs start-up time

    proxies = urllib.request.getproxies()
    spec = proxies.get("https") or proxies.get("all")
    if not spec or urllib.request.proxy_bypass(url.host):
        return None
    if "://" not in spec:
        spec = "http://" + spec
    try:
        return httpx.Proxy(spec)
    except (ValueError, httpx.InvalidURL):
        shown = redact_userinfo(spec)
        raise ConfigError(
            f"the proxy {shown} from the environment (HTTPS_PROXY or ALL_PROXY) is not an "
            "http, https, socks5 or socks5h URL"
        ) from None


def redact_userinfo(url: str) -> str:
    """``http://user:secret@host:3128`` -> ``http://***@host:3128``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    return f"{scheme}{sep}{authority}{slash}{path}"


def for_url(url: httpx.URL, *, log: Callable[[str], None] | None = None) -> Transport:
    """The transport for a client whose requests all go to ``url``'s origin."""
    backend = _Backend()
    ssl_context = httpx.create_ssl_context() if url.scheme == "https" else None
    common: dict[str, Any] = {
        "ssl_context": ssl_context,
        "max_connections": 100,
        "max_keepalive_connections": 20,
        "keepalive_expiry": 5.0,
        "network_backend": backend,
    }
    proxy = env_proxy(url)
    if proxy is None:
        return Transport(httpcore.ConnectionPool(**common))
    shown = redact_userinfo(str(proxy.url))
    proxy_url = httpcore.URL(
        scheme=proxy.url.raw_scheme,
        host=proxy.url.raw_host,
        port=proxy.url.port,
        target=proxy.url.raw_path,
    )
    if proxy.url.scheme in ("socks5", "socks5h"):
        import importlib.util

        if importlib.util.find_spec("socksio") is None:
            raise ConfigError(
                f"the proxy {shown} from the environment is a SOCKS proxy, which needs the "
                "socksio package (pip install 'httpx[socks]')"
            ) from None
        if log:
            log(f"* through the SOCKS proxy {shown}")
        return Transport(
            httpcore.SOCKSProxy(proxy_url=proxy_url, proxy_auth=proxy.raw_auth, **common)
        )
    if log:
        log(f"* through the proxy {shown} (CONNECT tunnel: the proxy sees only TLS)")
    return Transport(
        httpcore.HTTPProxy(
            proxy_url=proxy_url,
            proxy_auth=proxy.raw_auth,
            proxy_headers=proxy.headers.raw,
            **common,
        )
    )
