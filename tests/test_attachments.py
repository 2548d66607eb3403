"""``-f``: files, directories, stdin, PDFs and images attached to the message (URLs: see
``test_attachments_url.py``). Unit tests of ``core/attachments.py``, then the installed
``llmost`` against the fake server."""

from __future__ import annotations

import base64
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from llmost_cli.core import attachments as att
from llmost_cli.errors import UsageError
from tests import fakeserver as fs
from tests.conftest import Runner

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
MIB = 1024 * 1024


def make_pdf(pages: list[str | None]) -> bytes:
    """A minimal PDF, one page per item showing its text (None: a page without any text)."""
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(len(pages)))
    objs.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    objs.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for i, text in enumerate(pages):
        content = b"" if text is None else f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        objs.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>".encode()
        )
        objs.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


def user_content(server: fs.FakeServer) -> Any:
    requests = server.chat_requests()
    assert requests, "no chat request was sent"
    return requests[-1].json["messages"][-1]["content"]


def block(label: str, text: str, fence: str = "```") -> str:
    return f"{label}\n{fence}\n{text}{fence}"


# --- unit: layout, fences, encodings --------------------------------------------------------


def test_fence_is_longer_than_any_backtick_run_inside() -> None:
    text = "a\n```\nnot the end\n``````\n`inline`\n"
    rendered = att.fenced("x.md", text)
    assert rendered == "x.md\n```````\n" + text + "```````"
    # the content cannot close the block: the only line of 7+ backticks are the fences
    assert [line for line in rendered.splitlines() if re.fullmatch(r"`{7,}", line)] == ["`" * 7] * 2


def test_fence_of_plain_text_and_missing_final_newline() -> None:
    assert att.fenced("a.txt", "no newline") == "a.txt\n```\nno newline\n```"
    assert att.fenced("empty", "") == "empty\n```\n```"


def test_label_with_control_characters_stays_one_line() -> None:
    assert att.fenced("evil\nname\x1b[31m", "x\n").splitlines()[0] == "evil\\x0aname\\x1b[31m"


def test_message_layout_prompt_blocks_then_stdin() -> None:
    ctx = att.Context([att.Block("a", "1\n"), att.Block("b", "2\n")])
    assert att.compose_text("q", ctx, "in") == "q\n\na\n```\n1\n```\n\nb\n```\n2\n```\n\nin"
    assert att.compose_text("", ctx, None) == "a\n```\n1\n```\n\nb\n```\n2\n```"
    assert att.compose_text("q", None, "in") == "q\n\nin"


@pytest.mark.parametrize(
    ("raw", "text", "encoding"),
    [
        ("héllo ✓".encode(), "héllo ✓", None),
        (b"\xef\xbb\xbfbom utf-8", "bom utf-8", None),
        ("utf-16 ✓".encode("utf-16"), "utf-16 ✓", "utf-16"),
        ("le no bom".encode("utf-16-le"), "le no bom", "utf-16-le"),
        ("be no bom".encode("utf-16-be"), "be no bom", "utf-16-be"),
        ("caf\xe9 \u201cquoted\u201d".encode("cp1252"), "caf\xe9 \u201cquoted\u201d", "cp1252"),
        (b"undefined in cp1252: \x81", "undefined in cp1252: \x81", "latin-1"),
    ],
)
def test_decoding_falls_back_with_a_warning_naming_the_file(
    raw: bytes, text: str, encoding: str | None
) -> None:
    warnings: list[str] = []
    assert att.decode(raw, "notes.txt", warnings.append) == text
    if encoding is None:
        assert warnings == []
    else:
        assert warnings == [f"notes.txt is not UTF-8; read it as {encoding}"]


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"%PDF-1.7\n", "pdf"),
        (PNG, "image"),
        (b"GIF89a....", "image"),
        (b"RIFF\0\0\0\0WEBPVP8 ", "image"),
        (b"ELF\0\0\x01binary", "binary"),
        ("utf-16 text".encode("utf-16"), "text"),
        (b"plain text\n", "text"),
    ],
)
def test_kind_from_the_first_bytes(head: bytes, kind: str) -> None:
    assert att.sniff(head) == kind


def test_limits_are_in_the_help_text() -> None:
    assert att.LIMITS_HELP == (
        "Limits: 2 MiB per text file, 8 MiB of text in all, 200 files per directory, "
        "20 MiB per URL, 50 MiB per PDF, 20 MiB per image."
    )


def test_small_limits_are_checked_before_reading(tmp_path: Path) -> None:
    """With the total limit counted from stat sizes, nothing is opened past the planning."""
    for i in range(3):
        (tmp_path / f"{i}.txt").write_text("x" * 40)
    limits = att.Limits(total_bytes=100)
    with pytest.raises(UsageError, match="would exceed 100 bytes"):
        att.load([str(tmp_path)], stdin=None, fetch=None, warn=print, limits=limits)
    assert att.load([str(tmp_path / "0.txt")], stdin=None, fetch=None, warn=print, limits=limits)


def test_used_budget_counts_what_is_already_attached(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x" * 60)
    limits = att.Limits(total_bytes=100)
    with pytest.raises(UsageError, match="would exceed"):
        att.load(
            [str(tmp_path / "a.txt")], stdin=None, fetch=None, warn=print, used=50, limits=limits
        )


def test_unit_errors_and_notes(tmp_path: Path) -> None:
    import io

    notes: list[str] = []
    small = att.Limits(file_bytes=10, total_bytes=20)
    with pytest.raises(UsageError, match="larger than 10 bytes, the limit for one text file"):
        att.load(["-"], stdin=io.BytesIO(b"x" * 11), fetch=None, warn=print, limits=small)
    with pytest.raises(UsageError, match="-f needs a path"):
        att.load([""], stdin=None, fetch=None, warn=print)
    with pytest.raises(UsageError, match="URLs cannot be fetched here"):
        att.load(["https://x.test/"], stdin=None, fetch=None, warn=print)
    (tmp_path / "empty").mkdir()
    assert not att.load([str(tmp_path / "empty")], stdin=None, fetch=None, warn=notes.append)
    assert notes == [f"{tmp_path}/empty: no text files to attach"]
    with pytest.raises(UsageError, match="would exceed 5 bytes"):
        att.pdf_text(make_pdf(["longer than five bytes"]), "p.pdf", 5)


def test_invalid_utf16_is_replaced_with_a_warning() -> None:
    warnings: list[str] = []
    raw = "ok".encode("utf-16") + b"\x00\xd8"  # a lone surrogate
    assert att.decode(raw, "u.txt", warnings.append) == "ok\ufffd"
    assert warnings == ["u.txt is not valid utf-16; invalid bytes were replaced with U+FFFD"]


# --- end to end: files ----------------------------------------------------------------------


def test_text_file_goes_after_the_prompt_and_before_stdin(
    llmost: Runner, server: fs.FakeServer, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.md"
    notes.write_text("# Notes\nuse ``` fences\n")
    r = llmost("ask", "-f", str(notes), "summarize", input="STDIN TEXT")
    assert (r.rc, r.stderr) == (0, "")
    assert user_content(server) == (
        "summarize\n\n" + block(str(notes), "# Notes\nuse ``` fences\n", "````") + "\n\nSTDIN TEXT"
    )


def test_files_keep_their_order_and_one_file_is_attached_once(
    llmost: Runner, server: fs.FakeServer, tmp_path: Path
) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("A\n")
    b.write_text("B\n")
    r = llmost("ask", "-f", str(b), "-f", str(a), "--file", str(b), "q")
    assert r.rc == 0
    assert user_content(server) == "q\n\n" + block(str(b), "B\n") + "\n\n" + block(str(a), "A\n")


def test_non_utf8_file_is_decoded_with_a_warning(
    llmost: Runner, server: fs.FakeServer, tmp_path: Path
) -> None:
    legacy = tmp_path / "legacy.txt"
    legacy.write_bytes("naïve café\n".encode("cp1252"))
    r = llmost("ask", "-f", str(legacy), "q")
    assert r.rc == 0
    assert f"warning: {legacy} is not UTF-8; read it as cp1252" in r.stderr
    assert "naïve café" in user_content(server)


def test_stdin_as_dash_is_a_block_and_not_added_again(
    llmost: Runner, server: fs.FakeServer, tmp_path: Path
) -> None:
    a = tmp_path / "a.txt"
    a.write_text("A\n")
    r = llmost("ask", "-f", "-", "-f", str(a), "compare", input="from stdin\n")
    assert r.rc == 0
    assert user_content(server) == (
        "compare\n\n" + block("standard input", "from stdin\n") + "\n\n" + block(str(a), "A\n")
    )


@pytest.mark.parametrize("extra", [["--no-stdin"], ["-f", "-"]])
def test_stdin_dash_errors(llmost: Runner, server: fs.FakeServer, extra: list[str]) -> None:
    r = llmost("ask", "-f", "-", *extra, "q", input="x")
    assert r.rc == 2
    assert "standard input" in r.stderr
    assert server.chat_requests() == []


def test_pdf_file_is_reduced_to_its_text(
    llmost: Runner, server: fs.FakeServer, tmp_path: Path
) -> None:
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(make_pdf(["Quarterly results", "Second page text"]))
    r = llmost("ask", "-f", str(pdf), "summarize")
    assert r.rc == 0
    assert user_content(server) == "summarize\n\n" + block(
        f"{pdf} (text of the PDF)", "[page 1]\nQuarterly results\n\n[page 2]\nSecond page text\n"
    )


def test_image_only_pdf_is_a_usage_error(
    llmost: Runner, server: fs.FakeServer, tmp_path: Path
) -> None:
    pdf = tmp_path / "scan.pdf"
    pdf.write_bytes(make_pdf([None, None]))
    r = llmost("ask", "-f", str(pdf), "q")
    assert r.rc == 2
    assert f"{pdf} has no text to extract" in r.stderr
    assert server.chat_requests() == []


def test_damaged_pdf_is_a_usage_error(
    llmost: Runner, server: fs.FakeServer, tmp_path: Path
) -> None:
    pdf = tmp_path / "broken.pdf"
    pdf.write_bytes(b"%PDF-1.4\nnot really a pdf")
    r = llmost("ask", "-f", str(pdf), "q")
    assert r.rc == 2 and "is not a readable PDF" in r.stderr
    assert "Traceback" not in r.stderr


def test_image_file_is_an_image_part_like_dash_i(
    llmost: Runner, server: fs.FakeServer, tmp_path: Path
) -> None:
    png = tmp_path / "shot.png"
    png.write_bytes(PNG)
    assert llmost("ask", "-f", str(png), "what is this").rc == 0
    via_f = user_content(server)
    assert llmost("ask", "-i", str(png), "what is this").rc == 0
    assert via_f == user_content(server)
    assert via_f[1]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(PNG).decode()


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("prog.bin", b"\x7fELF\x00\x01\x02", "looks like a binary file"),
        ("missing.txt", None, "no such file or directory"),
    ],
)
def test_unusable_files_are_usage_errors(
    llmost: Runner,
    server: fs.FakeServer,
    tmp_path: Path,
    name: str,
    data: bytes | None,
    message: str,
) -> None:
    path = tmp_path / name
    if data is not None:
        path.write_bytes(data)
    r = llmost("ask", "-f", str(path), "q")
    assert (r.rc, server.chat_requests()) == (2, [])
    assert message in r.stderr


# --- end to end: directories ----------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A git work tree: nested .gitignore files with a negation, .git/, binary files, a FIFO."""
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    (root / ".git" / "config").write_text("[core]\n")
    (root / ".gitignore").write_text("*.log\n!keep.log\nbuild/\n")
    (root / "build").mkdir()
    (root / "build" / "out.txt").write_text("built\n")
    (root / "README.md").write_text("# Project\n")
    (root / "debug.log").write_text("noise\n")
    (root / "keep.log").write_text("kept\n")
    src = root / "src"
    src.mkdir()
    (src / ".gitignore").write_text("*.tmp\n")
    (src / "app.py").write_text("print('app')\n")
    (src / "scratch.tmp").write_text("scratch\n")
    (src / "logo.png").write_bytes(PNG)
    (src / "data.bin").write_bytes(b"abc\x00def")
    (src / "sub").mkdir()
    (src / "sub" / "util.py").write_text("X = 1\n")
    os.mkfifo(src / "pipe")
    return root


def test_directory_walk_skips_ignored_binary_and_special_files(
    llmost: Runner, server: fs.FakeServer, project: Path
) -> None:
    r = llmost("ask", "-f", str(project), "review")
    assert r.rc == 0, r
    assert user_content(server) == "review\n\n" + "\n\n".join(
        [
            block(f"{project}/.gitignore", "*.log\n!keep.log\nbuild/\n"),
            block(f"{project}/README.md", "# Project\n"),
            block(f"{project}/keep.log", "kept\n"),
            block(f"{project}/src/.gitignore", "*.tmp\n"),
            block(f"{project}/src/app.py", "print('app')\n"),
            block(f"{project}/src/sub/util.py", "X = 1\n"),
        ]
    )
    note = f"{project}: attached 6 files; skipped 2 binary, 3 git-ignored, 1 not regular"
    assert note in r.stderr


def test_subdirectory_honours_the_work_tree_gitignore_above_it(
    llmost: Runner, server: fs.FakeServer, project: Path
) -> None:
    (project / "src" / "trace.log").write_text("ignored by the top .gitignore\n")
    r = llmost("ask", "-f", str(project / "src"), "q")
    assert r.rc == 0
    content = user_content(server)
    assert "trace.log" not in content and "scratch" not in content
    assert f"{project}/src/app.py" in content


def test_links_out_of_the_directory_are_not_followed(
    llmost: Runner, server: fs.FakeServer, tmp_path: Path
) -> None:
    secret = tmp_path / "id_rsa"
    secret.write_text("PRIVATE KEY\n")
    repo = tmp_path / "cloned"
    repo.mkdir()
    (repo / "a.txt").write_text("A\n")
    (repo / "key").symlink_to(secret)
    (repo / "alias.txt").symlink_to(repo / "a.txt")  # inside: followed, and attached once
    (repo / "loop").symlink_to(repo / "loop")
    r = llmost("ask", "-f", str(repo), "q")
    assert r.rc == 0, r
    assert "PRIVATE KEY" not in user_content(server)
    assert user_content(server) == "q\n\n" + block(f"{repo}/a.txt", "A\n")
    assert "skipped 2 links out of the directory" in r.stderr


def test_directory_file_over_the_limit_is_skipped_with_a_note(
    llmost: Runner, server: fs.FakeServer, tmp_path: Path
) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "small.txt").write_text("small\n")
    (tmp_path / "d" / "huge.txt").write_bytes(b"x" * (2 * MIB + 1))
    r = llmost("ask", "-f", str(tmp_path / "d"), "q")
    assert r.rc == 0
    assert "skipped 1 over 2 MiB" in r.stderr
    assert "huge.txt" not in user_content(server)


def test_too_many_files_in_a_directory(
    llmost: Runner, server: fs.FakeServer, tmp_path: Path
) -> None:
    d = tmp_path / "many"
    d.mkdir()
    for i in range(201):
        (d / f"{i:03}.txt").write_text("x\n")
    r = llmost("ask", "-f", str(d), "q")
    assert (r.rc, server.chat_requests()) == (2, [])
    assert "more than 200 text files" in r.stderr


# --- end to end: limits, checked before reading and before sending ---------------------------


def test_text_file_over_2_mib(llmost: Runner, server: fs.FakeServer, tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * (2 * MIB + 1))
    r = llmost("ask", "-f", str(big), "q")
    assert (r.rc, server.chat_requests()) == (2, [])
    assert "is larger than 2 MiB, the limit for one text file" in r.stderr


def test_total_text_over_8_mib(llmost: Runner, server: fs.FakeServer, tmp_path: Path) -> None:
    files = []
    for i in range(5):
        path = tmp_path / f"part{i}.txt"
        path.write_bytes(b"y" * (2 * MIB - 100))
        files += ["-f", str(path)]
    r = llmost("ask", *files, "q")
    assert (r.rc, server.chat_requests()) == (2, [])
    assert "would exceed 8 MiB, the limit for one message" in r.stderr


def test_pdf_over_50_mib_is_refused_by_its_size(
    llmost: Runner, server: fs.FakeServer, tmp_path: Path
) -> None:
    pdf = tmp_path / "huge.pdf"
    with pdf.open("wb") as fh:
        fh.write(make_pdf(["x"]))
        fh.truncate(50 * MIB + 1)  # sparse: the size is what is checked, before reading
    r = llmost("ask", "-f", str(pdf), "q")
    assert (r.rc, server.chat_requests()) == (2, [])
    assert "larger than 50 MiB, the limit for one PDF" in r.stderr


def test_image_over_20_mib(llmost: Runner, server: fs.FakeServer, tmp_path: Path) -> None:
    png = tmp_path / "huge.png"
    with png.open("wb") as fh:
        fh.write(PNG)
        fh.truncate(20 * MIB + 1)
    r = llmost("ask", "-f", str(png), "q")
    assert (r.rc, server.chat_requests()) == (2, [])
    assert "the limit for one image" in r.stderr


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_device_is_read_with_a_bounded_read(llmost: Runner, server: fs.FakeServer) -> None:
    """``stat`` says 0 bytes for /dev/zero: the bounded read is what stops it."""
    r = llmost("ask", "-f", "/dev/zero", "q", timeout=30)
    assert (r.rc, server.chat_requests()) == (2, [])
    assert "binary" in r.stderr or "larger than" in r.stderr


def test_fifo_given_by_name_is_read(llmost: Runner, server: fs.FakeServer, tmp_path: Path) -> None:
    """``-f <(cmd)`` hands a pipe: read, within the limit."""
    import threading

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with fifo.open("wb") as fh:
            fh.write(b"piped text\n")

    writer = threading.Thread(target=feed)
    writer.start()
    r = llmost("ask", "-f", str(fifo), "q")
    writer.join(5)
    assert r.rc == 0
    assert user_content(server) == "q\n\n" + block(str(fifo), "piped text\n")


# --- dry run, help, chat --------------------------------------------------------------------


def test_dry_run_body_is_the_body_that_is_sent(
    llmost: Runner, server: fs.FakeServer, project: Path, tmp_path: Path
) -> None:
    pdf, png = tmp_path / "r.pdf", tmp_path / "i.png"
    pdf.write_bytes(make_pdf(["pdf words"]))
    png.write_bytes(PNG)
    args = ["ask", "-f", str(project), "-f", str(pdf), "-f", "-", "-f", str(png), "look"]
    dry = llmost(*args, "--dry-run", input="stdin words")
    assert dry.rc == 0
    assert server.chat_requests() == []
    assert llmost(*args, input="stdin words").rc == 0
    assert json.loads(dry.stdout) == server.chat_requests()[-1].json


def test_help_documents_the_order_and_the_limits(llmost: Runner) -> None:
    r = llmost("ask", "--help")
    text = " ".join(r.stdout.split())
    assert "It goes after the prompt and before stdin" in text
    assert att.LIMITS_HELP in text
    assert "-f, --file PATH_OR_URL" in text


def test_chat_attaches_files_to_the_first_message_only(
    llmost: Runner, server: fs.FakeServer, tmp_path: Path
) -> None:
    a = tmp_path / "a.txt"
    a.write_text("A\n")
    r = llmost("chat", "-f", str(a), input="first\nsecond\n")
    assert r.rc == 0, r
    first, second = (req.json["messages"] for req in server.chat_requests())
    assert first[-1]["content"] == "first\n\n" + block(str(a), "A\n")
    assert second[-1]["content"] == "second"


def test_chat_file_command_attaches_to_the_next_message(
    llmost: Runner, server: fs.FakeServer, tmp_path: Path
) -> None:
    a, png = tmp_path / "a.txt", tmp_path / "p.png"
    a.write_text("A\n")
    png.write_bytes(PNG)
    r = llmost("chat", input=f"/file {a}\n/file {png}\nlook\nagain\n")
    assert r.rc == 0, r
    assert "attached to your next message: 1 text(s), 2 bytes, 1 image(s)" in r.stderr
    first, second = (req.json["messages"][-1]["content"] for req in server.chat_requests())
    assert first[0] == {"type": "text", "text": "look\n\n" + block(str(a), "A\n")}
    assert first[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert second == "again"


def test_chat_file_error_attaches_nothing_and_the_chat_goes_on(
    llmost: Runner, server: fs.FakeServer, tmp_path: Path
) -> None:
    r = llmost("chat", input=f"/file {tmp_path}/nope\n/file\nhello\n")
    assert r.rc == 2  # line mode: the first failure is the exit code
    assert f"-f {tmp_path}/nope: no such file or directory" in r.stderr
    assert "usage: /file PATH_OR_URL" in r.stderr
    assert user_content(server) == "hello"


def test_chat_clear_drops_what_was_attached(
    llmost: Runner, server: fs.FakeServer, tmp_path: Path
) -> None:
    a = tmp_path / "a.txt"
    a.write_text("A\n")
    r = llmost("chat", input=f"/file {a}\n/clear\nhello\n")
    assert r.rc == 0, r
    assert user_content(server) == "hello"


def test_chat_rejects_stdin_dash(llmost: Runner, server: fs.FakeServer) -> None:
    r = llmost("chat", "-f", "-", input="hi\n")
    assert (r.rc, server.chat_requests()) == (2, [])


def test_help_lists_the_new_chat_commands() -> None:
    from llmost_cli.core.chat_commands import COMMANDS

    names = list(COMMANDS)
    assert names[-2:] == ["/file", "/template"]
    assert names[0] == "/help"


if sys.platform == "win32":  # pragma: no cover
    pytest.skip("FIFOs and /dev/zero are POSIX", allow_module_level=True)
