"""The fast-adaptation protocol: how well does each method do on a held-out task after a
small budget of new-task data and k adaptation steps?

For every held-out task and seed, each method (an :class:`~metadqn.adapters.Adapter`)

1. starts from its own prior state (meta-learned, multi-task, random, ...);
2. collects ``budget`` episodes on the new task with its own exploration;
3. takes k adaptation steps on that data with its own settings;
4. is evaluated greedily (``eval_episodes`` episodes), giving a return R.

Steps 1–3 are the one adaptation path (:mod:`metadqn.adaptation`) that meta-training uses
too. NR = (R − R_random) / (R_oracle − R_random) per task; means come with 95% bootstrap
confidence intervals over tasks and seeds. The baselines' step sizes are tuned on
*training* tasks only. Every setting lands in the result JSON (``"config"``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from .adaptation import adaptation_curve, online_curve
from .adapters import Adapter, GradientAdapter
from .baselines import finetune_adapter, oracle_returns, random_returns, train_multitask, tune
from .config import to_dict
from .dqn_agent import DQNConfig
from .learner import MAMLDQN
from .limits import limit_returns
from .nets import build_qnet, init_params
from .progress import ProgressBar
from .seeding import derive_seed
from .stats import interval, normalized
from .tasks import Task, TaskFamily, without_time
from .td import TDLoss

BASELINES = ("multitask", "scratch", "oracle")


@dataclass
class EvalConfig:
    """The evaluation protocol's settings, the baselines' included (defaults: 5 seeds, budgets
    of 1/2/5/10 episodes, 0/1/3/10 adaptation steps)."""

    seeds: int = 5                         # independent adaptations per held-out task
    budgets: tuple[int, ...] = (1, 2, 5, 10)   # new-task episodes
    steps: tuple[int, ...] = (0, 1, 3, 10)     # adaptation steps
    eval_episodes: int = 5                 # greedy episodes per adapted policy
    baselines: tuple[str, ...] = BASELINES
    lr_grid: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0)   # baselines' step sizes to tune
    eps_grid: tuple[float, ...] = (0.1, 1.0)                   # multitask's exploration to tune
    tune_tasks: int = 10                   # training tasks used to tune the baselines
    tune_runs: int = 2                     # adaptations per tuning task
    tune_budget: int = 1                   # new-task episodes while tuning
    tune_eval_episodes: int = 3            # greedy episodes per tuned policy
    baseline_batch: int = 0                # transitions per support episode in the baselines' TD steps (0: all, once)
    multitask_steps: int | None = None     # env steps of the multi-task DQN (None: as meta-training)
    multitask_envs: int = 8                # envs per task of the multi-task DQN (at least the learner's)
    multitask_batch: int = 32              # its minibatch per update
    multitask_target_update: int = 200     # its updates between target copies
    multitask_buffer_per_env: int = 2000   # its replay capacity per env and task
    oracle_steps: int = 30_000             # per-task DQN env steps where no exact optimum is known
    oracle_eval_episodes: int = 10         # greedy episodes per per-task DQN
    random_episodes: int = 50              # episodes of the R_random estimate where not exact
    online: bool = False                   # also adapt during the evaluation episode (context methods)
    online_budgets: tuple[int, ...] = (0, 1)   # support episodes before online evaluation (0: none)
    online_every: int = 1                  # env steps between online re-adaptations
    online_steps: int = 0                  # adaptation steps of each online re-adaptation (0: each method's trained K)
    online_warm: bool = False              # each online re-adaptation also starts from the previous one's end
    safeguard: bool = False                # gradient adapters keep θ' only where their support loss fell
    bootstrap_reps: int = 2000
    seed: int = 0

    @property
    def data_seed(self) -> int:
        """The one seed of every method's new-task data and evaluation episodes (and of the
        limits, computed from the same data): paired comparisons across methods and budgets."""
        return derive_seed(self.seed, "evaluate")

    def __post_init__(self) -> None:
        self.budgets = tuple(int(b) for b in self.budgets)
        self.online_budgets = tuple(int(b) for b in self.online_budgets)
        if self.online and (not self.online_budgets or min(self.online_budgets) < 0 or self.online_every < 1
                            or self.online_steps < 0):
            raise ValueError("online evaluation needs online_budgets >= 0, online_every >= 1 and online_steps >= 0")
        self.steps = tuple(sorted(set(int(k) for k in self.steps)))
        self.baselines = tuple(self.baselines)
        if self.baseline_batch < 0:
            raise ValueError(f"baseline_batch must be >= 0, got {self.baseline_batch}")
        for name in ("seeds", "eval_episodes", "tune_tasks", "tune_runs", "tune_budget", "tune_eval_episodes",
                     "multitask_envs", "multitask_batch", "multitask_target_update", "multitask_buffer_per_env",
                     "oracle_steps", "oracle_eval_episodes", "random_episodes", "bootstrap_reps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.budgets or min(self.budgets) < 1:
            raise ValueError(f"budgets must be episode counts >= 1, got {list(self.budgets)}")
        if not self.steps or min(self.steps) < 0:
            raise ValueError(f"steps must be adaptation-step counts >= 0, got {list(self.steps)}")
        unknown = set(self.baselines) - set(BASELINES)
        if unknown:
            raise ValueError(f"unknown baseline(s) {sorted(unknown)}; choose from {list(BASELINES)}")


def evaluate(learner: MAMLDQN, test_tasks: Sequence[Task] | None = None, baselines: Sequence[str] | None = None,
             config: EvalConfig | None = None, progress: bool | None = None,
             compare: Mapping[str, MAMLDQN] | None = None, **overrides: Any) -> dict[str, Any]:
    """Run the protocol for a meta-trained ``learner``, the chosen baselines and the learners
    in ``compare`` (name → learner, e.g. whole-network MAML beside context MAML; same family,
    none trained on a test task) on ``test_tasks`` (default: the learner's held-out tasks).
    The baselines get ``learner``'s meta-training budget.

    Returns the JSON-ready result described in the README (``methods.NAME.nr.BUDGET.K`` →
    mean and 95% CI; ``methods.NAME.gain`` → NR(k) − NR(0) with CIs; ``references.limit`` →
    the information limit where the family computes it), plus per-task gains at the
    smallest budget.
    """
    cfg = config or EvalConfig()
    if baselines is not None:
        overrides["baselines"] = tuple(baselines)
    if overrides:
        cfg = replace(cfg, **overrides)
    # the baselines, random and oracle returns and the limits use the family itself; each learner is
    # evaluated on the view of it its networks read (with_time where its config has time_feature)
    family, device = without_time(learner.family), learner.device
    tasks = [family.validate_task(t) for t in (test_tasks if test_tasks is not None else learner.test_tasks)]
    if not tasks:
        raise ValueError("no held-out test tasks: pass test_tasks or meta-train with n_test_tasks > 0")
    train = list(learner.train_tasks)
    learners = {learner.config.algo: learner, **(compare or {})}
    views = {name: other.family for name, other in learners.items()}
    for name, other in learners.items():
        base = without_time(other.family)
        if base.name != family.name or base.options != family.options:
            raise ValueError(f"{name} was trained on {base.name} {base.options}, not on "
                             f"{family.name} {family.options}")
        overlap = {t.key() for t in tasks} & {t.key() for t in other.train_tasks}
        if overlap:
            raise ValueError(f"{len(overlap)} test task(s) were seen in meta-training ({name}); "
                             "held-out tasks must be new")
    tune_on = train[: cfg.tune_tasks]
    if not tune_on and ({"multitask", "scratch"} & set(cfg.baselines)):
        raise ValueError("tuning the baselines needs the learner's training tasks")

    rand = random_returns(family, tasks, episodes=cfg.random_episodes, seed=derive_seed(cfg.seed, "random"),
                          device=device)
    t0 = time.perf_counter()
    oracle, exact = oracle_returns(family, tasks, dqn_steps=cfg.oracle_steps, eval_episodes=cfg.oracle_eval_episodes,
                                   seed=derive_seed(cfg.seed, "oracle"), device=device, progress=progress)
    budgets: dict[str, dict[str, Any]] = {"oracle": {  # what each baseline cost: env steps and wall time
        "env_steps": 0 if exact else cfg.oracle_steps * len(tasks), "seconds": time.perf_counter() - t0,
        "exact": exact}}
    if not exact:  # the per-task DQNs' settings beyond DQNConfig's defaults (the family's recommended ones)
        budgets["oracle"]["dqn_settings"] = DQNConfig.family_defaults(family.name, {})

    adapters: dict[str, Adapter] = {name: other.adapter() for name, other in learners.items()}
    tuned: dict[str, dict[str, Any]] = {}
    mcfg = learner.config
    plain = build_qnet(replace(mcfg.net, context=0, film=False), tuple(family.observation_space.shape),
                       int(family.action_space.n)).to(device)  # the baselines' Q-network: no context input
    td = TDLoss(n_step=1, gamma=mcfg.gamma, double=mcfg.double, loss=mcfg.loss)
    tune_kw = dict(steps=cfg.steps, runs_per_task=cfg.tune_runs, episodes=cfg.tune_budget,
                   eval_episodes=cfg.tune_eval_episodes, seed=derive_seed(cfg.seed, "tune"), device=device)
    if "multitask" in cfg.baselines:
        steps = int(cfg.multitask_steps or learner.env_steps)
        t0 = time.perf_counter()
        mt = train_multitask(family, train, net=plain.spec, env_steps=steps,
                             envs_per_task=max(cfg.multitask_envs, mcfg.envs_per_task), batch_size=cfg.multitask_batch,
                             target_update=cfg.multitask_target_update,
                             buffer_per_env=cfg.multitask_buffer_per_env, seed=mcfg.seed, device=device,
                             progress=progress)
        budgets["multitask"] = {"env_steps": steps, "seconds": time.perf_counter() - t0,
                                "meta_training_env_steps": learner.env_steps}
        adapters["multitask"], tuned["multitask"] = tune(
            family, lambda lr, eps: finetune_adapter("multitask", plain, mt, lr=lr, epsilon=eps, td=td,
                                                     batch=cfg.baseline_batch),
            tune_on, lrs=cfg.lr_grid, epsilons=cfg.eps_grid, **tune_kw)
    if "scratch" in cfg.baselines:
        fresh = {k: v.to(device) for k, v in init_params(plain, derive_seed(cfg.seed, "scratch")).items()}
        adapters["scratch"], tuned["scratch"] = tune(
            family, lambda lr, eps: finetune_adapter("scratch", plain, fresh, lr=lr, epsilon=eps, td=td,
                                                     batch=cfg.baseline_batch),
            tune_on, lrs=cfg.lr_grid, epsilons=(1.0,), **tune_kw)

    if cfg.safeguard:
        adapters = {name: with_safeguard(a) for name, a in adapters.items()}
    methods, gains = evaluate_adapters(family, adapters, tasks, rand=rand, oracle=oracle, cfg=cfg, device=device,
                                       progress=progress, views=views)
    limit = information_limit(family, tasks, kind="frozen", budgets=cfg.budgets, rand=rand, oracle=oracle, cfg=cfg,
                              device=device)
    online = evaluate_online(family, adapters, tasks, rand=rand, oracle=oracle, cfg=cfg, device=device,
                             progress=progress, views=views) if cfg.online else None
    if limit is not None:
        for entry in methods.values():
            entry["fraction_of_limit"] = {b: {k: c["mean"] / limit[b]["mean"] for k, c in cells.items()}
                                          for b, cells in entry["nr"].items()}
    for name, t in tuned.items():
        methods[name]["tuned"] = t
    if "oracle" in cfg.baselines:
        one = {"mean": 1.0, "ci_low": 1.0, "ci_high": 1.0}
        mean = float(oracle.mean())
        methods["oracle"] = {
            "nr": {str(b): {str(k): dict(one) for k in cfg.steps} for b in cfg.budgets},
            "return": {str(b): {str(k): {"mean": mean, "ci_low": mean, "ci_high": mean} for k in cfg.steps}
                       for b in cfg.budgets}}

    horizon = family.max_episode_steps
    to95: dict[str, int | None] = {}
    for name, entry in methods.items():
        to95[name] = None
        if name == "oracle":
            continue
        for budget in sorted(cfg.budgets):
            if max(v["mean"] for v in entry["nr"][str(budget)].values()) >= 0.95:
                to95[name] = budget * horizon
                break
    return {
        "family": family.name, "family_options": family.options, "n_test_tasks": len(tasks), "seeds": cfg.seeds,
        "budgets": list(cfg.budgets), "steps": list(cfg.steps), "eval_episodes": cfg.eval_episodes,
        "methods": methods, "env_steps_to_95pct_oracle": to95,
        "per_task_gain": {"budget": min(cfg.budgets), "methods": gains},
        "online": online,
        "baseline_budgets": budgets,
        "references": {"random_return_mean": float(rand.mean()), "oracle_return_mean": float(oracle.mean()),
                       "oracle_exact": exact,
                       "limit": None if limit is None else {
                           "kind": "frozen", "data": "the uniformly random support episodes of each budget", "nr": limit}},
        "meta_training": {"algo": mcfg.algo, "iterations": learner.iteration, "env_steps": learner.env_steps,
                          "kept_iteration": learner.kept_iteration, "config": to_dict(mcfg),
                          "compared": {name: {"algo": o.config.algo, "iterations": o.iteration, "env_steps": o.env_steps,
                                              "kept_iteration": o.kept_iteration, "config": to_dict(o.config)}
                                       for name, o in (compare or {}).items()}},
        "config": to_dict(cfg),
    }


def with_safeguard(adapter: Adapter) -> Adapter:
    """``adapter`` keeping its adapted parameters only where the support loss fell
    (gradient adapters; others are returned as they are)."""
    if not isinstance(adapter, GradientAdapter):
        return adapter
    return GradientAdapter(adapter.name, adapter.net, adapter.params, inner=replace(adapter.inner, safeguard=True),
                           td=adapter.td, support=adapter.support, target=adapter.target)


def information_limit(family: TaskFamily, tasks: Sequence[Task], *, kind: str, budgets: Sequence[int],
                      rand: np.ndarray, oracle: np.ndarray, cfg: EvalConfig,
                      device: str | torch.device = "cpu") -> dict[str, dict[str, float]] | None:
    """NR with CIs, per budget, of the Bayes-optimal policy (``kind``: "frozen" or "online")
    given each budget's random support data (the very data methods exploring with epsilon 1
    see); None where the family cannot compute it."""
    out = {}
    for budget in budgets:
        lim = limit_returns(family, tasks, kind=kind, runs_per_task=cfg.seeds, episodes=budget, seed=cfg.data_seed,
                            device=device)
        if lim is None:
            return None
        out[str(budget)] = interval(normalized(lim, rand, oracle), cfg.bootstrap_reps, cfg.seed)
    return out


def evaluate_online(family: TaskFamily, adapters: Mapping[str, Adapter], tasks: Sequence[Task], *, rand: np.ndarray,
                    oracle: np.ndarray, cfg: EvalConfig, device: str | torch.device = "cpu",
                    progress: bool | None = None, views: Mapping[str, TaskFamily] | None = None) -> dict[str, Any]:
    """Online adaptation of every adapter that supports it (kept apart from the frozen numbers):
    per support budget, NR of one greedy episode that re-adapts every ``online_every`` env steps
    on all data so far, the cost in ms per env step, and the online information limit. ``views``:
    the family an adapter acts in where it is not ``family`` itself (a ``with_time`` view)."""
    out: dict[str, Any] = {"every": cfg.online_every, "warm": cfg.online_warm, "budgets": list(cfg.online_budgets),
                           "methods": {}}
    online = {name: adapter for name, adapter in adapters.items() if adapter.online}
    # the last tick is the online limit: minutes for the default bandit's exact dynamic program
    with ProgressBar("online, then its limit", len(online) * len(cfg.online_budgets) + 1, enabled=progress) as bar:
        for name, adapter in online.items():
            steps = cfg.online_steps or adapter.default_steps
            entry: dict[str, Any] = {"steps": steps, "nr": {}, "ms_per_env_step": {},
                                     "instances": len(tasks) * cfg.seeds}  # the cost is for all instances together
            for budget in cfg.online_budgets:
                ret, ms = online_curve(adapter, (views or {}).get(name, family), tasks, runs_per_task=cfg.seeds,
                                       episodes=budget, steps=steps, every=cfg.online_every, seed=cfg.data_seed,
                                       warm=cfg.online_warm, device=device)
                entry["nr"][str(budget)] = interval(normalized(ret.cpu().numpy(), rand, oracle), cfg.bootstrap_reps,
                                                    cfg.seed)
                entry["ms_per_env_step"][str(budget)] = ms
                bar.update()
            out["methods"][name] = entry
        out["limit"] = information_limit(family, tasks, kind="online", budgets=cfg.online_budgets, rand=rand,
                                         oracle=oracle, cfg=cfg, device=device)
        bar.update()
    return out


def evaluate_adapters(family: TaskFamily, adapters: Mapping[str, Adapter], tasks: Sequence[Task], *,
                      rand: np.ndarray, oracle: np.ndarray, cfg: EvalConfig, device: str | torch.device = "cpu",
                      progress: bool | None = None, views: Mapping[str, TaskFamily] | None = None,
                      ) -> tuple[dict[str, Any], dict[str, dict[str, list[float]]]]:
    """Every adapter through the same protocol: ``(methods, per-task gains at the smallest budget)``;
    ``views``: the family an adapter acts in where it is not ``family`` itself (a ``with_time``
    view: the same tasks and episodes, with t / H observed)."""
    methods: dict[str, Any] = {}
    gains: dict[str, dict[str, list[float]]] = {}
    b0 = min(cfg.budgets)
    # cfg.data_seed for every method and budget: a larger budget's data start with the smaller
    # budget's episodes, and every method meets the same evaluation episodes
    with ProgressBar("evaluate", len(adapters) * len(cfg.budgets), enabled=progress) as bar:
        for name, adapter in adapters.items():
            entry: dict[str, Any] = {"nr": {}, "return": {}, "gain": {}, "adapter": adapter.describe()}
            for budget in cfg.budgets:
                curve = adaptation_curve(adapter, (views or {}).get(name, family), tasks, runs_per_task=cfg.seeds,
                                         episodes=budget, steps=cfg.steps, eval_episodes=cfg.eval_episodes,
                                         seed=cfg.data_seed, device=device)
                ret = {k: v.cpu().numpy().astype(float) for k, v in curve.items()}
                nr = {k: normalized(v, rand, oracle) for k, v in ret.items()}
                entry["return"][str(budget)] = {str(k): interval(v, cfg.bootstrap_reps, cfg.seed)
                                                for k, v in ret.items()}
                entry["nr"][str(budget)] = {str(k): interval(v, cfg.bootstrap_reps, cfg.seed) for k, v in nr.items()}
                if 0 in nr:  # adapted − zero-shot, paired per task and seed: does adaptation hurt?
                    entry["gain"][str(budget)] = {str(k): interval(v - nr[0], cfg.bootstrap_reps, cfg.seed)
                                                  for k, v in nr.items() if k > 0}
                if budget == b0:
                    gains[name] = {str(k): (nr[k] - nr[0]).mean(1).tolist() for k in cfg.steps if k > 0 and 0 in nr}
                bar.update(1, env_steps=len(tasks) * cfg.seeds * budget * family.max_episode_steps)
            methods[name] = entry
    return methods, gains


__all__ = ["BASELINES", "EvalConfig", "evaluate", "evaluate_adapters", "evaluate_online", "information_limit", "interval", "normalized", "oracle_returns",
           "random_returns"]
