"""`arena bench BASELINE_URL CHALLENGER_URL`."""


def bench(baseline_url: str, challenger_url: str) -> None:
    """Measure two OpenAI-compatible servers and score the challenger."""
    raise SystemExit("arena bench is not built yet")
