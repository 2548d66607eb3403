"""Message assembly, images, stdin and reply accumulation."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from llmost_cli.core import inputs as cv
from llmost_cli.core import messages
from llmost_cli.core.events import ErrorEvent, Finish, ResponseMeta, TextDelta, ToolCallDelta, Usage
from llmost_cli.errors import UsageError

GIF = b"GIF89a" + b"\x00" * 10
WEBP = b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 8


@pytest.mark.parametrize(
    ("head", "mime"),
    [(b"\x89PNG\r\n\x1a\n....", "image/png"), (b"\xff\xd8\xff\xdb", "image/jpeg"),
     (GIF, "image/gif"), (WEBP, "image/webp"), (b"%PDF-1.4", None), (b"", None)],
)  # fmt: skip
def test_sniff(head: bytes, mime: str | None) -> None:
    assert cv.sniff_image_type(head) == mime


def test_image_url_file_and_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gif = tmp_path / "a.gif"
    gif.write_bytes(GIF)
    assert cv.image_url(str(gif)) == "data:image/gif;base64," + base64.b64encode(GIF).decode()
    assert cv.image_url("https://x/y.png") == "https://x/y.png"
    monkeypatch.setattr(cv, "MAX_IMAGE_BYTES", 8)
    with pytest.raises(UsageError, match=r"a.gif is 16 bytes; the limit is 8 bytes"):
        cv.image_url(str(gif))


def test_combine_prompt_keeps_text_exact() -> None:
    assert cv.combine_prompt(["a", " b "], None) == "a  b "
    assert cv.combine_prompt(["q"], "  x\n\n") == "q\n\n  x\n\n"
    assert cv.combine_prompt([], "only") == "only"
    assert cv.combine_prompt(["q"], "") == "q"


def test_decode_stdin() -> None:
    assert cv.decode_stdin("ё".encode()) == cv.StdinText("ё")
    assert cv.decode_stdin(b"\xff") == cv.StdinText("\ufffd", replaced=True)


def test_user_content_with_images() -> None:
    assert cv.user_content("t", []) == "t"
    assert cv.user_content("t", ["u"]) == [
        {"type": "text", "text": "t"},
        {"type": "image_url", "image_url": {"url": "u"}},
    ]


def test_reply_accumulates_prefill_text_and_tool_calls() -> None:
    r = messages.Reply(prefill="{")
    for ev in [
        ResponseMeta("g", "m"),
        TextDelta('"a"'),
        ToolCallDelta(1, "c2", "g", "{}"),
        ToolCallDelta(0, "c1", "f", '{"x"'),
        ToolCallDelta(0, None, None, ": 1}"),
        Finish("tool_calls"),
        Usage(1, 2, 3),
    ]:
        r.add(ev)
    assert r.text == '{"a"'
    assert [(c.id, c.name, c.arguments) for c in r.tool_calls] == [
        ("c1", "f", '{"x": 1}'),
        ("c2", "g", "{}"),
    ]
    assert r.tool_calls[0].parsed_arguments() == {"x": 1}
    assert not r.partial
    msg = r.to_message()
    assert msg.prefill and msg.finish_reason == "tool_calls" and msg.tool_calls


def test_reply_partial_on_error_or_no_finish() -> None:
    r = messages.Reply()
    r.add(TextDelta("half"))
    assert r.partial and r.to_message().partial
    r.add(ErrorEvent("x"))
    assert r.partial


def test_malformed_tool_arguments_are_kept() -> None:
    call = messages.ToolCall("c", "f", '{"broken"')
    assert call.parsed_arguments() is None
    assert call.to_api()["function"]["arguments"] == '{"broken"'
