"""The miner's view of who may call it: registered hotkeys and their stake, kept fresh.

Requests never wait on the chain: they read the last snapshot, and a background thread replaces
it every ``refresh_s``. A failed refresh keeps the previous snapshot (a miner that briefly loses
its chain connection keeps serving the validators it knew).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from types import MappingProxyType

__all__ = ["RefreshingCallers"]

log = logging.getLogger(__name__)


class RefreshingCallers:
    def __init__(self, fetch: Callable[[], Mapping[str, float]], refresh_s: float) -> None:
        self._fetch = fetch
        self._refresh_s = refresh_s
        self._snapshot: Mapping[str, float] = MappingProxyType({})
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self) -> Mapping[str, float]:
        return self._snapshot

    def refresh(self) -> None:
        """Fetch now; raises whatever ``fetch`` raises."""
        self._snapshot = MappingProxyType(dict(self._fetch()))

    def start(self) -> None:
        """Fetch once (raising if that fails), then keep refreshing in the background."""
        self.refresh()
        self._thread = threading.Thread(target=self._loop, name="live-callers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self._refresh_s):
            try:
                self.refresh()
            except Exception as exc:  # a chain hiccup must not take the miner down
                log.warning("could not refresh callers (keeping the last snapshot): %s", exc)
