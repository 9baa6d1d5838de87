"""Subtensor through substrate-interface: wallets, metagraph, commitments, weights, axons and
following finalized heads. Needs no Ray; ``chain.localnet`` and ``chain.chopsticks`` run a dev chain."""
