"""The exception tree and the exit codes it maps to.

    LlmostError                      exit_code
    ├── UsageError                   2  bad option, value out of range, missing prompt
    ├── ConfigError                  3  no key, invalid config file, refused insecure URL
    ├── StoreError                   3  the conversation store cannot be opened, read or written
    ├── APIError                     7  HTTP error or error reported by the server
    │   ├── AuthError                4  HTTP 401, 403
    │   ├── CreditsError             5  HTTP 402
    │   ├── RateLimitError           6  HTTP 429 (after retries)
    │   ├── StreamError              7  error event inside a 200 stream, malformed stream
    │   └── StructuredOutputError    7  answer is not valid JSON / does not match the schema
    ├── NetworkError                 8  refused, reset, dropped mid-stream, DNS, timeout
    │   └── RequestTimeout            8
    ├── Interrupted                130  Ctrl-C while an answer streamed
    ├── Terminated                 143  SIGTERM (129: SIGHUP, the terminal closed)
    └── OutputClosed                 0  the reader of stdout went away (`| head`)
                                    74  stdout cannot be written (disk full, closed)

Everything else that escapes is a bug (exit 1). KeyboardInterrupt exits 130.
Only ``client.py`` translates httpx exceptions into this tree.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    OK = 0
    INTERNAL = 1
    USAGE = 2
    CONFIG = 3
    AUTH = 4
    CREDITS = 5
    RATE_LIMITED = 6
    API = 7
    NETWORK = 8
    BATCH_FAILED = 9  # `batch`: some lines failed, each recorded in its output line
    OUTPUT = 74  # stdout could not be written (sysexits EX_IOERR)
    HANGUP = 129
    INTERRUPTED = 130
    TERMINATED = 143


class LlmostError(Exception):
    """Base of every error the CLI reports on purpose."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        # Fields that ``-o json`` prints next to ``error`` (the part of an answer that arrived).
        self.details: dict[str, Any] = {}

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message

    @property
    def code(self) -> int | str:
        """The value shown as ``error.code`` in ``-o json`` output."""
        return int(self.exit_code)


class UsageError(LlmostError):
    exit_code = ExitCode.USAGE


class ConfigError(LlmostError):
    exit_code = ExitCode.CONFIG


class APIError(LlmostError):
    exit_code = ExitCode.API
    #: The server's whole message (up to the read limit) when ``message`` shows it folded.
    detail: str = ""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_code: int | str | None = None,
        metadata: dict[str, Any] | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.error_code = error_code
        self.metadata = metadata or {}

    @property
    def code(self) -> int | str:
        if self.error_code is not None:
            return self.error_code
        return self.status if self.status is not None else int(self.exit_code)


class AuthError(APIError):
    exit_code = ExitCode.AUTH


class CreditsError(APIError):
    exit_code = ExitCode.CREDITS


class RateLimitError(APIError):
    exit_code = ExitCode.RATE_LIMITED


class StreamError(APIError):
    """The server reported an error inside a 200 response, or the stream was malformed."""


class StructuredOutputError(APIError):
    """The answer is not valid JSON, or does not match ``--schema``."""


class NetworkError(LlmostError):
    exit_code = ExitCode.NETWORK


class RequestTimeout(NetworkError):
    pass


class Interrupted(LlmostError):
    """Ctrl-C while an answer streamed; the partial answer is kept."""

    exit_code = ExitCode.INTERRUPTED

    def __init__(self) -> None:
        super().__init__("interrupted")


class Terminated(LlmostError):
    """Raised from the SIGTERM/SIGHUP handler so that the partial answer is stored first."""

    exit_code = ExitCode.TERMINATED

    def __init__(self, signum: int = 15) -> None:
        super().__init__("terminated" if signum != 1 else "hung up (the terminal closed)")
        if signum == 1:
            self.exit_code = ExitCode.HANGUP


class StoreError(LlmostError):
    """The conversation store cannot be opened, read or written, or a stored row is damaged."""

    exit_code = ExitCode.CONFIG


class OutputClosed(LlmostError):
    """stdout cannot take more. Its reader closed the pipe (``| head``): stop quietly, exit 0.
    Otherwise (disk full, stdout closed): say so, exit 74; what arrived is stored anyway."""

    exit_code = ExitCode.OK

    def __init__(self, reason: str | None = None) -> None:
        super().__init__(
            f"cannot write the answer to standard output: {reason}" if reason else "output closed"
        )
        self.quiet = reason is None
        if reason is not None:
            self.exit_code = ExitCode.OUTPUT


_HINTS = {
    401: "check the API key: llmost config set api_key",
    402: "add credits to your account, then try again",
    403: "the key may not have access to this model",
    404: "check the model id (llmost models) and base_url",
    429: "rate limited; wait a moment or raise --retries",
}


def api_error_for_status(
    status: int,
    message: str,
    *,
    error_code: int | str | None = None,
    metadata: dict[str, Any] | None = None,
) -> APIError:
    """The error class and hint that an HTTP error status maps to (DESIGN.md §5)."""
    cls: type[APIError]
    if status in (401, 403):
        cls = AuthError
    elif status == 402:
        cls = CreditsError
    elif status == 429:
        cls = RateLimitError
    else:
        cls = APIError
    return cls(
        message,
        status=status,
        error_code=error_code,
        metadata=metadata,
        hint=_HINTS.get(status),
    )
