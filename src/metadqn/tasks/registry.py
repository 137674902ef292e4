"""The family registry: ``make_family(name, **options)`` and ``list_families()``."""

from __future__ import annotations

import inspect
from typing import Any, Callable

from .bandit import BanditFamily
from .base import TaskError, TaskFamily
from .cartpole import CartPoleFamily
from .driving import DrivingFamily
from .gridnav import GridNavFamily, GridNavPixelsFamily
from .gym_adapter import acrobot_physics, highway, lunarlander_physics
from .history import gridnav_memory

_REGISTRY: dict[str, Callable[..., TaskFamily]] = {}


def register_family(name: str, factory: Callable[..., TaskFamily], *, overwrite: bool = False) -> None:
    """Make ``factory(**options)`` available as ``make_family(name, **options)``."""
    if name in _REGISTRY and not overwrite:
        raise TaskError(f"family {name!r} is already registered (pass overwrite=True to replace it)")
    _REGISTRY[name] = factory


def list_families() -> list[str]:
    return sorted(_REGISTRY)


def make_family(name: str, **options: Any) -> TaskFamily:
    """Build a task family by name; ``options`` are the family's keyword options."""
    if name not in _REGISTRY:
        raise TaskError(f"unknown task family {name!r}; known families: {', '.join(list_families())} "
                        "(a family built in code, e.g. with from_gymnasium, must be registered with "
                        "register_family before it can be used by name or a saved run of it loaded)")
    factory = _REGISTRY[name]
    sig = inspect.signature(factory)
    if not any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        unknown = sorted(set(options) - set(sig.parameters))
        if unknown:
            raise TaskError(f"unknown option(s) {unknown} for family {name!r}; "
                            f"known: {sorted(sig.parameters)}")
    return factory(**options)


register_family("gridnav", GridNavFamily)
register_family("gridnav-pixels", GridNavPixelsFamily)
register_family("cartpole-physics", CartPoleFamily)
register_family("bandit", BanditFamily)
register_family("driving", DrivingFamily)
register_family("acrobot-physics", acrobot_physics)
register_family("lunarlander-physics", lunarlander_physics)
register_family("highway", highway)
register_family("gridnav-memory", gridnav_memory)
