"""Hyperparameter and seed sweeps on Ray Tune.

Every trial is a full meta-training run (a run directory of its own, ``DIR/trials/NNN_...``)
followed by the evaluation protocol's adaptation on the held-out tasks: the headline is the
normalized return after the run's own K adaptation steps on ``budget`` random episodes, with
its 95% CI. All trials share the held-out tasks and the R_random / R_oracle references, which
are computed once (``DIR/references.json``). Ray Tune runs the trials in parallel on this
machine, or on the cluster at ``address``; with ``early_stop`` its ASHA scheduler stops trials
whose held-out NR, reported every ``report_every`` iterations, trails the others'.

Resuming: a finished trial leaves ``result.json`` in its directory and is never run again; an
unfinished one continues from its run's checkpoint. Running the same sweep again in the same
``DIR`` (after an interrupt, a crash, a lost node) therefore only does what is missing.

Writes ``DIR/sweep.json`` (one entry per trial: grid values, status, headline NR with CI, wall
time, run directory), ``DIR/sweep.md``, ``DIR/sweep.png`` and ``DIR/best_config.json`` (the best
trial's full config, for ``metadqn train --config``).
"""

from __future__ import annotations

import itertools
import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..baselines import oracle_returns, random_returns
from ..checkpoint import write_atomically
from ..config import ConfigError, apply_overrides, from_dict, to_dict, with_preset
from ..evaluate import EvalConfig, evaluate_adapters
from ..learner import MAMLDQN, MetaConfig
from ..plugins import import_plugin, imported
from ..runs import resume_meta_run, start_meta_run
from ..seeding import derive_seed
from ..tasks import Task, TaskFamily, make_family
from .cluster import ScaleError, connect
from .sweep_report import markdown, plot

# the held-out tasks and references are shared by every trial: these must not vary
FIXED = ("n_train_tasks", "n_test_tasks", "split_seed", "device")
REPORT_SEEDS = 2  # adaptations per held-out task behind the NR a trial reports while training (ASHA's input)


@dataclass(frozen=True)
class SweepConfig:
    """How a sweep runs and scores its trials (the meta-training settings are the grid and base)."""

    samples: int = 1            # trials per grid point (a grid over `seed` is the clearer way to repeat)
    budget: int = 1             # random support episodes behind the headline NR
    eval_seeds: int = 5         # adaptations per held-out task in the headline NR
    report_every: int = 0       # iterations between held-out NR reports to Tune (0: a tenth of the run)
    early_stop: bool = False    # ASHA stops trials whose reported NR trails the others'
    grace_period: int = 0       # iterations before ASHA may stop a trial (0: a quarter of the run)
    cpus_per_trial: float = 1.0
    seed: int = 0               # of the references and the evaluation data

    def __post_init__(self) -> None:
        if min(self.samples, self.budget, self.eval_seeds) < 1:
            raise ConfigError("samples, budget and eval_seeds must be >= 1")
        if min(self.report_every, self.grace_period) < 0 or self.cpus_per_trial <= 0:
            raise ConfigError("report_every and grace_period must be >= 0, cpus_per_trial > 0")


def parse_grid(texts: Sequence[str]) -> dict[str, list[Any]]:
    """``["inner_lr=[0.1,0.5]", "seed=[0,1]"]`` -> ``{"inner_lr": [0.1, 0.5], "seed": [0, 1]}``."""
    grid: dict[str, list[Any]] = {}
    for text in texts:
        key, sep, values = text.partition("=")
        key = key.strip()
        try:
            parsed = json.loads(values) if sep else None
        except json.JSONDecodeError:
            parsed = None
        if not key or not isinstance(parsed, list) or not parsed:
            raise ConfigError(f"--grid {text!r}: expected KEY=[v1,v2,...] with a JSON list, e.g. 'inner_lr=[0.1,0.5]'")
        if key in grid:
            raise ConfigError(f"--grid names {key!r} twice")
        grid[key] = parsed
    return grid


def trials(grid: Mapping[str, Sequence[Any]], samples: int = 1) -> list[dict[str, Any]]:
    """Every grid point x sample, in a fixed order: ``{"name", "values"}`` (name = its directory)."""
    keys = sorted(grid)
    out = []
    for point in itertools.product(*(grid[k] for k in keys)):
        values = dict(zip(keys, point))
        for s in range(samples):
            label = ",".join(f"{k}={json.dumps(v)}" for k, v in values.items()) + (f",sample={s}" if samples > 1 else "")
            name = f"{len(out):03d}_" + re.sub(r"[^A-Za-z0-9._=,-]+", "_", label)[:80]
            out.append({"name": name, "label": label, "values": values, "sample": s})
    return out


def trial_values(family: TaskFamily | str, base: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's config values: its grid point over ``base`` over the family's recommended settings
    (dotted grid keys such as ``net.context`` set a nested value, as ``--set`` does). ``family``: the
    family (its options may change what is recommended) or its recommendation key."""
    given = apply_overrides(dict(base), [f"{k}={json.dumps(v)}" for k, v in values.items()])
    return with_preset(MetaConfig.family_defaults(family, given), given)


def _configs(family: TaskFamily, base: Mapping[str, Any], grid: Mapping[str, Sequence[Any]],
             points: list[dict[str, Any]]) -> list[MetaConfig]:
    fixed = sorted(set(grid) & set(FIXED))
    if fixed:
        raise ConfigError(f"--grid {fixed}: every trial must share the held-out tasks and device; set them with --set")
    configs = [from_dict(MetaConfig, trial_values(family, base, p["values"]), where=f"trial {p['label']}")
               for p in points]
    splits = {(c.n_train_tasks, c.n_test_tasks, c.split_seed) for c in configs}
    if len(splits) > 1:  # e.g. a grid over algo where one algorithm has recommended split sizes for this family
        raise ConfigError(f"the trials would split the tasks differently {sorted(splits)}; set n_train_tasks and "
                          "n_test_tasks with --set so every trial meets the same held-out tasks")
    return configs


def _spec(family: str, family_options: Mapping[str, Any], base: Mapping[str, Any], grid: Mapping[str, Any],
          settings: SweepConfig) -> dict[str, Any]:
    scoring = {k: v for k, v in asdict(settings).items() if k != "cpus_per_trial"}
    return {"family": family, "family_options": dict(family_options), "base": dict(base), "grid": dict(grid),
            "settings": scoring}


def _prepare(out: Path, spec: dict[str, Any], *, overwrite: bool) -> bool:
    """The sweep directory; True when it continues an earlier run of the same sweep."""
    path = out / "sweep_spec.json"
    if path.is_file():
        if json.loads(path.read_text()) == spec:
            return True
        if not overwrite:
            raise ConfigError(f"{out} holds a different sweep (see {path}); use another --out, or --overwrite")
    elif out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"{out} is not empty and holds no sweep; use another --out, or --overwrite")
    if overwrite and out.exists():
        import shutil
        for name in ("trials", "tune", "references.json", "sweep.json", "sweep.md", "sweep.png",
                     "best_config.json", "sweep_spec.json"):
            p = out / name
            if p.exists():
                shutil.rmtree(p) if p.is_dir() else p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec, indent=2))
    return False


def _references(out: Path, family: TaskFamily, tasks: Sequence[Task], settings: SweepConfig) -> dict[str, Any]:
    """R_random and R_oracle of the shared held-out tasks, computed once per sweep."""
    path = out / "references.json"
    if path.is_file():
        return json.loads(path.read_text())
    cfg = EvalConfig(seed=settings.seed)
    rand = random_returns(family, tasks, episodes=cfg.random_episodes, seed=derive_seed(cfg.seed, "random"))
    oracle, exact = oracle_returns(family, tasks, dqn_steps=cfg.oracle_steps,
                                   eval_episodes=cfg.oracle_eval_episodes, seed=derive_seed(cfg.seed, "oracle"))
    refs = {"tasks": [dict(t.params) for t in tasks], "random": rand.tolist(), "oracle": oracle.tolist(),
            "oracle_exact": exact}
    _write(path, refs)
    return refs


def headline(learner: MAMLDQN, refs: Mapping[str, Any], settings: SweepConfig, *,
             seeds: int | None = None) -> dict[str, Any]:
    """Held-out NR after 0 and the run's K adaptation steps on ``settings.budget`` random
    episodes (the evaluation protocol, this learner only): ``{"k", "nr", "nr_k0"}``."""
    if [dict(t.params) for t in learner.test_tasks] != refs["tasks"]:
        raise ScaleError("a trial's held-out tasks differ from the sweep's references")
    k = learner.config.inner_steps
    cfg = EvalConfig(seeds=seeds or settings.eval_seeds, budgets=(settings.budget,), steps=tuple(sorted({0, k})),
                     baselines=(), seed=settings.seed)
    methods, _ = evaluate_adapters(learner.family, {"method": learner.adapter()}, learner.test_tasks,
                                   rand=np.asarray(refs["random"]), oracle=np.asarray(refs["oracle"]), cfg=cfg,
                                   device=learner.device, progress=False)
    nr = methods["method"]["nr"][str(settings.budget)]
    return {"k": k, "nr": nr[str(k)], "nr_k0": nr["0"]}


def _write(path: Path, data: Any) -> None:
    write_atomically(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2)))


def _run_trial(trial: dict[str, Any], common: dict[str, Any]) -> None:
    """One trial, inside a Ray Tune worker: meta-train (or continue), report, score."""
    import torch
    from ray import tune
    torch.set_num_threads(1)
    for name in common["plugins"]:
        import_plugin(name)
    settings = SweepConfig(**common["settings"])
    run = Path(trial["dir"])
    t0 = time.perf_counter()
    if (run / "checkpoint.safetensors").is_file():
        learner = resume_meta_run(run)
    else:
        family = make_family(common["family"], **common["family_options"])
        learner = start_meta_run(run, family, from_dict(MetaConfig, trial_values(family, common["base"], trial["values"])),
                                 overwrite=True)
    started_at = learner.iteration
    total = learner.config.iterations
    every = settings.report_every or max(1, total // 10)

    def report(lrn: MAMLDQN, row: dict[str, Any]) -> None:
        if lrn.iteration % every == 0 and lrn.iteration < total:
            nr = headline(lrn, common["references"], settings,
                          seeds=min(REPORT_SEEDS, settings.eval_seeds))["nr"]["mean"]
            tune.report({"nr": nr, "iteration": lrn.iteration})

    learner.meta_train(out_dir=run, progress=False, callback=report)
    score = headline(learner, common["references"], settings)
    result = {"name": trial["name"], "label": trial["label"], "values": trial["values"], "status": "done",
              **score, "iterations": learner.iteration, "env_steps": learner.env_steps,
              "wall_s": time.perf_counter() - t0, "resumed_at": started_at or None, "run": str(run),
              "config": to_dict(learner.config)}
    _write(run / "result.json", result)
    tune.report({"nr": score["nr"]["mean"], "iteration": learner.iteration, "final": True})


def run_sweep(family: str, grid: Mapping[str, Sequence[Any]], *, out: str | Path,
              base: Mapping[str, Any] | None = None, family_options: Mapping[str, Any] | None = None,
              settings: SweepConfig | None = None, address: str | None = None, overwrite: bool = False,
              verbose: bool = True) -> dict[str, Any]:
    """Meta-train and score every point of ``grid`` (MetaConfig field -> values) on top of
    ``base`` (MetaConfig values), in parallel on Ray Tune; returns ``sweep.json``'s content.
    ``family`` is a registered name: trials run in other processes and rebuild it, importing
    every module given to ``metadqn --import`` (from Python: register your family in a module
    and call :func:`metadqn.plugins.import_plugin` on it first). Running it again in the same
    ``out`` resumes (module docstring)."""
    settings = settings or SweepConfig()
    base, family_options = dict(base or {}), dict(family_options or {})
    out = Path(out).resolve()
    points = trials(grid, settings.samples)
    fam = make_family(family, **family_options)
    configs = _configs(fam, base, grid, points)
    resumed = _prepare(out, _spec(family, family_options, base, grid, settings), overwrite=overwrite)
    split = configs[0]  # the same for every trial (_configs)
    if split.n_test_tasks < 1:
        raise ConfigError("a sweep scores trials on held-out tasks: n_test_tasks must be > 0")
    _, test_tasks = fam.split(split.n_train_tasks, split.n_test_tasks, seed=split.split_seed)
    refs = _references(out, fam, test_tasks, settings)
    for p in points:
        p["dir"] = str(out / "trials" / p["name"])
    todo = [p for p in points if not (Path(p["dir"]) / "result.json").is_file()]
    if verbose:
        done = len(points) - len(todo)
        print(f"sweep {out}: {len(points)} trials" + (f", {done} done before, resuming" if resumed else ""))
    errors: dict[str, str] = {}
    interrupted = False
    if todo:
        iterations = max(c.iterations for c, p in zip(configs, points) if p in todo)
        interrupted = _tune(todo, out, settings, address, errors, iterations=iterations, verbose=verbose, common={
            "family": family, "family_options": family_options, "base": base, "settings": asdict(settings),
            "plugins": imported(), "references": refs})
    return _collect(out, points, grid, settings, errors, interrupted=interrupted)


def _tune(todo: list[dict[str, Any]], out: Path, settings: SweepConfig, address: str | None,
          errors: dict[str, str], *, iterations: int, common: dict[str, Any], verbose: bool) -> bool:
    """Run ``todo`` (the longest runs ``iterations``) on Ray Tune; records each failed trial's
    error; True if some trial neither finished nor was stopped by ASHA (an interrupt: Tune stops
    its trials on SIGINT)."""
    connect(address)
    from ray import tune
    scheduler = None
    stopped: set[str] = set()  # the trials ASHA stopped (an interrupt also ends trials without a final report)
    if settings.early_stop:
        scheduler = _asha_class()(time_attr="iteration", max_t=iterations,
                                  grace_period=settings.grace_period or max(1, iterations // 4))
        scheduler.stopped = stopped
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(_trial_entry, common=common), {"cpu": settings.cpus_per_trial}),
        param_space={"trial": tune.grid_search(todo)},
        tune_config=tune.TuneConfig(metric="nr", mode="max", scheduler=scheduler),
        run_config=tune.RunConfig(storage_path=str(out / "tune"), name=time.strftime("%Y%m%d-%H%M%S"), verbose=0,
                                  callbacks=[_progress_class()(len(todo), stopped)] if verbose else []))
    try:
        grid = tuner.fit()
    except KeyboardInterrupt:
        return True
    for result in grid:
        trial = result.config["trial"]
        if (Path(trial["dir"]) / "result.json").is_file():
            continue
        if result.error is not None:
            errors[trial["name"]] = f"{type(result.error).__name__}: {str(result.error).strip().splitlines()[-1]}"
        elif trial["name"] in stopped:  # its last report is its score
            _write(Path(trial["dir"]) / "result.json", {
                "name": trial["name"], "label": trial["label"], "values": trial["values"], "status": "stopped early",
                "nr": {"mean": result.metrics["nr"], "ci_low": None, "ci_high": None,
                       "note": f"its last report: iteration {result.metrics.get('iteration')}, "
                               f"{min(REPORT_SEEDS, settings.eval_seeds)} adaptations per task"},
                "iterations": result.metrics.get("iteration"), "run": trial["dir"]})
    return len(stopped) + sum(1 for r in grid if (r.metrics or {}).get("final")) + len(errors) < len(todo)


def _asha_class() -> type:
    from ray.tune.schedulers import ASHAScheduler

    class RecordingASHA(ASHAScheduler):
        """ASHA that records whom it stopped (Tune's results do not say why a trial ended)."""

        stopped: set[str]

        def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
            decision = super().on_trial_result(tune_controller, trial, result)
            if decision == self.STOP and not result.get("final"):
                self.stopped.add(trial.config["trial"]["name"])
            return decision

    return RecordingASHA


def _progress_class() -> type:
    from ray.tune import Callback

    class Progress(Callback):
        """One line per trial as it ends (Tune's own tables are off)."""

        def __init__(self, total: int, stopped: set[str]) -> None:
            self.total, self.ended, self.stopped = total, 0, stopped

        def _line(self, trial: Any, how: str) -> None:
            self.ended += 1
            nr = (trial.last_result or {}).get("nr")
            score = "" if nr is None else f", NR {nr:.2f}"
            print(f"  [{self.ended}/{self.total}] {trial.config['trial']['label']}: {how}{score}", flush=True)

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            if (trial.last_result or {}).get("final"):
                self._line(trial, "done")
            elif trial.config["trial"]["name"] in self.stopped:
                self._line(trial, "stopped early")
            else:
                self._line(trial, "interrupted (run the sweep again to continue it)")

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._line(trial, "error (see sweep.json)")

    return Progress


def _trial_entry(config: dict[str, Any], common: dict[str, Any]) -> None:
    _run_trial(config["trial"], common)


def _collect(out: Path, points: list[dict[str, Any]], grid: Mapping[str, Any], settings: SweepConfig,
             errors: Mapping[str, str], *, interrupted: bool) -> dict[str, Any]:
    rows = []
    for p in points:
        path = Path(p["dir"]) / "result.json"
        if path.is_file():
            rows.append(json.loads(path.read_text()))
        else:
            rows.append({"name": p["name"], "label": p["label"], "values": p["values"], "run": p["dir"],
                         "status": "error" if p["name"] in errors else "not finished",
                         **({"error": errors[p["name"]]} if p["name"] in errors else {})})
    done = [r for r in rows if r["status"] == "done"]
    best = max(done, key=lambda r: r["nr"]["mean"]) if done else None
    if best is not None:
        _write(out / "best_config.json", best["config"])
    summary = {"family": json.loads((out / "sweep_spec.json").read_text())["family"], "grid": dict(grid),
               "settings": asdict(settings), "headline": f"NR after K steps on {settings.budget} random episode(s), "
               f"{settings.eval_seeds} adaptations per held-out task, 95% bootstrap CI",
               "complete": all(r["status"] in ("done", "stopped early") for r in rows) and not interrupted,
               "best": None if best is None else best["name"],
               "best_config": None if best is None else str(out / "best_config.json"),
               "trials": sorted(rows, key=_rank)}
    _write(out / "sweep.json", summary)
    (out / "sweep.md").write_text(markdown(summary))
    if done:
        plot(summary, out / "sweep.png")
    return summary


def _rank(row: Mapping[str, Any]) -> tuple[int, float]:
    """Finished trials by NR, then those ASHA stopped (scored earlier, on fewer seeds), then the rest."""
    order = {"done": 0, "stopped early": 1}.get(row["status"], 2)
    return order, -(row.get("nr") or {}).get("mean", -np.inf)


__all__ = ["SweepConfig", "headline", "parse_grid", "run_sweep", "trial_values", "trials"]
