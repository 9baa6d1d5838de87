"""`arena history` and `arena sql`."""


def history() -> None:
    """Kings, evaluations and weights over time."""
    raise SystemExit("arena history is not built yet")


def sql(query: str) -> None:
    """Run a read-only SQL query over the event log."""
    raise SystemExit("arena sql is not built yet")
