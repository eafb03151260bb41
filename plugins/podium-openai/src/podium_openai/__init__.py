"""Podium provider plugin for OpenAI models, on the official `openai` SDK."""

from podium_openai.provider import OpenAIProvider

__all__ = ["OpenAIProvider"]
