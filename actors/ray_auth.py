"""How a validator command authenticates to its Ray cluster.

cluster.yaml starts Ray with token auth, and Ray 2.60 clients send their token only when
``RAY_AUTH_MODE=token``: a command that connects to the validator's cluster uses that mode unless
the environment names another (``disabled`` for a loopback test cluster). The token itself is
Ray's: ``~/.ray/auth_token`` (``ray get-auth-token`` on the head) or ``RAY_AUTH_TOKEN``.
"""

from __future__ import annotations

import os

__all__ = ["AUTH_MODE_VAR", "CLUSTER_AUTH_MODE", "use_cluster_auth"]

AUTH_MODE_VAR = "RAY_AUTH_MODE"
CLUSTER_AUTH_MODE = "token"


def use_cluster_auth() -> str:
    """Set ``RAY_AUTH_MODE`` to the cluster's mode unless it is set; return the mode in use.

    Call it before ``ray.init``.
    """
    if AUTH_MODE_VAR not in os.environ:
        os.environ[AUTH_MODE_VAR] = CLUSTER_AUTH_MODE
        # Ray reads the mode into its config once per process, as soon as it is imported.
        from ray._raylet import Config

        Config.initialize("")
    return os.environ[AUTH_MODE_VAR]
