"""The domain core: Arena's pure rules, with no Ray, chain, engine or log imports.

Each rule is written once here and consumed by the packages that act on it (the CLI, the chain
watcher, the sandbox, the actors and the serve apps).
"""
