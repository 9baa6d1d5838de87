"""Subtensor through substrate-interface: wallets, metagraph, commitments, weights, axons and
following finalized heads. No Ray; ``chain.localnet`` and ``chain.chopsticks`` run a dev chain."""
