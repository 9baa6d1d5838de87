"""Which server gets the next request: the king first, the reference miner when the king is down.

A king that failed is skipped for ``cooldown_s`` so requests don't each pay for a dead connection;
after that it gets one more try. A new king (a newer ``KingServing``) starts with a clean record.
"""

from __future__ import annotations

__all__ = ["Upstreams"]


class Upstreams:
    def __init__(self, reference: str, cooldown_s: float) -> None:
        self.reference = reference.rstrip("/")
        self.king: str | None = None
        self._cooldown_s = cooldown_s
        self._down_until: dict[str, float] = {}

    def set_king(self, endpoint: str | None) -> None:
        endpoint = endpoint.rstrip("/") if endpoint else None
        if endpoint != self.king:
            self.king = endpoint
            if endpoint is not None:
                self._down_until.pop(endpoint, None)

    def order(self, now: float) -> list[str]:
        """Endpoints to try, in order; the reference miner is always last, even if marked down."""
        order = []
        if self.king and self.king != self.reference and self._down_until.get(self.king, 0) <= now:
            order.append(self.king)
        order.append(self.reference)
        return order

    def mark_down(self, endpoint: str, now: float) -> None:
        self._down_until[endpoint] = now + self._cooldown_s

    def mark_up(self, endpoint: str) -> None:
        self._down_until.pop(endpoint, None)
