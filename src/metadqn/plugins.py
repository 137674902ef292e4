"""User code given with ``metadqn --import``: modules or files that register families.

Processes that rebuild a family elsewhere (Ray rollout workers, sweep trials) import the
same modules first, so :func:`imported` records what was imported, files by absolute path.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from pathlib import Path

_IMPORTED: list[str] = []


class PluginError(Exception):
    """A module given with --import could not be imported (the message says where)."""


def import_plugin(name: str) -> None:
    """Import ``name``: a module on the Python path (``my_envs``) or a file (``path/to/envs.py``)."""
    try:
        if name.endswith(".py") or os.sep in name:
            path = Path(name).resolve()
            if not path.is_file():
                raise PluginError(f"--import {name}: no such file")
            loaded = sys.modules.get(path.stem)
            if getattr(loaded, "__file__", None) != str(path):  # once: a second run would re-register its families
                spec = importlib.util.spec_from_file_location(path.stem, path)
                module = importlib.util.module_from_spec(spec)
                sys.modules[path.stem] = module
                try:
                    spec.loader.exec_module(module)
                except BaseException:
                    del sys.modules[path.stem]
                    raise
            recorded = str(path)
        else:
            importlib.import_module(name)
            recorded = name
    except PluginError:
        raise
    except Exception as e:  # an error in the user's module: name it and where it happened
        frame = traceback.extract_tb(e.__traceback__)[-1]
        raise PluginError(f"--import {name}: {type(e).__name__}: {e} ({frame.filename}:{frame.lineno})") from None
    if recorded not in _IMPORTED:
        _IMPORTED.append(recorded)


def imported() -> list[str]:
    """The modules and files imported with :func:`import_plugin` in this process, in order."""
    return list(_IMPORTED)


__all__ = ["PluginError", "import_plugin", "imported"]
