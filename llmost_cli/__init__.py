"""llmost: a command-line chat client for the LLMost API and OpenAI-compatible servers."""

from __future__ import annotations

__version__ = "0.1.0"
