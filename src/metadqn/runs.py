"""Run directories: what lives in one, how one is started, resumed and described.

A run directory holds ``config.json`` (the family, its options, the fully resolved config
and the tasks — one schema for every kind of run), ``metrics.jsonl``, TensorBoard logs in
``tb/`` and ``checkpoint.safetensors``. A run is never overwritten by accident: starting
one in a directory that already holds a run needs ``overwrite=True``.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from .config import ConfigError, to_dict
from .learner import MAMLDQN, MetaConfig
from .tasks import Task, TaskFamily

RUN_FILES = ("config.json", "metrics.jsonl", "checkpoint.safetensors", "tb")


def prepare(out: str | Path, *, overwrite: bool = False) -> Path:
    """An empty (or new) directory for a new run; refuses a directory that holds a run
    unless ``overwrite`` (then the run's own files are removed, nothing else)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file, not a run directory")
    held = [name for name in RUN_FILES if (out / name).exists()]
    if held and not overwrite:
        raise ConfigError(f"{out} already holds a run ({', '.join(held)}); continue it with --resume, "
                          "or replace it with --overwrite")
    for name in held:
        path = out / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_config(out: str | Path, *, kind: str, family: TaskFamily, config: Any,
                 tasks: Mapping[str, Sequence[Task]]) -> None:
    """``config.json``: ``{"kind", "family", "family_options", "config", <task lists>}``."""
    data = {"kind": kind, "family": family.name, "family_options": family.options, "config": to_dict(config),
            **{name: [dict(t.params) for t in ts] for name, ts in tasks.items()}}
    (Path(out) / "config.json").write_text(json.dumps(data, indent=2))


def start_meta_run(out: str | Path, family: TaskFamily, config: MetaConfig, *, overwrite: bool = False) -> MAMLDQN:
    """A new meta-training run in ``out``: the learner with the config's split and ``config.json``."""
    out = prepare(out, overwrite=overwrite)
    learner = MAMLDQN(family, config)
    learner.train_tasks, learner.test_tasks = learner.split()
    write_config(out, kind="maml-dqn", family=family, config=learner.config,
                 tasks={"train_tasks": learner.train_tasks, "test_tasks": learner.test_tasks})
    return learner


def resume_meta_run(out: str | Path, *, iterations: int | None = None, device: str | None = None) -> MAMLDQN:
    """The run in ``out`` as its checkpoint left it; ``iterations`` may extend it (recorded
    in ``config.json``). Nothing else of a run's settings can change on resume."""
    out = Path(out)
    learner = MAMLDQN.load(out / "checkpoint.safetensors", device=device)
    if iterations is not None:
        if iterations < learner.iteration:
            raise ConfigError(f"{out} is at iteration {learner.iteration}; --iterations {iterations} would go back")
        learner.config = replace(learner.config, iterations=iterations)
    warn_if_edited(out, learner)
    write_config(out, kind="maml-dqn", family=learner.family, config=learner.config,
                 tasks={"train_tasks": learner.train_tasks, "test_tasks": learner.test_tasks})
    return learner


def warn_if_edited(out: str | Path, learner: MAMLDQN) -> None:
    """Say so when ``config.json`` no longer matches the checkpoint: the checkpoint's settings
    are the ones that trained the network, and the ones used."""
    path = Path(out) / "config.json"
    if not path.is_file():
        return
    try:
        saved = json.loads(path.read_text()).get("config", {})
    except (json.JSONDecodeError, AttributeError):
        saved = None
    current = {k: v for k, v in to_dict(learner.config).items() if k not in ("iterations", "device")}
    # a field the record lacks was added to metadqn after the run was made: not an edit
    if saved is None or any(k in saved and saved[k] != v for k, v in current.items()):
        print(f"metadqn: note: {path} differs from the checkpoint's settings; the checkpoint's are used "
              "(config.json is a record, not an input; start a new run to change settings)", file=sys.stderr)


def more_test_tasks(learner: MAMLDQN, n: int | None) -> list[Task]:
    """The run's held-out tasks, or ``n`` of them drawn with the run's split seed (the split
    draws training tasks first, so a larger test set keeps the same training tasks)."""
    if n is None or n == len(learner.test_tasks):
        return list(learner.test_tasks)
    train, test = learner.family.split(len(learner.train_tasks), n, seed=learner.config.split_seed)
    if [t.key() for t in train] != [t.key() for t in learner.train_tasks]:
        raise ConfigError("this run's training tasks do not come from its split seed; cannot draw more test tasks")
    return test


__all__ = ["RUN_FILES", "more_test_tasks", "prepare", "resume_meta_run", "start_meta_run", "warn_if_edited",
           "write_config"]
