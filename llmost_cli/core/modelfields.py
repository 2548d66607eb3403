"""What a model entry of ``GET /models`` says, read the same way whichever server sent it
(LLMost/OpenRouter, vLLM, llama.cpp, Ollama): the readers that the model list (core/models.py)
and its compact records (core/catalog.py) share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["context_length", "has_tools", "input_modalities", "model_name", "supported_parameters"]


def context_length(model: Mapping[str, Any]) -> int | None:
    """LLMost/OpenRouter ``context_length``, else ``top_provider.context_length``, else
    vLLM's ``max_model_len``."""
    top = model.get("top_provider")
    candidates = [
        model.get("context_length"),
        top.get("context_length") if isinstance(top, dict) else None,
        model.get("max_model_len"),
    ]
    for value in candidates:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def input_modalities(model: Mapping[str, Any]) -> list[str] | None:
    """``architecture.input_modalities``, else the left side of ``architecture.modality``."""
    arch = model.get("architecture")
    if not isinstance(arch, dict):
        return None
    listed = arch.get("input_modalities")
    if isinstance(listed, list):
        return [str(m) for m in listed]
    modality = arch.get("modality")
    if isinstance(modality, str) and modality:
        return [m for m in modality.split("->")[0].split("+") if m]
    return None


def supported_parameters(model: Mapping[str, Any]) -> list[str]:
    params = model.get("supported_parameters")
    return [str(p) for p in params] if isinstance(params, list) else []


def model_name(model: Mapping[str, Any]) -> str | None:
    name = model.get("name")
    return name if isinstance(name, str) and name else None


def has_tools(model: Mapping[str, Any]) -> bool:
    return "tools" in supported_parameters(model)
