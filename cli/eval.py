"""`arena eval --image REF@sha256:...`."""


def eval_image(image: str) -> None:
    """Evaluate one image locally against the baseline, as the validator would."""
    raise SystemExit("arena eval is not built yet")
