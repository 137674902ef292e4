"""Connecting to Ray: a local cluster by default, or the one at an address."""

from __future__ import annotations

import logging
import os
from typing import Any

from ..tasks import TaskError


class ScaleError(TaskError):
    """Ray is missing, unreachable, or cannot give what was asked (the message says which).
    A TaskError, so that the environment layer passes it on as it is (not as the user's env's error)."""


def require_ray() -> Any:
    """The ``ray`` module, or a ScaleError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ScaleError("this needs Ray: pip install 'metadqn[ray]'") from None
    return ray


def connect(address: str | None = None) -> Any:
    """Join the Ray cluster at ``address`` (``"auto"``: the one ``ray start`` made on this
    machine; ``"HOST:PORT"`` or ``"ray://HOST:10001"``), or start a local one with this
    machine's CPUs when ``address`` is None. Reuses a connection this process already has."""
    ray = require_ray()
    if ray.is_initialized():
        return ray
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")  # silences a FutureWarning of Ray's
    try:
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING,
                 configure_logging=True, log_to_driver=True)
    except (ConnectionError, ValueError, RuntimeError) as e:
        raise ScaleError(f"cannot connect to the Ray cluster at {address!r}: {e}") from None
    return ray


def cluster_cpus() -> float:
    """CPUs the connected cluster has in all nodes."""
    return float(require_ray().cluster_resources().get("CPU", 0.0))


__all__ = ["ScaleError", "cluster_cpus", "connect", "require_ray"]
