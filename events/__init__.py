"""Arena's event types and the DuckDB event log. No chain, no Ray, no Docker here."""

from events.types import *  # noqa: F403
from events.types import __all__  # noqa: F401
