"""The ``metadqn`` command line: a thin layer over the Python API.

Errors a user can cause (unknown family, bad parameter, malformed config, corrupt
checkpoint, diverging loss) print one line naming the problem and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Sequence

from .checkpoint import CheckpointError
from .config import ConfigError, apply_overrides, from_dict, load_json, with_preset
from .meta.config import ALGOS, FAMILY_ALGOS
from .plugins import PluginError, import_plugin
from .runlog import TrainingInterrupted
from .scale import ScaleError
from .tasks import MissingExtra, TaskError, UserCodeError, list_families, make_family

USER_ERRORS = (TaskError, ConfigError, CheckpointError, FloatingPointError, FileNotFoundError, ValueError, ScaleError)


def _family_options(args: argparse.Namespace) -> dict[str, Any]:
    if not getattr(args, "family_options", None):
        return {}
    try:
        opts = json.loads(args.family_options)
    except json.JSONDecodeError as e:
        raise ConfigError(f"--family-options must be a JSON object: {e}") from None
    if not isinstance(opts, dict):
        raise ConfigError("--family-options must be a JSON object")
    return opts


def _parse_task(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        task = json.loads(text)
    except json.JSONDecodeError as e:
        raise TaskError(f"--task must be a JSON object of task parameters: {e}") from None
    if not isinstance(task, dict):
        raise TaskError("--task must be a JSON object of task parameters, e.g. '{\"goal\": [3, 5]}'")
    return task


def _config_values(args: argparse.Namespace, explicit: dict[str, Any]) -> dict[str, Any]:
    data = load_json(args.config) if getattr(args, "config", None) else {}
    data.update({k: v for k, v in explicit.items() if v is not None})
    return apply_overrides(data, getattr(args, "set", None) or [])


def _announce(label: str, preset: dict[str, Any]) -> None:
    """Say which preset settings a new run takes (none: say nothing)."""
    def flat(settings: dict[str, Any], prefix: str = "") -> list[str]:  # nested as --set writes them: net.film=True
        return [item for k, v in settings.items()
                for item in (flat(v, f"{prefix}{k}.") if isinstance(v, dict) else [f"{prefix}{k}={v}"])]
    if preset:
        print(f"{label}: " + ", ".join(flat(preset)) + " (override with --set)")


def _workers(args: argparse.Namespace) -> Any:
    """``--rollout-workers N [--address A]`` as RolloutWorkers, or None."""
    from .scale.rollout import RolloutWorkers
    if args.address and not args.rollout_workers:
        raise ConfigError("--address names the Ray cluster of --rollout-workers; give --rollout-workers N too")
    return RolloutWorkers(args.rollout_workers, address=args.address) if args.rollout_workers else None


def _describe(name: str) -> dict[str, Any]:
    try:
        return make_family(name).describe()
    except MissingExtra as e:  # listed, with how to get it
        return {"name": name, "available": False, "reason": str(e), "description": str(e), "parameters": [],
                "observation_space": {"shape": None}, "action_space": {"n": None}}


def cmd_families(args: argparse.Namespace) -> int:
    described = [_describe(name) for name in list_families()]
    if args.json:
        print(json.dumps(described, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table
    table = Table(title="metadqn task families")
    for col in ("family", "description", "parameters (range)", "obs", "actions"):
        table.add_column(col)
    for d in described:
        params = "\n".join(f"{p['name']}: " + (f"{p['choices']}" if "choices" in p else f"[{p['low']:g}, {p['high']:g}]")
                           + (f" x{p['shape']}" if p["shape"] else "") for p in d["parameters"])
        table.add_row(d["name"], d["description"], params, str(d["observation_space"]["shape"]),
                      str(d["action_space"]["n"]))
    Console().print(table)
    return 0


def cmd_dqn(args: argparse.Namespace) -> int:
    from .dqn_agent import DQN, DQNConfig
    from .runs import prepare, write_config
    family = make_family(args.family, **_family_options(args))
    values = _config_values(args, {"total_steps": args.steps, "seed": args.seed, "device": args.device})
    recommended = DQNConfig.family_defaults(family.name, values)
    _announce(f"recommended for {family.name}", recommended)
    config = from_dict(DQNConfig, with_preset(recommended, values))
    agent = DQN(family, _parse_task(args.task), config)
    out = prepare(args.out, overwrite=args.overwrite)
    write_config(out, kind="dqn", family=family, config=agent.config, tasks={"tasks": agent.tasks})
    agent.learn(out_dir=out, progress=not args.quiet)
    returns = agent.evaluate(episodes=args.eval_episodes, seed=config.seed)
    mean = float(returns.mean())
    print(f"greedy return over {returns.numel()} episodes: {mean:.1f} ± {float(returns.std()):.1f} "
          f"({config.total_steps} env steps, {agent.train_seconds:.0f} s)")
    print(f"checkpoint: {out / 'checkpoint.safetensors'}  metrics: {out / 'metrics.jsonl'}")
    return 0


def _print_adaptation(summary: dict[str, Any], label: str) -> None:
    steps = list(summary["return"])
    line = "  ".join(f"k={k}: {summary['return'][k]:.2f}" for k in steps)
    print(f"{label} greedy return  {line}")
    if "nr" in summary:
        print(f"{label} normalized     " + "  ".join(f"k={k}: {summary['nr'][k]:.2f}" for k in steps))


RESUME_FIXED = ("family", "family_options", "config", "set", "algo", "seed")


def cmd_train(args: argparse.Namespace) -> int:
    from .learner import MetaConfig, summarize
    from .runs import resume_meta_run, start_meta_run
    from .scale.rollout import check_family, rollout_workers
    workers = _workers(args)
    if args.resume:
        given = [f"--{name.replace('_', '-')}" for name in RESUME_FIXED if getattr(args, name, None)]
        if given:
            raise ConfigError(f"--resume continues {args.out} with its saved settings; {', '.join(given)} cannot "
                              "change them (start a new run in another --out instead)")
        learner = resume_meta_run(args.out, iterations=args.iterations, device=args.device)
        print(f"resuming {args.out} at iteration {learner.iteration}/{learner.config.iterations}")
    else:
        family = make_family(args.family or "gridnav", **_family_options(args))
        values = _config_values(args, {"algo": args.algo, "iterations": args.iterations, "seed": args.seed,
                                       "device": args.device})
        recommended = MetaConfig.family_defaults(family, values)
        _announce(f"recommended for {family.recommendation}", recommended)
        values = with_preset(recommended, values)
        config = from_dict(MetaConfig, values)
        _announce(f"{config.algo} defaults", MetaConfig.algo_defaults(values))
        if workers is not None:
            check_family(family)
        learner = start_meta_run(args.out, family, config, overwrite=args.overwrite)
    out = Path(args.out)
    if workers is not None:
        print(f"stepping the environments on {workers.n} Ray rollout worker(s)")
    with rollout_workers(learner.family, workers):
        learner.meta_train(out_dir=out, progress=not args.quiet)  # on the pool entered above
        print(f"checkpoint: {out / 'checkpoint.safetensors'}  metrics: {out / 'metrics.jsonl'}")
        if learner.best is not None:
            print(f"kept the parameters of iteration {learner.kept_iteration} (keep_best_every: best adapted return "
                  f"on the training tasks, {learner.best.score:.2f})")
        if learner.test_tasks:
            k = learner.config.inner_steps
            res = learner.adaptation_returns(learner.test_tasks, steps=sorted({0, 1, k}),
                                             runs=learner.config.eval_runs, seed=learner.config.seed)
            _print_adaptation(summarize(res), f"held-out ({len(learner.test_tasks)} tasks)")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from .scale.sweep import SweepConfig, parse_grid, run_sweep
    from .scale.sweep_report import nr_cell
    grid = parse_grid(args.grid or [])
    if not grid:
        raise ConfigError("a sweep needs at least one --grid KEY=[v1,v2,...]")
    base = _config_values(args, {"algo": args.algo, "iterations": args.iterations, "device": args.device})
    settings = SweepConfig(samples=args.samples, budget=args.budget, eval_seeds=args.eval_seeds,
                           report_every=args.report_every, early_stop=args.early_stop, grace_period=args.grace_period,
                           cpus_per_trial=args.cpus_per_trial)
    summary = run_sweep(args.family or "gridnav", grid, out=args.out, base=base, family_options=_family_options(args),
                        settings=settings, address=args.address, overwrite=args.overwrite, verbose=not args.quiet)
    from rich.console import Console
    from rich.table import Table
    keys = sorted(grid)
    table = Table(title=f"sweep on {summary['family']}: {summary['headline']}")
    for col in (*keys, "status", "NR at K [95% CI]", "wall s"):
        table.add_column(col)
    for r in summary["trials"]:
        table.add_row(*(json.dumps(r["values"][k]) for k in keys), r["status"] + (f": {r['error']}" if "error" in r else ""),
                      nr_cell(r), f"{r['wall_s']:.0f}" if r.get("wall_s") else "—")
    Console().print(table)
    out = Path(args.out)
    print(f"results: {out / 'sweep.json'}  table: {out / 'sweep.md'}  plot: {out / 'sweep.png'}")
    if summary["best_config"]:
        print(f"best: {summary['best']}; train it with: metadqn train --config {summary['best_config']} --out RUN")
    if not summary["complete"]:
        print("not complete: run the same command again to finish the sweep", file=sys.stderr)
        return 1
    return 0


def cmd_adapt(args: argparse.Namespace) -> int:
    from .learner import MAMLDQN
    from .runs import warn_if_edited
    learner = MAMLDQN.load(Path(args.run), device=args.device)
    warn_if_edited(args.run, learner)
    task = learner.family.validate_task(_parse_task(args.task) or learner.family.default_task())
    steps = args.steps if args.steps is not None else learner.config.inner_steps
    if args.episodes < 1 or steps < 0:
        raise ConfigError(f"--episodes must be >= 1 and --steps >= 0, got {args.episodes} and {steps}")
    returns = learner.adaptation_returns([task], steps=sorted({0, steps}), episodes=args.episodes, runs=1,
                                         eval_episodes=args.eval_episodes, seed=args.seed)["return"]
    r0, r1 = float(returns[0].mean()), float(returns[steps].mean())
    print(f"task {json.dumps(dict(task.params))}")
    if learner.adapter().uses_steps:
        print(f"greedy return before adaptation: {r0:.2f}")
    else:
        print(f"greedy return after inferring the task from {args.episodes} episode(s) (k=0): {r0:.2f}")
    print(f"greedy return after {steps} step(s) on {args.episodes} episode(s): {r1:.2f}")
    oracle = learner.family.oracle_return(task)
    if oracle is not None:
        print(f"oracle return: {oracle:.2f}")
    return 0


def _int_list(text: str, name: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"{name} must be comma-separated integers, got {text!r}") from None
    if not values:
        raise ConfigError(f"{name} must list at least one integer")
    return values


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import EvalConfig, evaluate
    from .learner import MAMLDQN
    from .report import headline, keep_earlier_report, write_report
    from .runs import more_test_tasks, warn_if_edited
    run = Path(args.run)
    learner = MAMLDQN.load(run, device=args.device)
    warn_if_edited(run, learner)
    baselines = tuple(b.strip() for b in args.baselines.split(",") if b.strip()) if args.baselines else ()
    config = EvalConfig(seeds=args.seeds, budgets=_int_list(args.budgets, "--budgets"),
                        steps=_int_list(args.steps, "--steps"), eval_episodes=args.eval_episodes,
                        baselines=baselines, multitask_steps=args.multitask_steps, oracle_steps=args.oracle_steps,
                        seed=args.seed, online=args.online,
                        online_budgets=_int_list(args.online_budgets, "--online-budgets"),
                        online_every=args.online_every, online_steps=args.online_steps,
                        online_warm=args.online_warm, safeguard=args.safeguard,
                        baseline_batch=args.baseline_batch)
    tasks = more_test_tasks(learner, args.n_test_tasks)
    compare: dict[str, MAMLDQN] = {}
    for other_run in (r.strip() for r in (args.compare or "").split(",") if r.strip()):
        other = MAMLDQN.load(Path(other_run), device=args.device)
        name = other.config.algo if other.config.algo not in compare and other.config.algo != learner.config.algo \
            else f"{other.config.algo} ({Path(other_run).name})"
        compare[name] = other
    from .scale.rollout import rollout_workers
    workers = _workers(args)
    with rollout_workers(learner.family, workers):
        result = evaluate(learner, tasks, config=config, progress=not args.quiet, compare=compare)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
    report_dir = run if run.is_dir() else run.parent
    earlier = keep_earlier_report(report_dir)
    if earlier is not None:
        print(f"metadqn: note: the earlier evaluation's report in {report_dir} is kept in {earlier}", file=sys.stderr)
    path = write_report(result, report_dir)
    print(f"report: {path}")
    for line in headline(result):
        print(f"  {line}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    quiet = ["--quiet"] if args.quiet else []
    sets = [x for kv in args.set or [] for x in ("--set", kv)]
    own = FAMILY_ALGOS.get(args.family)  # the family's own default algorithm (blr on the bandit) is shown too
    algos = ("maml", "encoder") + ((own,) if own and own not in ("context", "maml", "encoder") else ())
    others = {algo: str(Path(args.out) / algo) for algo in algos}
    print(f"metadqn demo on {args.family}: meta-training context MAML (a task context adapted on a model loss), "
          "whole-network MAML and the set-encoder baseline"
          + (f", and {own}, {args.family}'s own default," if own in others else ",")
          + " then evaluating them against the baselines and the information limit on held-out tasks, frozen "
          "and online")
    if args.jobs < 1:
        print(f"metadqn demo: error: --jobs must be >= 1, got {args.jobs}", file=sys.stderr)
        return 2
    top = [x for m in args.imports for x in ("--import", m)]  # the options before the command, passed on
    top += ["--threads", str(args.threads)] if args.threads is not None else []

    def train(algo: str, out: str, *extra: str) -> list[str]:
        return [*top, "train", "--family", args.family, "--algo", algo, "--out", out, "--overwrite",
                "--iterations", str(args.iterations), *sets, *extra]
    # The baselines' runs train beside context MAML in a second process where there are two cores
    # (the networks are small: one thread each is fastest), quietly; their errors still print.
    background = None
    if args.jobs > 1:
        import multiprocessing
        background = multiprocessing.get_context("spawn").Process(
            target=_train_in_turn, args=([train(algo, out, "--quiet") for algo, out in others.items()],))
        background.start()
        print(f"training {', '.join(others)} in a second process (--jobs 1: one after another)")
    runs = [("context", args.out)] + ([] if background else list(others.items()))
    for algo, out in runs:
        code = main(train(algo, out, *quiet))
        if code:
            if background:
                background.terminate()
            return code
    if background:
        background.join()
        if background.exitcode:
            return background.exitcode
    # warm online re-adaptation (the previous end competes with a fresh start): on gridnav it measured
    # better for both methods with a context (context MAML 0.91 vs 0.87, the encoder 0.957 vs 0.949)
    return main(["evaluate", args.out, "--compare", ",".join(others.values()), "--online", "--online-warm",
                 "--seeds", str(args.seeds), *quiet])


def _train_in_turn(argvs: list[list[str]]) -> None:
    """Run ``metadqn`` once per argv, stopping at the first failure (the demo's second process)."""
    for argv in argvs:
        code = main(argv)
        if code:
            sys.exit(code)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="metadqn", description="Meta-reinforcement learning with MAML-DQN")
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="import a module or .py file first (repeatable): where your own families are "
                             "registered with register_family; also needed to evaluate or adapt their runs")
    parser.add_argument("--debug", action="store_true",
                        help="full tracebacks for errors in your own environments (also METADQN_DEBUG=1)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (default 1, or $METADQN_THREADS): the small networks here run "
                             "fastest single-threaded; raise it for large CNNs")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("families", help="list task families and their parameters")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_families)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--family", default="cartpole-physics", help="task family (see `metadqn families`; train: gridnav)")
        p.add_argument("--family-options", help="JSON object of family options, e.g. '{\"obstacles\": 8}'")
        p.add_argument("--config", help="JSON file with config values")
        p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one config value (repeatable)")
        p.add_argument("--seed", type=int, default=None)
        p.add_argument("--device", default=None, help="cpu (default), cuda, cuda:N, or auto: cuda where this machine has it")
        p.add_argument("--out", required=True, help="run directory")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        p.add_argument("--overwrite", action="store_true", help="replace a run that --out already holds")

    p = sub.add_parser("dqn", help="train single-task DQN")
    common(p)
    p.add_argument("--task", help="task parameters as JSON (default: the family's default task)")
    p.add_argument("--steps", type=int, default=None, help="environment steps (config total_steps)")
    p.add_argument("--eval-episodes", type=int, default=20)
    p.set_defaults(func=cmd_dqn)

    p = sub.add_parser("train", help="meta-train MAML-DQN / FOMAML / Reptile / Meta-SGD")
    common(p)
    p.set_defaults(family=None)
    p.add_argument("--algo", choices=list(ALGOS), default=None,
                   help="context (context MAML on a model loss: the default, except on a family with its own, printed "
                        "with its recommended settings — blr on the bandit and preference) | maml | fomaml | reptile | metasgd | "
                        "encoder (a set encoder infers the context) | blr (the context is a linear model's exact "
                        "posterior mean)")
    p.add_argument("--iterations", type=int, default=None, help="meta-updates (config iterations)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--rollout-workers", type=int, default=0, metavar="N",
                   help="step the environments of a from_gymnasium family (slow simulators) on N Ray actors; "
                        "same transitions as 0 (default: all in this process). Needs metadqn[ray]")
    p.add_argument("--address", default=None,
                   help="Ray cluster for --rollout-workers ('auto', HOST:PORT, ray://HOST:10001; default: a local one)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sweep", help="meta-train and score a grid of settings in parallel on Ray Tune")
    p.add_argument("--family", default=None, help="task family (default gridnav)")
    p.add_argument("--family-options", help="JSON object of family options")
    p.add_argument("--grid", action="append", metavar="KEY=[V1,V2]",
                   help="a config field and the values to try, e.g. 'inner_lr=[0.1,0.5]' or 'seed=[0,1,2]' (repeatable; "
                        "the trials are every combination)")
    p.add_argument("--config", help="JSON file with the config values every trial starts from")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="a config value of every trial (repeatable)")
    p.add_argument("--algo", choices=list(ALGOS), default=None)
    p.add_argument("--iterations", type=int, default=None, help="meta-training iterations of every trial")
    p.add_argument("--samples", type=int, default=1, help="trials per grid point")
    p.add_argument("--budget", type=int, default=1, help="random support episodes behind the headline NR")
    p.add_argument("--eval-seeds", type=int, default=5, help="adaptations per held-out task in the headline NR")
    p.add_argument("--early-stop", action="store_true",
                   help="ASHA: stop trials whose held-out NR (reported every --report-every iterations) trails")
    p.add_argument("--report-every", type=int, default=0, help="iterations between NR reports (0: a tenth of the run)")
    p.add_argument("--grace-period", type=int, default=0,
                   help="iterations before ASHA may stop a trial (0: a quarter of the run)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--address", default=None, help="Ray cluster ('auto', HOST:PORT, ray://HOST:10001; default: local)")
    p.add_argument("--device", default=None, help="cpu (default), cuda, cuda:N, or auto: cuda where this machine has it")
    p.add_argument("--out", required=True, help="sweep directory (running the same sweep again there resumes it)")
    p.add_argument("--overwrite", action="store_true", help="replace a different sweep that --out holds")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("adapt", help="adapt a meta-trained Q-network to one task")
    p.add_argument("run", help="run directory (or checkpoint file) written by `metadqn train`")
    p.add_argument("--task", help="task parameters as JSON, e.g. '{\"goal\": [3, 5]}'")
    p.add_argument("--episodes", type=int, default=1, help="episodes of new-task data")
    p.add_argument("--steps", type=int, default=None, help="gradient steps (default: the run's inner_steps)")
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or auto (default: the device it was trained on)")
    p.set_defaults(func=cmd_adapt)

    p = sub.add_parser("evaluate", help="held-out adaptation of a run vs baselines: JSON, report.md, plots")
    p.add_argument("run", help="run directory (or checkpoint file) written by `metadqn train`")
    p.add_argument("--baselines", default="multitask,scratch,oracle",
                   help="comma-separated subset of multitask,scratch,oracle ('' for none)")
    p.add_argument("--n-test-tasks", type=int, default=None, help="held-out tasks (default: the run's own)")
    p.add_argument("--compare", default=None, metavar="RUN[,RUN...]",
                   help="other runs (same family) evaluated beside this one on its held-out tasks, e.g. MAML beside "
                        "context MAML")
    p.add_argument("--seeds", type=int, default=5, help="independent adaptations per task")
    p.add_argument("--budgets", default="1,2,5,10", help="new-task episodes, comma-separated")
    p.add_argument("--steps", default="0,1,3,10", help="gradient steps, comma-separated")
    p.add_argument("--eval-episodes", type=int, default=5, help="greedy episodes per adapted policy")
    p.add_argument("--multitask-steps", type=int, default=None,
                   help="env steps of the multi-task DQN (default: as many as meta-training used)")
    p.add_argument("--oracle-steps", type=int, default=30_000,
                   help="per-task DQN env steps where the family knows no exact optimum")
    p.add_argument("--online", action="store_true",
                   help="also keep adapting during the evaluation episode (context methods; reported apart)")
    p.add_argument("--online-budgets", default="0,1", help="support episodes before the online episode")
    p.add_argument("--rollout-workers", type=int, default=0, metavar="N",
                   help="step a from_gymnasium family's envs (every method, baseline and oracle) on N Ray actors")
    p.add_argument("--address", default=None, help="Ray cluster for --rollout-workers (default: a local one)")
    p.add_argument("--online-every", type=int, default=1, help="env steps between online re-adaptations")
    p.add_argument("--online-steps", type=int, default=0,
                   help="adaptation steps of each online re-adaptation (default 0: each method's trained K)")
    p.add_argument("--online-warm", action="store_true",
                   help="each online re-adaptation also starts from the previous one's end (not only the prior)")
    p.add_argument("--baseline-batch", type=int, default=0,
                   help="transitions per support episode in the baselines' TD steps (0: every transition once)")
    p.add_argument("--safeguard", action="store_true",
                   help="gradient methods keep adapted parameters only where their support loss fell")
    p.add_argument("--json", help="also write the results JSON here")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or auto (default: the device it was trained on)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("demo", help="meta-train on the default family, evaluate against baselines, write a report")
    p.add_argument("--family", default="gridnav")
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override one meta-training config value (both runs)")
    p.add_argument("--out", default="runs/demo", help="run directory (the demo replaces its own earlier run)")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                   help="processes for the three meta-trainings (default: 2 where there are 2 cores)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_demo)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Our own warnings (a run loaded on another device, ...) as one ``metadqn: note:`` line;
    everyone else's as Python shows them."""
    if "metadqn" in str(filename) and issubclass(category, UserWarning):
        print(f"metadqn: note: {message}", file=sys.stderr)
    else:
        _default_show_warning(message, category, filename, lineno, file, line)


_default_show_warning = warnings.showwarning


def main(argv: Sequence[str] | None = None) -> int:
    warnings.showwarning = _show_warning
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        for name in args.imports:
            import_plugin(name)
    except PluginError as e:
        print(f"metadqn: error: {e}", file=sys.stderr)
        return 2
    import torch
    try:
        threads = args.threads if args.threads is not None else int(os.environ.get("METADQN_THREADS", "1"))
    except ValueError:
        print(f"metadqn: error: METADQN_THREADS must be an integer, got {os.environ['METADQN_THREADS']!r}",
              file=sys.stderr)
        return 2
    torch.set_num_threads(max(1, threads))
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as e:
        print(f"metadqn {args.command}: error: {e}", file=sys.stderr)
        return 2
    except UserCodeError as e:
        if args.debug or os.environ.get("METADQN_DEBUG") == "1":
            raise
        print(f"metadqn {args.command}: error in your environment: {e} (--debug for the traceback)",
              file=sys.stderr)
        return 2
    except TrainingInterrupted as stop:
        where = ""
        if stop.checkpoint is not None and stop.resumable:
            where = f"; checkpoint saved: continue with `metadqn train --out {stop.checkpoint.parent} --resume`"
        elif stop.checkpoint is not None:
            where = f"; the network so far is saved in {stop.checkpoint}"
        unit = "iteration" if stop.resumable else "env step"
        print(f"metadqn {args.command}: interrupted at {unit} {stop.iteration}{where}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"metadqn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
