"""A real HTTP server that plays the LLMost wire protocol for end-to-end tests and benchmarks.

Standard library only. Replies are queued per path (FIFO) and played over a real socket, so the
client under test sees genuine HTTP/1.1 framing: chunked or close-delimited streams written
incrementally, keep-alive comments, mid-stream drops, hangs, redirects and error envelopes.

    with FakeServer() as srv:
        srv.add(stream_text("Привет!"), error(429, "slow down", retry_after=1))
        ...  # point the client at srv.base_url

Standalone (benchmarks, manual trials):  python -m tests.fakeserver --port 8765 --tokens 200
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import re
import selectors
import socket
import socketserver
import struct
import sys
import threading
import time
import zlib
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "DEFAULT_MODELS",
    "DEFAULT_USAGE",
    "FakeServer",
    "Recorded",
    "RecordingProxy",
    "Reply",
    "adaptive",
    "bomb",
    "chunk",
    "comment",
    "completion",
    "done",
    "drop",
    "error",
    "every",
    "hang",
    "hostile_model_list",
    "markdown_pieces",
    "midstream_error",
    "pause",
    "raw",
    "raw_http",
    "raw_response",
    "realistic_models",
    "redirect",
    "split_text",
    "stream",
    "stream_text",
    "stream_tool_calls",
    "trickle",
]

CHAT_PATH = "/api/v1/chat/completions"
MODELS_PATH = "/api/v1/models"

DEFAULT_USAGE: dict[str, Any] = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}

_COMMON = ["max_tokens", "temperature", "top_p", "stop", "seed"]
_TOOLS = ["tools", "tool_choice"]


def _model(
    id: str,
    name: str,
    created: int,
    description: str,
    context: int,
    inputs: list[str],
    tokenizer: str,
    pricing: dict[str, str],
    max_out: int | None,
    params: list[str],
    *,
    slug: str | None = None,
    moderated: bool = False,
    instruct_type: str | None = None,
    top_context: int | None = -1,
) -> dict[str, Any]:
    """An OpenRouter-shaped model object (§5.1)."""
    return {
        "id": id,
        "canonical_slug": slug or id,
        "name": name,
        "created": created,
        "description": description,
        "context_length": context,
        "architecture": {
            "modality": ("text+image" if "image" in inputs else "text") + "->text",
            "input_modalities": inputs,
            "output_modalities": ["text"],
            "tokenizer": tokenizer,
            "instruct_type": instruct_type,
        },
        "pricing": pricing,
        "top_provider": {
            "context_length": context if top_context == -1 else top_context,
            "max_completion_tokens": max_out,
            "is_moderated": moderated,
        },
        "per_request_limits": None,
        "supported_parameters": params,
    }


DEFAULT_MODELS: list[dict[str, Any]] = [
    _model(
        "openai/gpt-4o", "OpenAI: GPT-4o", 1715367049,
        "GPT-4o is OpenAI's flagship multimodal model, with text and image input.",
        128000, ["text", "image", "file"], "GPT",
        {"prompt": "0.0000025", "completion": "0.00001", "request": "0", "image": "0.003613",
         "web_search": "0", "internal_reasoning": "0", "input_cache_read": "0.00000125"},
        16384,
        [*_COMMON, *_TOOLS, "response_format", "structured_outputs", "frequency_penalty",
         "presence_penalty", "logit_bias", "logprobs", "top_logprobs"],
        moderated=True,
    ),
    _model(
        "anthropic/claude-3.5-sonnet", "Anthropic: Claude 3.5 Sonnet", 1729555200,
        "Claude 3.5 Sonnet: strong coding, data science and visual processing.",
        200000, ["text", "image", "file"], "Claude",
        {"prompt": "0.000003", "completion": "0.000015", "request": "0", "image": "0.0048",
         "input_cache_read": "0.0000003", "input_cache_write": "0.00000375"},
        8192, [*_COMMON, *_TOOLS, "top_k"], moderated=True,
    ),
    _model(
        "google/gemini-2.5-pro", "Google: Gemini 2.5 Pro", 1750169544,
        "Gemini 2.5 Pro is Google's state-of-the-art reasoning model.",
        1048576, ["text", "image", "file", "audio"], "Gemini",
        {"prompt": "0.00000125", "completion": "0.00001", "request": "0", "image": "0.00516",
         "internal_reasoning": "0"},
        65536,
        [*_COMMON, *_TOOLS, "reasoning", "include_reasoning", "response_format",
         "structured_outputs"],
    ),
    _model(
        "meta-llama/llama-3.1-8b-instruct:free", "Meta: Llama 3.1 8B Instruct (free)", 1721692800,
        "Meta's fast and efficient 8B instruct model.",
        131072, ["text"], "Llama3",
        {"prompt": "0", "completion": "0", "request": "0", "image": "0"},
        None, [*_COMMON, "top_k", "repetition_penalty", "min_p"],
        slug="meta-llama/llama-3.1-8b-instruct", instruct_type="llama3",
    ),
    _model(
        "openrouter/auto", "Auto Router", 1699401600,
        "Routes each prompt to the best model; the price depends on the model chosen.",
        2000000, ["text", "image"], "Router",
        {"prompt": "-1", "completion": "-1"},
        None, [], top_context=None,
    ),
    _model(
        "mistralai/mistral-small", "Mistral Small", 1704844800,
        "Mistral Small: cost-efficient, fast and reliable, good for translation.",
        32768, ["text"], "Mistral",
        {"prompt": "0.0000002", "completion": "0.0000006", "request": "0"},
        None, [*_COMMON, *_TOOLS, "response_format"],
    ),
]  # fmt: skip
_DEFAULT_MODELS_JSON = json.dumps(DEFAULT_MODELS)  # each server's own copy is read from this


_WORDS = [
    "model", "fast", "reasoning", "context", "tokens", "vision", "multilingual", "instruct",
    "coding", "chat", "tuned", "open", "weights", "provider", "latency", "benchmark", "quality",
    "long", "documents", "tools", "structured", "output", "agents",
]  # fmt: skip


def realistic_models(count: int) -> list[dict[str, Any]]:
    """``count`` OpenRouter-shaped models (§5.1) of the size real ones have (~1.2 KB of JSON
    each: a ~400-character description, 7 prices, 12 parameters), ids ``vendorN/model-N``."""
    out = []
    for i in range(count):
        words = " ".join(_WORDS[(i + k * 7) % len(_WORDS)] for k in range(60))
        vendor = f"vendor{i % 97}"
        inputs = ["text", "image"] if i % 3 == 0 else ["text"]
        out.append(
            _model(
                f"{vendor}/model-{i}", f"{vendor.title()}: Model {i}", 1700000000 + i,
                f"Model {i} by {vendor}: {words}.", 8192 * (1 + i % 64), inputs, "GPT",
                {"prompt": f"0.00000{i % 10}1", "completion": f"0.0000{i % 7}2", "request": "0",
                 "image": "0", "web_search": "0", "internal_reasoning": "0",
                 "input_cache_read": "0.00000025"},
                4096 * (1 + i % 8),
                [*_COMMON, *(_TOOLS if i % 2 else []), "top_k", "frequency_penalty",
                 "presence_penalty", "response_format", "reasoning"],
            )
        )  # fmt: skip
    return out


def hostile_model_list(size: int) -> bytes:
    """A valid model list of at most ``size`` bytes built to cost the most memory when parsed
    whole: a quarter each of entries with huge unused strings, of unused fields nested 50
    deep and wide, of tiny entries (a million in 32 MiB), and of long ids and names. Depth
    stays under 64, so only memory can refuse it."""
    huge = b'{"id":"h/%d","description":"' + b"d" * (256 * 1024) + b'","x":"' + b"x" * 65536 + b'"}'
    deep = b'{"id":"n/%d","x":' + b"[" * 50 + b"[],{}," * 2000 + b"0" + b"]" * 50 + b"}"
    tiny = b'{"id":"t/%d"}'
    long = b'{"id":"l/%d' + b"i" * 200 + b'","name":"' + "\u044f".encode() * 200 + b'"}'
    entries: list[bytes] = []
    for pattern in (huge, deep, tiny, long):
        budget, i = (size - 16) // 4, 0
        while budget > 0:
            entry = pattern % i
            budget -= len(entry) + 1
            if budget >= 0:
                entries.append(entry)
            i += 1
    return b'{"data":[' + b",".join(entries) + b"]}"


def _dumps(obj: Any) -> str:
    # Compact and raw UTF-8, like the gateway's own chunks (Cyrillic stays multi-byte on the wire).
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


# --------------------------------------------------------------------------- recorded requests


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    # Set once the reply was played (or abandoned); client_gone: the client closed first.
    finished: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)
    client_gone: bool = field(default=False, compare=False)
    # batch: when the request arrived (time.monotonic()), for "the batch paused together"
    received_at: float = field(default_factory=time.monotonic, compare=False)

    @property
    def json(self) -> Any:
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None


# --------------------------------------------------------------------------- stream parts


@dataclass(frozen=True)
class _Data:
    payload: bytes


@dataclass(frozen=True)
class _Pause:
    seconds: float


@dataclass(frozen=True)
class _Drop:
    reset: bool


@dataclass(frozen=True)
class _Line:
    kind: str  # "chunk" | "comment" | "done"
    text: str


@dataclass(frozen=True)
class _Trickle:
    data: bytes
    interval: float


@dataclass(frozen=True)
class _Every:
    part: _Line | _Data
    interval: float
    count: int | None


Part = _Data | _Pause | _Drop | _Line | _Trickle | _Every


def chunk(obj: dict[str, Any]) -> Part:
    """`data: <json>` followed by a blank line."""
    return _Line("chunk", _dumps(obj))


def comment(text: str = "OPENROUTER PROCESSING") -> Part:
    """An SSE comment line (`: text`), as keep-alives are sent."""
    return _Line("comment", text)


def done() -> Part:
    return _Line("done", "[DONE]")


def raw(data: bytes) -> Part:
    """Bytes written verbatim (no SSE framing added)."""
    return _Data(data)


def pause(seconds: float) -> Part:
    return _Pause(seconds)


def drop(*, reset: bool = False) -> Part:
    """Close the connection right here. reset=True sends a TCP RST instead of a FIN."""
    return _Drop(reset)


def trickle(data: bytes, interval: float = 1.0) -> Part:
    """`data` one byte at a time (each its own write / HTTP chunk), `interval` s apart."""
    return _Trickle(data, interval)


def every(part: Part, interval: float, count: int | None = None) -> Part:
    """`part` (a chunk, comment or raw bytes) sent `count` times, `interval` s apart; forever
    (until the client goes away or the server stops) when count is None."""
    assert isinstance(part, _Line | _Data)
    return _Every(part, interval, count)


# --------------------------------------------------------------------------- replies


class _Ctx:
    """What a Reply needs from the connection handler."""

    def __init__(self, handler: _Handler, stop: threading.Event, rec: Recorded) -> None:
        self.handler = handler
        self.stop = stop
        self.request = rec

    def head(self, status: int, headers: Iterable[tuple[str, str]]) -> None:
        self.handler.send_response(status)
        for name, value in headers:
            self.handler.send_header(name, value)
        self.handler.end_headers()

    def write(self, data: bytes) -> None:
        # wfile is unbuffered: every call is one sendall, i.e. one flush.
        self.handler.wfile.write(data)

    def wait(self, seconds: float) -> bool:
        """Sleep, waking early on server stop. True if the server is stopping."""
        return self.stop.wait(seconds) if seconds > 0 else self.stop.is_set()

    def close(self, *, reset: bool = False) -> None:
        self.handler.close_connection = True
        if reset:
            conn = self.handler.connection
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()  # real close (RST) happens when the handler closes rfile


class Reply:
    def play(self, ctx: _Ctx) -> None:
        raise NotImplementedError


def _extra_headers(headers: dict[str, str] | None) -> list[tuple[str, str]]:
    return list((headers or {}).items())


@dataclass
class _BodyReply(Reply):
    status: int
    body: bytes
    content_type: str | None
    headers: dict[str, str] | None = None

    def play(self, ctx: _Ctx) -> None:
        hdrs = [("Content-Length", str(len(self.body)))]
        if self.content_type:
            hdrs.insert(0, ("Content-Type", self.content_type))
        ctx.head(self.status, hdrs + _extra_headers(self.headers))
        if ctx.request.method != "HEAD":
            ctx.write(self.body)


@dataclass
class _StreamReply(Reply):
    parts: Sequence[Part]
    status: int = 200
    headers: dict[str, str] | None = None
    content_type: str = "text/event-stream"
    chunked: bool = True
    line_ending: str = "\n"
    fragment: int | None = None

    def _encode(self, part: _Line | _Data) -> bytes:
        if isinstance(part, _Data):
            return part.payload
        le = self.line_ending
        prefix = ": " if part.kind == "comment" else "data: "
        return f"{prefix}{part.text}{le}{le}".encode()

    def _send(self, ctx: _Ctx, data: bytes) -> None:
        step = self.fragment or len(data) or 1
        for i in range(0, len(data), step):
            piece = data[i : i + step]
            ctx.write(b"%x\r\n%s\r\n" % (len(piece), piece) if self.chunked else piece)

    def play(self, ctx: _Ctx) -> None:
        hdrs = [("Content-Type", self.content_type), ("Cache-Control", "no-cache")]
        if self.chunked:
            hdrs.append(("Transfer-Encoding", "chunked"))
        else:
            hdrs.append(("Connection", "close"))
            ctx.handler.close_connection = True
        ctx.head(self.status, hdrs + _extra_headers(self.headers))
        for part in self.parts:
            if isinstance(part, _Pause):
                if ctx.wait(part.seconds):
                    ctx.close()
                    return
            elif isinstance(part, _Drop):
                ctx.close(reset=part.reset)
                return
            elif isinstance(part, _Trickle):
                for i in range(len(part.data)):
                    if i and ctx.wait(part.interval):
                        ctx.close()
                        return
                    self._send(ctx, part.data[i : i + 1])
            elif isinstance(part, _Every):
                data = self._encode(part.part)
                sent = 0
                while part.count is None or sent < part.count:
                    if sent and ctx.wait(part.interval):
                        ctx.close()
                        return
                    self._send(ctx, data)
                    sent += 1
            else:
                self._send(ctx, self._encode(part))
        if self.chunked:
            ctx.write(b"0\r\n\r\n")


@dataclass
class _RawHTTPReply(Reply):
    data: bytes
    interval: float | None
    then_hang: float

    def play(self, ctx: _Ctx) -> None:
        ctx.handler.close_connection = True
        if self.interval is None:
            ctx.write(self.data)
        else:
            for i in range(len(self.data)):
                if i and ctx.wait(self.interval):
                    return
                ctx.write(self.data[i : i + 1])
        ctx.wait(self.then_hang)


@dataclass
class _HangReply(Reply):
    seconds: float
    then: Reply | None

    def play(self, ctx: _Ctx) -> None:
        if ctx.wait(self.seconds) or self.then is None:
            ctx.close()
            return
        self.then.play(ctx)


@dataclass
class _AdaptiveReply(Reply):
    text: str | Sequence[str]
    kwargs: dict[str, Any]

    def play(self, ctx: _Ctx) -> None:
        body = ctx.request.json
        wants_stream = isinstance(body, dict) and body.get("stream") is True
        model = body.get("model") if isinstance(body, dict) else None
        kw = dict(self.kwargs)
        if isinstance(model, str) and model:
            kw.setdefault("model", model)
        if wants_stream:
            stream_text(self.text, **kw).play(ctx)
        else:
            keep = {k: v for k, v in kw.items() if k in {"model", "id", "usage", "finish_reason"}}
            text = self.text if isinstance(self.text, str) else "".join(self.text)
            completion(text, **keep).play(ctx)


@dataclass
class _ModelsReply(Reply):
    server: FakeServer

    def play(self, ctx: _Ctx) -> None:
        body = _dumps({"data": self.server.models}).encode()
        _BodyReply(200, body, "application/json").play(ctx)


# --------------------------------------------------------------------------- reply builders


def stream(
    *parts: Part,
    status: int = 200,
    headers: dict[str, str] | None = None,
    content_type: str = "text/event-stream",
    chunked: bool = True,
    line_ending: str = "\n",
    fragment: int | None = None,
) -> Reply:
    """Generic SSE stream. chunked=False: `Connection: close`, body delimited by EOF.
    fragment=N writes every part in N-byte pieces (each its own write / HTTP chunk)."""
    return _StreamReply(list(parts), status, headers, content_type, chunked, line_ending, fragment)


def split_text(text: str, size: int = 4) -> list[str]:
    """Small pieces, like tokens; slicing a str never cuts a UTF-8 sequence."""
    return [text[i : i + size] for i in range(0, len(text), size)]


def _pieces(text_or_pieces: str | Sequence[str]) -> list[str]:
    return split_text(text_or_pieces) if isinstance(text_or_pieces, str) else list(text_or_pieces)


def _base(id: str, model: str, provider: str | None) -> dict[str, Any]:
    base: dict[str, Any] = {"id": id}
    if provider:
        base["provider"] = provider
    base.update(model=model, object="chat.completion.chunk")
    return base


def _delta_chunk(base: dict[str, Any], delta: dict[str, Any]) -> Part:
    return chunk({**base, "choices": [{"delta": delta, "index": 0}]})


def _tail(
    base: dict[str, Any], finish_reason: str | None, usage: dict[str, Any] | None, end: bool
) -> list[Part]:
    parts: list[Part] = []
    if finish_reason is not None:
        choice = {"index": 0, "delta": {}, "finish_reason": finish_reason}
        parts.append(chunk({**base, "choices": [choice]}))
    if usage is not None:
        parts.append(chunk({**base, "choices": [], "usage": usage}))
    if end:
        parts.append(done())
    return parts


def _with_delays(parts: list[Part], delay: float) -> list[Part]:
    if delay <= 0:
        return parts
    out: list[Part] = []
    for p in parts:
        out += [p, pause(delay)]
    return out[:-1]


def stream_text(
    text_or_pieces: str | Sequence[str],
    *,
    model: str = "openai/gpt-4o",
    id: str = "gen-test-1",
    finish_reason: str | None = "stop",
    usage: dict[str, Any] | None = DEFAULT_USAGE,
    keepalive: bool = True,
    delay: float = 0.0,
    line_ending: str = "\n",
    chunked: bool = True,
    done: bool = True,
    extra_chunks: Sequence[dict[str, Any] | Part] = (),
    reasoning: str | Sequence[str] | None = None,
    provider: str | None = None,
    headers: dict[str, str] | None = None,
    fragment: int | None = None,
) -> Reply:
    """A realistic LLMost stream: keep-alive comment, role chunk, (reasoning deltas), one chunk
    per piece with a keep-alive in the middle, extra_chunks, finish chunk (omitted when
    finish_reason is None), usage chunk with choices [] (omitted when usage is None), [DONE]."""
    base = _base(id, model, provider)
    pieces = _pieces(text_or_pieces)
    body: list[Part] = []
    if reasoning is not None:
        body += [_delta_chunk(base, {"reasoning": r}) for r in _pieces(reasoning)]
    content = [_delta_chunk(base, {"content": p}) for p in pieces]
    if keepalive and content:
        content.insert((len(content) + 1) // 2, comment())
    body += content
    body += [chunk(c) if isinstance(c, dict) else c for c in extra_chunks]
    parts: list[Part] = [comment()] if keepalive else []
    parts.append(_delta_chunk(base, {"role": "assistant", "content": ""}))
    parts += _with_delays(body, delay)
    parts += _tail(base, finish_reason, usage, done)
    return stream(
        *parts, headers=headers, chunked=chunked, line_ending=line_ending, fragment=fragment
    )


def stream_tool_calls(
    calls: Sequence[tuple[str, str, str]],
    *,
    text: str = "",
    interleave: bool = False,
    model: str = "openai/gpt-4o",
    id: str = "gen-test-tools",
    finish_reason: str | None = "tool_calls",
    usage: dict[str, Any] | None = DEFAULT_USAGE,
    keepalive: bool = True,
    delay: float = 0.0,
    line_ending: str = "\n",
    chunked: bool = True,
    done: bool = True,
    arg_piece: int = 6,
) -> Reply:
    """Tool-call deltas per §4.3. calls: (call_id, function_name, arguments_json) triples, given
    index 0, 1, ... The first fragment carries id/type/name and arguments ""; the rest only the
    index and an arguments piece of arg_piece chars. interleave=True alternates the calls."""
    base = _base(id, model, provider=None)
    per_call: list[list[dict[str, Any]]] = []
    for index, (call_id, name, arguments) in enumerate(calls):
        frags: list[dict[str, Any]] = [
            {
                "index": index,
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": ""},
            }
        ]
        for piece in split_text(arguments, arg_piece):
            frags.append({"index": index, "function": {"arguments": piece}})
        per_call.append(frags)
    if interleave:
        longest = max((len(f) for f in per_call), default=0)
        order = [f[i] for i in range(longest) for f in per_call if i < len(f)]
    else:
        order = [frag for frags in per_call for frag in frags]
    body: list[Part] = [_delta_chunk(base, {"content": p}) for p in _pieces(text)] if text else []
    body += [_delta_chunk(base, {"tool_calls": [frag]}) for frag in order]
    if keepalive and body:
        body.insert(len(body) // 2, comment())
    parts: list[Part] = [comment()] if keepalive else []
    parts.append(_delta_chunk(base, {"role": "assistant", "content": None}))
    parts += _with_delays(body, delay)
    parts += _tail(base, finish_reason, usage, done)
    return stream(*parts, chunked=chunked, line_ending=line_ending)


def midstream_error(
    pieces_before: str | Sequence[str],
    *,
    code: int | str = 502,
    message: str = "Provider disconnected",
    metadata: dict[str, Any] | None = None,
    done: bool = False,
    model: str = "openai/gpt-4o",
    id: str = "gen-test-err",
    provider: str | None = "openai",
    keepalive: bool = True,
    delay: float = 0.0,
    chunked: bool = True,
    line_ending: str = "\n",
) -> Reply:
    """HTTP 200 stream: text chunks, then the §4.4 error chunk (top-level `error` and a choice
    with finish_reason "error"), then the stream ends cleanly (with [DONE] if done=True)."""
    base = _base(id, model, provider=None)
    body: list[Part] = [_delta_chunk(base, {"content": p}) for p in _pieces(pieces_before)]
    err: dict[str, Any] = {"code": code, "message": message}
    if metadata is not None:
        err["metadata"] = metadata
    err_chunk = {"id": id, "object": "chat.completion.chunk", "created": int(time.time())}
    err_chunk["model"] = model
    if provider:
        err_chunk["provider"] = provider
    err_chunk["error"] = err
    err_chunk["choices"] = [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]
    body.append(chunk(err_chunk))
    parts: list[Part] = [comment()] if keepalive else []
    parts.append(_delta_chunk(base, {"role": "assistant", "content": ""}))
    parts += _with_delays(body, delay)
    if done:
        parts.append(_Line("done", "[DONE]"))
    return stream(*parts, chunked=chunked, line_ending=line_ending)


def _tool_call_obj(call: tuple[str, str, str] | dict[str, Any]) -> dict[str, Any]:
    if isinstance(call, dict):
        return call
    call_id, name, arguments = call
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def completion(
    text: str | None = "Hello!",
    *,
    finish_reason: str | None = "stop",
    usage: dict[str, Any] | None = DEFAULT_USAGE,
    tool_calls: Sequence[tuple[str, str, str] | dict[str, Any]] | None = None,
    model: str = "openai/gpt-4o",
    id: str = "gen-test-1",
    status: int = 200,
    extra: dict[str, Any] | None = None,
    choice_extra: dict[str, Any] | None = None,
    reasoning: str | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """Non-streaming chat.completion body per §3. tool_calls: (id, name, arguments_json) triples
    or ready dicts. extra is merged into the top level, choice_extra into choices[0]."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls is not None:
        message["tool_calls"] = [_tool_call_obj(c) for c in tool_calls]
    if reasoning is not None:
        message["reasoning"] = reasoning
    choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": finish_reason}
    choice.update(choice_extra or {})
    body: dict[str, Any] = {
        "id": id,
        "model": model,
        "object": "chat.completion",
        "created": int(time.time()),
        "choices": [choice],
    }
    if usage is not None:
        body["usage"] = usage
    body.update(extra or {})
    return _BodyReply(status, _dumps(body).encode(), "application/json", headers)


def error(
    status: int,
    message: str,
    *,
    retry_after: str | int | None = None,
    metadata: dict[str, Any] | None = None,
    code: int | str | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """The LLMost error envelope {"error": {code, message, metadata?}} with that HTTP status."""
    err: dict[str, Any] = {"code": code if code is not None else status, "message": message}
    if metadata is not None:
        err["metadata"] = metadata
    hdrs = dict(headers or {})
    if retry_after is not None:
        hdrs["Retry-After"] = str(retry_after)
    return _BodyReply(status, _dumps({"error": err}).encode(), "application/json", hdrs)


def raw_response(
    status: int,
    body: bytes,
    *,
    content_type: str | None = "text/html",
    headers: dict[str, str] | None = None,
) -> Reply:
    """Any body with Content-Length, e.g. a proxy's HTML 502 page."""
    return _BodyReply(status, body, content_type, headers)


def json_response(obj: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    """Any JSON body, e.g. {"data": {...}} for /key or /generation."""
    return _BodyReply(status, _dumps(obj).encode(), "application/json", headers)


def raw_http(data: bytes, *, interval: float | None = None, then_hang: float = 0.0) -> Reply:
    """Bytes written as the whole response, status line and headers included (no framing is
    added), one byte every `interval` s when given; then wait `then_hang` s and close."""
    return _RawHTTPReply(data, interval, then_hang)


@functools.lru_cache(maxsize=8)
def bomb(
    encoding: str = "gzip", decoded_size: int = 1 << 30, unit: bytes = b"\0", prefix: bytes = b""
) -> bytes:
    """A decompression bomb: `prefix` then `unit` repeated to about `decoded_size` bytes, as a
    valid `gzip`, `deflate` (zlib) or `raw-deflate` body. 1 GiB of zeros is ~1 MB compressed.
    Built from one compressed 1 MiB block repeated (a full flush makes the blocks independent),
    so it takes a fraction of a second; cached."""
    wbits = {"gzip": 31, "deflate": 15, "raw-deflate": -15}[encoding]
    block = unit * max(1, (1 << 20) // len(unit))
    count = max(1, (decoded_size - len(prefix)) // len(block))
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    first = packer.compress(prefix + block) + packer.flush(zlib.Z_FULL_FLUSH)
    middle = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    again = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    assert middle == again, "a flushed block must compress the same every time"
    final = packer.flush()  # the last (empty) block and a trailer for 3 blocks: replaced below
    body = first + middle * (count - 1)
    if encoding == "raw-deflate":
        return body + final
    total = len(prefix) + count * len(block)
    if encoding == "gzip":
        crc = _repeated(zlib.crc32, _crc32_combine, zlib.crc32(prefix), block, count)
        return body + final[:-8] + struct.pack("<II", crc, total & 0xFFFFFFFF)
    adler = _repeated(zlib.adler32, _adler32_combine, zlib.adler32(prefix), block, count)
    return body + final[:-4] + struct.pack(">I", adler)


# The check value of a bomb's gigabyte without reading it (reading takes ~0.5 s per bomb): the
# values of its parts combined, as zlib's crc32_combine and adler32_combine do.


def _repeated(check: Any, combine: Any, start: int, block: bytes, count: int) -> int:
    """``check(prefix + block * count)``, from ``start`` = ``check(prefix)``, by doubling."""
    one, size, acc = check(block), len(block), start
    while count:
        if count & 1:
            acc = combine(acc, one, size)
        count >>= 1
        if count:
            one, size = combine(one, one, size), size * 2
    return acc


def _gf2_times(matrix: list[int], vector: int) -> int:
    total, row = 0, 0
    while vector:
        if vector & 1:
            total ^= matrix[row]
        vector >>= 1
        row += 1
    return total


def _gf2_square(matrix: list[int]) -> list[int]:
    return [_gf2_times(matrix, matrix[n]) for n in range(32)]


def _crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """The CRC-32 of A + B from those of A and B (B is ``len2`` bytes)."""
    odd = [0xEDB88320] + [1 << n for n in range(31)]  # one zero bit through the register
    even = _gf2_square(odd)  # two zero bits
    odd = _gf2_square(even)  # four
    while len2:
        even = _gf2_square(odd)  # a zero byte first, then doubling
        if len2 & 1:
            crc1 = _gf2_times(even, crc1)
        len2 >>= 1
        if not len2:
            break
        odd = _gf2_square(even)
        if len2 & 1:
            crc1 = _gf2_times(odd, crc1)
        len2 >>= 1
    return crc1 ^ crc2


def _adler32_combine(adler1: int, adler2: int, len2: int) -> int:
    """The Adler-32 of A + B from those of A and B (B is ``len2`` bytes)."""
    base = 65521
    rem = len2 % base
    sum1 = adler1 & 0xFFFF
    sum2 = rem * sum1 % base
    sum1 = (sum1 + (adler2 & 0xFFFF) + base - 1) % base
    sum2 = (sum2 + (adler1 >> 16) + (adler2 >> 16) + base - rem) % base
    return sum1 | sum2 << 16


def hang(seconds: float, then: Reply | None = None) -> Reply:
    """Send nothing for `seconds` (wakes at once on server stop), then play `then`, or close the
    connection without any response when `then` is None."""
    return _HangReply(seconds, then)


def redirect(location: str, status: int = 307) -> Reply:
    return _BodyReply(status, b"", None, {"Location": location})


def adaptive(text_or_pieces: str | Sequence[str] = "Hello!", **stream_kwargs: Any) -> Reply:
    """stream_text(...) if the request asked for "stream": true, else completion(joined text).
    The reply's model echoes the requested one unless model= is given."""
    return _AdaptiveReply(text_or_pieces, stream_kwargs)


# --------------------------------------------------------------------------- the server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # small SSE writes must leave at once
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(body)
                body += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self) -> None:
        owner = self.server.owner
        split = urlsplit(self.path)
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        rec = Recorded(
            method=self.command,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers=headers,
            body=self._read_body(),
        )
        owner._record(rec)
        owner._enter(rec)  # batch: in-flight counter and per-request latency
        try:
            if owner.latency > 0 and rec.path == CHAT_PATH and owner._stop.wait(owner.latency):
                self.close_connection = True
                return
            owner._reply_for(rec).play(_Ctx(self, owner._stop, rec))
        except OSError:
            rec.client_gone = True
            self.close_connection = True
        finally:
            owner._leave(rec)
            rec.finished.set()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle


def _untrace() -> None:
    """The server's threads run without the tests' coverage tracer (threading.settrace gives it
    to every new thread): the server is not llmost, and traced it would be several times slower."""
    sys.settrace(None)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() joins the threads itself, after waking them
    request_queue_size = 128  # 50 clients connecting at once must not hit SYN retries
    timeout = 0.5  # bounds handle_request()'s own select, should the ready connection vanish

    def __init__(self, addr: tuple[str, int], owner: FakeServer) -> None:
        self.owner = owner
        self.conns: set[socket.socket] = set()
        self.threads: set[threading.Thread] = set()
        self.lock = threading.Lock()
        super().__init__(addr, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls getfqdn(), a reverse DNS lookup that can be slow.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        t = threading.Thread(
            target=self._run,
            args=(request, client_address),
            daemon=True,
            name=f"fakeserver-{self.server_port}-conn",
        )
        with self.lock:
            self.conns.add(request)
            self.threads.add(t)
        t.start()

    def _run(self, request: Any, client_address: Any) -> None:
        _untrace()
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self.lock:
                self.conns.discard(request)
                self.threads.discard(threading.current_thread())

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            return  # clients hanging up (or stop() shutting sockets) is routine here
        if exc is not None:
            with self.owner._cond:
                self.owner.errors.append(exc)
        super().handle_error(request, client_address)


class FakeServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.requests: list[Recorded] = []
        # Exceptions raised while playing a reply (a broken test script): a test can assert [].
        self.errors: list[BaseException] = []
        self.models: list[dict[str, Any]] = json.loads(_DEFAULT_MODELS_JSON)
        self._queues: dict[str, deque[Reply]] = {}
        self._defaults: dict[str, Reply] = {}
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None
        # --- batch additions: per-request latency and an in-flight counter ---------------
        self.latency = 0.0  # seconds every chat request waits before its reply is played
        self.in_flight = 0  # chat requests of this test being answered right now
        self.max_in_flight = 0  # the most at any one time since the last reset()
        # Requests of an earlier test may still be answering (a hang): they are not counted.
        self._generation = 0
        self._generations: dict[int, int] = {}  # id(rec) -> the generation it started in

    # batch additions ---------------------------------------------------------

    def _enter(self, rec: Recorded) -> None:
        if rec.path != CHAT_PATH:
            return
        with self._cond:
            self._generations[id(rec)] = self._generation
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self, rec: Recorded) -> None:
        if rec.path != CHAT_PATH:
            return
        with self._cond:
            if self._generations.pop(id(rec), None) == self._generation:
                self.in_flight -= 1

    # lifecycle ---------------------------------------------------------------

    def start(self) -> FakeServer:
        if self._httpd is not None:
            return self
        self._stop.clear()
        self._httpd = _HTTPServer((self.host, self.port), self)
        self.port = self._httpd.server_port
        self._wake = socket.socketpair()
        self._thread = threading.Thread(
            target=self._serve,
            args=(self._httpd, self._wake[0]),
            daemon=True,
            name=f"fakeserver-{self.port}",
        )
        self._thread.start()
        return self

    def _serve(self, httpd: _HTTPServer, wake: socket.socket) -> None:
        _untrace()
        # Own accept loop instead of serve_forever(): stop() wakes it at once through the
        # socketpair rather than waiting for a poll interval (many tests start a server).
        with selectors.DefaultSelector() as sel:
            sel.register(httpd.socket, selectors.EVENT_READ)
            sel.register(wake, selectors.EVENT_READ)
            while not self._stop.is_set():
                for key, _ in sel.select():
                    if key.fileobj is httpd.socket and not self._stop.is_set():
                        httpd.handle_request()

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stop.set()  # also wakes hang() and pause()
        wake, self._wake = self._wake, None
        if wake is not None:
            wake[1].send(b"x")
        if self._thread is not None:
            self._thread.join(5)
        if wake is not None:
            wake[0].close()
            wake[1].close()
        httpd.server_close()
        with httpd.lock:
            conns, threads = list(httpd.conns), list(httpd.threads)
        for conn in conns:  # wakes handlers blocked reading an idle keep-alive connection
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + 5
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("FakeServer is not running; call start() first")
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/api/v1"

    # scripting ---------------------------------------------------------------

    def add(self, *replies: Reply, path: str = CHAT_PATH) -> None:
        with self._cond:
            self._queues.setdefault(path, deque()).extend(replies)

    def set_default(self, reply: Reply, path: str = CHAT_PATH) -> None:
        with self._cond:
            self._defaults[path] = reply

    def reset(self) -> None:
        with self._cond:
            self._queues.clear()
            self._defaults.clear()
            self.requests.clear()
            self.errors.clear()
            self.models = json.loads(_DEFAULT_MODELS_JSON)  # a fresh copy, 4x faster than deepcopy
            self.latency = 0.0  # batch additions
            self._generation += 1
            self.in_flight = self.max_in_flight = 0

    def pending(self, path: str = CHAT_PATH) -> int:
        """Queued replies not yet played (a test can assert the client used them all)."""
        with self._cond:
            return len(self._queues.get(path, ()))

    # inspection --------------------------------------------------------------

    def chat_requests(self) -> list[Recorded]:
        with self._cond:
            return [
                r
                for r in self.requests
                if r.method == "POST" and r.path.endswith("/chat/completions")
            ]

    def wait_requests(self, count: int, timeout: float = 5.0) -> list[Recorded]:
        """Block until at least `count` requests arrived; returns them (TimeoutError if not)."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.requests) >= count, timeout):
                raise TimeoutError(f"{len(self.requests)} requests arrived, wanted {count}")
            return list(self.requests)

    # called from handler threads ---------------------------------------------

    def _record(self, rec: Recorded) -> None:
        with self._cond:
            self.requests.append(rec)
            self._cond.notify_all()

    def _reply_for(self, rec: Recorded) -> Reply:
        with self._cond:
            queue = self._queues.get(rec.path)
            if queue:
                return queue.popleft()
            if rec.path in self._defaults:
                return self._defaults[rec.path]
        if rec.path == CHAT_PATH:
            return adaptive("Hello!")
        if rec.path == MODELS_PATH and rec.method in ("GET", "HEAD"):
            return _ModelsReply(self)
        return error(404, f"Not found: {rec.method} {rec.path}", metadata={"path": rec.path})


# --------------------------------------------------------------------------- a proxy that records


class RecordingProxy:
    """A would-be HTTP proxy (default on 127.0.0.2, i.e. "another host") that records every
    byte it receives, answers 502 to whatever was asked, and forwards nothing.

        with RecordingProxy() as proxy:
            env = {"HTTPS_PROXY": proxy.url}
            ...
            assert KEY.encode() not in proxy.received()
    """

    def __init__(self, host: str = "127.0.0.2") -> None:
        self.host = host
        self.port = 0
        self.connections: list[bytes] = []
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def received(self) -> bytes:
        with self._lock:
            return b"".join(self.connections)

    def start(self) -> RecordingProxy:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        sock.listen(16)
        sock.settimeout(0.2)
        self._sock, self.port = sock, sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True, name="recording-proxy")
        self._thread.start()
        return self

    def _serve(self) -> None:
        _untrace()
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        _untrace()
        data = bytearray()
        with self._lock:
            index = len(self.connections)
            self.connections.append(b"")
        conn.settimeout(2.0)
        with contextlib.suppress(OSError), conn:
            while b"\r\n\r\n" not in data and len(data) < 1 << 20:
                piece = conn.recv(65536)
                if not piece:
                    break
                data += piece
                with self._lock:
                    self.connections[index] = bytes(data)
            conn.sendall(
                b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._sock is not None:
            self._sock.close()

    def __enter__(self) -> RecordingProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- standalone mode

_BENCH_TEXT = """\
## Streaming check

Here is a **short answer** with `inline code`, *emphasis* and a [link](https://llmost.ru).
Русский текст тоже нужен: привет, мир — проверка UTF-8.

1. First point, with a little more prose so that lines wrap in a narrow terminal window.
2. Second point: `llmost chat --model openai/gpt-4o`.
- a bullet
- another bullet with **bold** text

```python
def greet(name: str) -> str:
    return f"Hello, {name}!"
```

> A quoted remark to finish the section.

| model | context |
|-------|---------|
| gpt-4o | 128k |

"""


def markdown_pieces(n: int) -> list[str]:
    """n token-like pieces (word plus trailing whitespace) of markdown-ish text, cycled."""
    tokens = re.findall(r"\S+\s*", _BENCH_TEXT)
    return [tokens[i % len(tokens)] for i in range(n)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fakeserver", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--tokens", type=int, default=50, help="pieces per streamed reply")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds between pieces")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each reply")
    args = parser.parse_args(argv)
    with FakeServer(args.host, args.port) as srv:
        srv.latency = args.latency
        srv.set_default(adaptive(markdown_pieces(args.tokens), delay=args.delay))
        print(f"FakeServer listening on {srv.url}  (base URL {srv.base_url})", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopping", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
