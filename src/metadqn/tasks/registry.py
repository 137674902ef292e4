"""The family registry: ``make_family(name, **options)`` and ``list_families()``."""

from __future__ import annotations

import inspect
import warnings
from typing import Any, Callable

from .bandit import BanditFamily
from .base import TaskError, TaskFamily
from .cartpole import CartPoleFamily
from .driving import DrivingFamily
from .gridnav import GridNavFamily, GridNavPixelsFamily
from .gym_adapter import acrobot_physics, highway, lunarlander_physics
from .history import gridnav_history, gridnav_memory
from .preference import PreferenceFamily

_REGISTRY: dict[str, Callable[..., TaskFamily]] = {}


def register_family(name: str, factory: Callable[..., TaskFamily], *, overwrite: bool = False) -> None:
    """Make ``factory(**options)`` available as ``make_family(name, **options)``."""
    if name in _REGISTRY and not overwrite:
        raise TaskError(f"family {name!r} is already registered (pass overwrite=True to replace it)")
    _REGISTRY[name] = factory


_PLUGINS_LOADED = False


def _load_plugins() -> None:
    """Families that installed packages declare in the ``metadqn.families`` entry-point group
    (``name = "package.module:factory"``), registered on first use; one that fails to load is
    reported and skipped."""
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    from importlib.metadata import entry_points
    for ep in entry_points(group="metadqn.families"):
        if ep.name in _REGISTRY:
            continue
        try:
            register_family(ep.name, ep.load())
        except Exception as e:  # a broken plugin must not break the built-in families
            warnings.warn(f"metadqn: family plugin {ep.name!r} ({ep.value}) failed to load: "
                          f"{type(e).__name__}: {e}", stacklevel=2)


def list_families() -> list[str]:
    _load_plugins()
    return sorted(_REGISTRY)


# Options a built-in family gained after runs had been saved, with the value those runs were made
# with: a saved run that lacks one is rebuilt as it was (preference saw its arena from above until
# it gained the egocentric view, now its default).
_SAVED_BEFORE: dict[str, dict[str, Any]] = {"preference": {"egocentric": False}}


def saved_family(name: str, options: dict[str, Any]) -> TaskFamily:
    """The family a saved run was made with: ``make_family(name, **options)``, where the options
    a built-in family gained since the run was saved keep the value the run was made with."""
    return make_family(name, **{**_SAVED_BEFORE.get(name, {}), **options})


def make_family(name: str, **options: Any) -> TaskFamily:
    """Build a task family by name; ``options`` are the family's keyword options."""
    if name not in _REGISTRY:
        _load_plugins()
    if name not in _REGISTRY:
        raise TaskError(f"unknown task family {name!r}; known families: {', '.join(list_families())} "
                        "(your own family: register it with register_family in a module and pass "
                        "`metadqn --import MODULE ...`, or declare it in the `metadqn.families` entry points "
                        "of an installed package)")
    factory = _REGISTRY[name]
    sig = inspect.signature(factory)
    if not any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        unknown = sorted(set(options) - set(sig.parameters))
        if unknown:
            raise TaskError(f"unknown option(s) {unknown} for family {name!r}; "
                            f"known: {sorted(sig.parameters)}")
    try:
        family = factory(**options)
    except TypeError as e:
        if "unexpected keyword argument" not in str(e):
            raise
        raise TaskError(f"family {name!r}: {e}") from None
    family.name = name  # the registered name is the one runs save and reload by
    return family


register_family("gridnav", GridNavFamily)
register_family("gridnav-pixels", GridNavPixelsFamily)
register_family("cartpole-physics", CartPoleFamily)
register_family("bandit", BanditFamily)
register_family("driving", DrivingFamily)
register_family("acrobot-physics", acrobot_physics)
register_family("lunarlander-physics", lunarlander_physics)
register_family("highway", highway)
register_family("gridnav-memory", gridnav_memory)
register_family("gridnav-history", gridnav_history)
register_family("preference", PreferenceFamily)
