"""Ray Serve apps: the organic-request gateway (``gateway``) and the reference miner (``miner``),
plus serving the crowned king from its sandbox (``king``)."""
