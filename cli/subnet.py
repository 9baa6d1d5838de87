"""`arena subnet`: a whole local subnet on one machine."""


def subnet() -> None:
    """Run chain, validator, miners, eval, crown, weights and gateway locally."""
    raise SystemExit("arena subnet is not built yet")
