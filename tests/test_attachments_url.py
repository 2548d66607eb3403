"""``-f http(s)://...``: fetched from a real local HTTP server (the fake server's other paths),
without the API key, with bounded redirects and a bounded body."""

from __future__ import annotations

import base64
import gzip
import json
import socket
from pathlib import Path

import pytest

from llmost_cli.core import attachments as att
from tests import fakeserver as fs
from tests.conftest import TEST_KEY, Runner
from tests.test_attachments import PNG, block, make_pdf, user_content

DATA = Path(__file__).parent / "data" / "context"
MIB = 1024 * 1024


def fetched(server: fs.FakeServer, path: str) -> list[fs.Recorded]:
    return [r for r in server.requests if r.path == path]


def test_html_page_is_reduced_to_readable_text(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(fs.raw_response(200, (DATA / "page.html").read_bytes()), path="/doc/page.html")
    url = server.url + "/doc/page.html"
    r = llmost("ask", "-f", url, "summarize")
    assert (r.rc, r.stderr) == (0, "")
    text = user_content(server)
    assert text.startswith(f"summarize\n\n{url}\n```\n# Configuring llmost\n\n")
    assert "## Profiles" in text
    assert "Settings live in `config.toml`" in text
    assert "- `base_url`: where requests go" in text
    assert "[the design notes](https://example.test/design)" in text
    for noise in ("alert(", "SCRIPT_SECRET", "color: red", "Home", "Pricing", "Cookie", "©"):
        assert noise not in text, noise


def test_no_api_key_goes_to_the_fetched_host(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(fs.raw_response(200, b"plain", content_type="text/plain"), path="/t.txt")
    assert llmost("ask", "-f", server.url + "/t.txt", "q").rc == 0
    (get,) = fetched(server, "/t.txt")
    assert "authorization" not in {k.lower() for k in get.headers}
    assert all(TEST_KEY not in v for v in get.headers.values())
    assert get.headers["user-agent"].startswith("llmost/")
    # while the API itself did get the key
    assert server.chat_requests()[-1].headers["authorization"] == f"Bearer {TEST_KEY}"


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("text/plain; charset=utf-8", "plain ✓ text\n".encode(), "plain ✓ text\n"),
        ("text/markdown", b"# Title\n\n- item\n", "# Title\n\n- item\n"),
        ("application/json", b'{"a": [1, 2]}', '{"a": [1, 2]}\n'),
        ("text/plain; charset=iso-8859-1", "café".encode("latin-1"), "café\n"),
        (None, b"no content type\n", "no content type\n"),
    ],
)
def test_text_bodies_are_kept_as_text(
    llmost: Runner,
    server: fs.FakeServer,
    content_type: str | None,
    body: bytes,
    expected: str,
) -> None:
    server.add(fs.raw_response(200, body, content_type=content_type), path="/x")
    url = server.url + "/x"
    r = llmost("ask", "-f", url, "q")
    assert (r.rc, r.stderr) == (0, "")
    assert user_content(server) == "q\n\n" + block(url, expected)


def test_pdf_url_is_handled_as_a_pdf(llmost: Runner, server: fs.FakeServer) -> None:
    pdf = make_pdf(["Fetched PDF text"])
    server.add(fs.raw_response(200, pdf, content_type="application/pdf"), path="/r.pdf")
    url = server.url + "/r.pdf"
    assert llmost("ask", "-f", url, "q").rc == 0
    assert user_content(server) == "q\n\n" + block(
        f"{url} (text of the PDF)", "[page 1]\nFetched PDF text\n"
    )


def test_image_url_becomes_an_image_part(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(fs.raw_response(200, PNG, content_type="image/png"), path="/i.png")
    assert llmost("ask", "-f", server.url + "/i.png", "q").rc == 0
    content = user_content(server)
    assert (
        content[1]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(PNG).decode()
    )


def test_redirects_are_followed(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(fs.redirect("/b", 302), path="/a")
    server.add(fs.redirect(server.url + "/c", 301), path="/b")
    server.add(fs.raw_response(200, b"arrived", content_type="text/plain"), path="/c")
    r = llmost("ask", "-f", server.url + "/a", "q")
    assert r.rc == 0
    assert "arrived" in user_content(server)


def test_redirect_to_another_scheme_is_refused(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(fs.redirect("file:///etc/passwd"), path="/a")
    r = llmost("ask", "-f", server.url + "/a", "q")
    assert (r.rc, server.chat_requests()) == (7, [])
    assert "redirected to a file: URL; only http(s) is followed" in r.stderr


def test_redirect_loop_stops_after_five(llmost: Runner, server: fs.FakeServer) -> None:
    server.set_default(fs.redirect("/loop"), path="/loop")
    r = llmost("ask", "-f", server.url + "/loop", "q")
    assert (r.rc, server.chat_requests()) == (7, [])
    assert "more than 5 redirects" in r.stderr
    assert len(fetched(server, "/loop")) == 6


def test_http_error_is_exit_7(llmost: Runner, server: fs.FakeServer) -> None:
    r = llmost("ask", "-f", server.url + "/missing", "q")
    assert (r.rc, server.chat_requests()) == (7, [])
    assert f"-f {server.url}/missing: HTTP 404" in r.stderr


def test_network_failure_is_exit_8(llmost: Runner, server: fs.FakeServer) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    r = llmost("ask", "-f", f"http://127.0.0.1:{port}/x", "q")
    assert (r.rc, server.chat_requests()) == (8, [])
    assert "cannot fetch it from 127.0.0.1" in r.stderr


def test_body_over_20_mib_by_its_length(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(fs.raw_response(200, b"x" * (20 * MIB + 1), content_type="text/plain"), path="/b")
    r = llmost("ask", "-f", server.url + "/b", "q")
    assert (r.rc, server.chat_requests()) == (2, [])
    assert "larger than 20 MiB, the limit for one URL" in r.stderr


def test_body_over_20_mib_without_a_length(llmost: Runner, server: fs.FakeServer) -> None:
    piece = fs.raw(b"y" * MIB)
    server.add(fs.stream(*[piece] * 21, content_type="text/plain"), path="/chunked")
    r = llmost("ask", "-f", server.url + "/chunked", "q")
    assert (r.rc, server.chat_requests()) == (2, [])
    assert "the limit for one URL" in r.stderr


def test_compressed_body_is_limited_after_decompression(
    llmost: Runner, server: fs.FakeServer
) -> None:
    bomb = gzip.compress(b"\0" * (21 * MIB))  # about 20 KiB on the wire
    headers = {"Content-Encoding": "gzip"}
    server.add(fs.raw_response(200, bomb, content_type="text/plain", headers=headers), path="/z")
    r = llmost("ask", "-f", server.url + "/z", "q")
    assert (r.rc, server.chat_requests()) == (2, [])
    assert "the limit for one URL" in r.stderr


def test_fetched_text_counts_towards_the_total(
    llmost: Runner, server: fs.FakeServer, tmp_path: Path
) -> None:
    local = tmp_path / "local.txt"
    local.write_bytes(b"l" * (2 * MIB - 10))
    server.add(fs.raw_response(200, b"u" * (7 * MIB), content_type="text/plain"), path="/u")
    r = llmost("ask", "-f", str(local), "-f", server.url + "/u", "q")
    assert (r.rc, server.chat_requests()) == (2, [])
    assert "would exceed 8 MiB" in r.stderr


def test_binary_content_is_refused(llmost: Runner, server: fs.FakeServer) -> None:
    body = b"PK\x03\x04\x00\x00binary"
    server.add(fs.raw_response(200, body, content_type="application/zip"), path="/a.zip")
    r = llmost("ask", "-f", server.url + "/a.zip", "q")
    assert (r.rc, server.chat_requests()) == (2, [])
    assert "cannot attach content of type application/zip" in r.stderr


def test_invalid_url_is_a_usage_error(llmost: Runner, server: fs.FakeServer) -> None:
    r = llmost("ask", "-f", "http://host:notaport/", "q")
    assert (r.rc, server.chat_requests()) == (2, [])
    assert "not a valid URL (Invalid port: 'notaport')" in r.stderr


def test_dry_run_fetches_and_shows_the_body_that_is_sent(
    llmost: Runner, server: fs.FakeServer
) -> None:
    page = (DATA / "page.html").read_bytes()
    server.set_default(fs.raw_response(200, page), path="/page")
    args = ["ask", "-f", server.url + "/page", "summarize"]
    dry = llmost(*args, "--dry-run")
    assert dry.rc == 0
    assert server.chat_requests() == []
    assert llmost(*args).rc == 0
    assert json.loads(dry.stdout) == server.chat_requests()[-1].json


def test_urls_are_fetched_after_every_local_check(
    llmost: Runner, server: fs.FakeServer, tmp_path: Path
) -> None:
    r = llmost("ask", "-f", server.url + "/never", "-f", str(tmp_path / "missing"), "q")
    assert r.rc == 2
    assert fetched(server, "/never") == []


def test_debug_shows_the_fetch(llmost: Runner, server: fs.FakeServer) -> None:
    server.add(fs.raw_response(200, b"t", content_type="text/plain"), path="/t")
    r = llmost("--debug", "ask", "-f", server.url + "/t", "q")
    assert r.rc == 0
    assert f"llmost: debug: > GET {server.url}/t" in r.stderr
    assert "llmost: debug: < 200" in r.stderr


def test_fetch_unit_content_types() -> None:
    """The decision table, without a server: what the body is, not only what it claims."""
    loader = att._Loader(att.LIMITS, print, print, 0)

    def attach(content_type: str, body: bytes) -> att.Context:
        return loader.fetch(
            "https://x.test/", lambda url, limit: att.Fetched(url, content_type, body)
        )

    html = attach("application/octet-stream", b"<!DOCTYPE html><title>T</title><p>para</p>")
    assert html.blocks[0].text == "# T\n\npara"
    assert attach("text/html", b"<p>x</p>").blocks[0].text == "x"
    assert attach("application/x-yaml", b"a: 1\n").blocks[0].text == "a: 1\n"
    assert attach("application/octet-stream", PNG).images
