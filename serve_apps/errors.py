"""The root of the serve apps' errors, under :class:`rules.errors.ArenaError`::

ServeError
├── ApiError                  a request is refused with an OpenAI-style error (openai_schema)
└── KeyStoreError             the API key file is unusable (keys)
"""

from __future__ import annotations

from rules.errors import ArenaError

__all__ = ["ServeError"]


class ServeError(ArenaError):
    """Root of the errors the gateway and its helpers raise."""
