"""The fast-adaptation protocol: how well does each method do on a held-out task after a
small budget of new-task data and k gradient steps?

For every held-out task and seed, each method

1. starts from its own initial parameters θ₀ (meta-learned, multi-task, random, ...);
2. collects ``budget`` episodes' worth of env steps (``budget × horizon``) on the new task
   with its own exploration policy (epsilon-greedy on θ₀ with the method's epsilon);
3. takes k gradient steps on the TD loss of that data with its own step size;
4. is evaluated greedily (``eval_episodes`` episodes), giving a return R.

Normalized return NR = (R − R_random) / (R_oracle − R_random) per task. Means come with 95%
bootstrap confidence intervals over tasks and seeds (two-level resampling). Step sizes of
the baselines are tuned on *training* tasks only.

Every method is described by an :class:`AdaptSpec`, so MAML, Reptile, multi-task DQN and
DQN from scratch go through exactly the same code: :func:`adaptation_curve`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.func import vmap

from .dqn import collect, greedy_returns
from .meta.maml import adapt
from .nets import NetSpec, Params, build_qnet, init_params, q_values
from .progress import ProgressBar
from .replay import TaskReplay
from .tasks import Task, TaskFamily

BASELINES = ("multitask", "scratch", "oracle")


@dataclass
class AdaptSpec:
    """How one method adapts to a new task.

    params: θ₀; lr: the inner step size (a float, or per-element tensors for Meta-SGD);
    epsilon: exploration while collecting the new task's data; keys: the parameters the
    gradient steps change (None = all); the rest says which TD loss the steps minimise.
    """

    net: nn.Module
    params: Params
    lr: float | Params
    epsilon: float
    keys: Sequence[str] | None = None
    n_step: int = 1
    gamma: float = 0.99
    double: bool = True
    loss: str = "huber"
    batch: int = 64
    target: Params | None = None


@torch.no_grad()
def _detach(params: Mapping[str, torch.Tensor]) -> Params:
    return {k: v.detach() for k, v in params.items()}


def adapt_instances(family: TaskFamily, spec: AdaptSpec, tasks: Sequence[Task], runs: int, budget: int,
                    steps: Sequence[int], seed: int = 0, device: str | torch.device = "cpu") -> dict[int, Params]:
    """Adapt ``runs`` independent instances per task (new data each); returns, for each k in
    ``steps``, parameters with a leading ``task * runs`` axis (task-major)."""
    if budget < 1:
        raise ValueError(f"budget must be >= 1 episode, got {budget}")
    if any(k < 0 for k in steps):
        raise ValueError(f"gradient step counts must be >= 0, got {list(steps)}")
    horizon = family.max_episode_steps
    env = family.make_batched(tasks, runs, device=device, seed=seed)
    n = len(tasks) * runs
    buf = TaskReplay(n, 1, budget * horizon, env.obs_shape, device)
    gen = torch.Generator(device=env.device).manual_seed(seed + 7)
    theta = _detach(spec.params)
    collect(env, buf, lambda obs: q_values(spec.net, theta, obs), spec.epsilon, budget * horizon, gen)
    support = buf.sample(spec.batch * budget, spec.n_step, spec.gamma, generator=gen)
    lr = spec.lr if isinstance(spec.lr, (int, float)) else _detach(spec.lr)
    target = None if spec.target is None else _detach(spec.target)

    def more_steps(p: Params, batch: Any, k: int) -> Params:
        return adapt(spec.net, p, batch, lr, k, True, target, spec.double, spec.loss, spec.keys)

    current = {k: v.unsqueeze(0).expand(n, *v.shape) for k, v in theta.items()}
    out, done = {}, 0
    for k in sorted(set(steps)):
        if k > done:
            current = _detach(vmap(lambda p, b: more_steps(p, b, k - done))(current, support))
            done = k
        out[k] = current
    return out


def adaptation_curve(family: TaskFamily, spec: AdaptSpec, tasks: Sequence[Task], runs: int, budget: int,
                     steps: Sequence[int], eval_episodes: int = 5, seed: int = 0,
                     device: str | torch.device = "cpu") -> dict[int, torch.Tensor]:
    """Greedy return ``[task, run]`` after k steps, for each k in ``steps`` (see module doc)."""
    adapted = adapt_instances(family, spec, tasks, runs, budget, steps, seed, device)
    instances = [t for t in tasks for _ in range(runs)]
    out = {}
    for k, params in adapted.items():
        r = greedy_returns(family, instances, spec.net, params, eval_episodes, per_task=True, device=device,
                           seed=seed + 1)
        out[k] = r.mean(-1).view(len(tasks), runs)
    return out


# -- references: random and oracle returns ------------------------------------------------
def random_returns(family: TaskFamily, tasks: Sequence[Task], episodes: int = 50, seed: int = 0,
                   device: str | torch.device = "cpu") -> np.ndarray:
    """R_random per task: exact where the family knows it, else a Monte-Carlo estimate."""
    exact = [family.random_return(t) for t in tasks]
    if all(r is not None for r in exact):
        return np.asarray(exact, dtype=float)
    net = build_qnet(NetSpec(hidden=(1,)), tuple(family.observation_space.shape), int(family.action_space.n))
    params = init_params(net, 0)
    est = greedy_returns(family, tasks, net, params, episodes, device=device, seed=seed, epsilon=1.0)
    return est.mean(-1).cpu().numpy().astype(float)


def oracle_returns(family: TaskFamily, tasks: Sequence[Task], dqn_steps: int = 30_000, seed: int = 0,
                   device: str | torch.device = "cpu", progress: bool | None = None) -> np.ndarray:
    """R_oracle per task: exact where the family knows it; otherwise the greedy return of a
    DQN trained on that task alone for ``dqn_steps`` env steps (keeping its best evaluation)."""
    exact = [family.oracle_return(t) for t in tasks]
    if all(r is not None for r in exact):
        return np.asarray(exact, dtype=float)
    from .agents import DQN
    # one network per task, all trained side by side (vmapped); task i's network starts from seed + i
    agent = DQN(family, list(tasks), total_steps=dqn_steps, seed=seed, device=str(device), independent=True,
                eval_every=max(1000, dqn_steps // 10))
    agent.learn(progress=progress)
    return agent.evaluate(episodes=10, seed=seed + 1000).mean(1).cpu().numpy().astype(float)


# -- statistics -----------------------------------------------------------------------------
def interval(scores: np.ndarray, reps: int = 2000, seed: int = 0) -> dict[str, float]:
    """Mean of ``scores [task, seed]`` with a 95% percentile-bootstrap confidence interval
    that resamples both levels: tasks with replacement, then seeds within each drawn task
    (so the interval covers task-to-task and seed-to-seed variation)."""
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 2 or scores.size == 0:
        raise ValueError(f"scores must be a non-empty [task, seed] array, got shape {scores.shape}")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or inf")
    n_tasks, n_seeds = scores.shape
    rng = np.random.default_rng(seed)
    tasks = rng.integers(0, n_tasks, size=(reps, n_tasks))
    seeds = rng.integers(0, n_seeds, size=(reps, n_tasks, n_seeds))
    means = scores[tasks[..., None], seeds].mean(axis=(1, 2))
    mean = float(scores.mean())
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {"mean": mean, "ci_low": float(min(lo, mean)), "ci_high": float(max(hi, mean))}


def normalized(returns: np.ndarray, rand: np.ndarray, oracle: np.ndarray) -> np.ndarray:
    """NR = (R − R_random) / (R_oracle − R_random), per task (rows of ``returns``)."""
    gap = oracle - rand
    if np.any(gap <= 1e-8):
        bad = int(np.argmin(gap))
        raise ValueError(f"task {bad}: oracle return {oracle[bad]:.4g} is not above the random return "
                         f"{rand[bad]:.4g}; normalized return is undefined (where the oracle is a per-task "
                         "DQN, train it longer with --oracle-steps; or lengthen the family's episodes)")
    return (returns - rand[:, None]) / gap[:, None]


# -- the full protocol ------------------------------------------------------------------------
@dataclass
class EvalConfig:
    """The evaluation protocol's settings (defaults follow the issue: 5 seeds, budgets of
    1/2/5/10 episodes, 0/1/3/10 gradient steps)."""

    seeds: int = 5
    budgets: tuple[int, ...] = (1, 2, 5, 10)
    steps: tuple[int, ...] = (0, 1, 3, 10)
    eval_episodes: int = 5
    baselines: tuple[str, ...] = BASELINES
    lr_grid: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0)   # baselines' step sizes to tune
    eps_grid: tuple[float, ...] = (0.1, 1.0)                   # baselines' exploration to tune
    tune_tasks: int = 10                   # training tasks used to tune the baselines
    multitask_steps: int | None = None     # env steps of the multi-task DQN (None: as meta-training)
    oracle_steps: int = 30_000             # per-task DQN env steps where no exact optimum is known
    bootstrap_reps: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        self.budgets = tuple(int(b) for b in self.budgets)
        self.steps = tuple(sorted(set(int(k) for k in self.steps)))
        self.baselines = tuple(self.baselines)
        if self.seeds < 1 or self.eval_episodes < 1 or self.tune_tasks < 1:
            raise ValueError("seeds, eval_episodes and tune_tasks must be >= 1")
        if not self.budgets or min(self.budgets) < 1:
            raise ValueError(f"budgets must be episode counts >= 1, got {list(self.budgets)}")
        if not self.steps or min(self.steps) < 0:
            raise ValueError(f"steps must be gradient-step counts >= 0, got {list(self.steps)}")
        unknown = set(self.baselines) - set(BASELINES)
        if unknown:
            raise ValueError(f"unknown baseline(s) {sorted(unknown)}; choose from {list(BASELINES)}")


def tune_spec(family: TaskFamily, make: Callable[[float, float], AdaptSpec], tasks: Sequence[Task],
              lrs: Sequence[float], epsilons: Sequence[float], steps: Sequence[int], seed: int = 0,
              device: str | torch.device = "cpu") -> tuple[AdaptSpec, dict[str, float]]:
    """The (step size, epsilon) of ``make`` with the best mean greedy return over k > 0 after
    one episode on ``tasks`` (training tasks: never tune on test tasks)."""
    ks = [k for k in steps if k > 0] or list(steps)
    best: tuple[float, AdaptSpec | None, dict[str, float]] = (-math.inf, None, {})
    for lr in lrs:
        for eps in epsilons:
            spec = make(lr, eps)
            curve = adaptation_curve(family, spec, tasks, 2, 1, ks, 3, seed=seed, device=device)
            score = float(np.mean([curve[k].mean().item() for k in ks]))
            if math.isfinite(score) and score > best[0]:
                best = (score, spec, {"lr": lr, "epsilon": eps, "train_return": score})
    if best[1] is None:
        raise FloatingPointError("every step size in the grid gave a non-finite return")
    return best[1], best[2]


def evaluate(learner: Any, test_tasks: Sequence[Task] | None = None, baselines: Sequence[str] | None = None,
             config: EvalConfig | None = None, progress: bool | None = None, **overrides: Any) -> dict[str, Any]:
    """Run the protocol for a meta-trained ``learner`` (a :class:`~metadqn.train.MAMLDQN`)
    and the chosen baselines on ``test_tasks`` (default: the learner's held-out tasks).

    Returns the JSON-ready result described in the README (``methods.NAME.nr.BUDGET.K`` →
    mean and 95% CI), plus per-task gains NR(k) − NR(0) at the smallest budget.
    """
    cfg = config or EvalConfig()
    if baselines is not None:
        overrides["baselines"] = tuple(baselines)
    if overrides:
        cfg = replace(cfg, **overrides)
    family: TaskFamily = learner.family
    device = learner.device
    tasks = [family.validate_task(t) for t in (test_tasks if test_tasks is not None else learner.test_tasks)]
    if not tasks:
        raise ValueError("no held-out test tasks: pass test_tasks or meta-train with n_test_tasks > 0")
    train = list(learner.train_tasks)
    overlap = {t.key() for t in tasks} & {t.key() for t in train}
    if overlap:
        raise ValueError(f"{len(overlap)} test task(s) were seen in meta-training; held-out tasks must be new")
    tune_on = train[: cfg.tune_tasks]
    if not tune_on and ({"multitask", "scratch"} & set(cfg.baselines)):
        raise ValueError("tuning the baselines needs the learner's training tasks")

    rand = random_returns(family, tasks, seed=cfg.seed, device=device)
    oracle = oracle_returns(family, tasks, cfg.oracle_steps, cfg.seed, device, progress)

    specs: dict[str, AdaptSpec] = {learner.config.algo: learner.adaptation_spec()}
    tuned: dict[str, dict[str, float]] = {}
    mcfg = learner.config
    spec_kw = dict(n_step=1, gamma=mcfg.gamma, double=mcfg.double, loss=mcfg.loss, batch=mcfg.support_batch)
    if "multitask" in cfg.baselines:
        mt = train_multitask(learner, cfg.multitask_steps, progress)
        specs["multitask"], tuned["multitask"] = tune_spec(
            family, lambda lr, eps: AdaptSpec(learner.net, mt, lr, eps, **spec_kw), tune_on, cfg.lr_grid,
            cfg.eps_grid, cfg.steps, cfg.seed, device)
    if "scratch" in cfg.baselines:
        fresh = {k: v.to(device) for k, v in init_params(learner.net, cfg.seed + 123).items()}
        specs["scratch"], tuned["scratch"] = tune_spec(
            family, lambda lr, eps: AdaptSpec(learner.net, fresh, lr, eps, **spec_kw), tune_on, cfg.lr_grid,
            (1.0,), cfg.steps, cfg.seed, device)

    methods: dict[str, Any] = {}
    gains: dict[str, dict[str, list[float]]] = {}
    b0 = min(cfg.budgets)
    with ProgressBar("evaluate", len(specs) * len(cfg.budgets), enabled=progress) as bar:
        for name, spec in specs.items():
            entry: dict[str, Any] = {"nr": {}, "return": {}}
            for budget in cfg.budgets:
                curve = adaptation_curve(family, spec, tasks, cfg.seeds, budget, cfg.steps, cfg.eval_episodes,
                                         seed=cfg.seed + 1000 * budget, device=device)
                ret = {k: v.cpu().numpy().astype(float) for k, v in curve.items()}
                nr = {k: normalized(v, rand, oracle) for k, v in ret.items()}
                entry["return"][str(budget)] = {str(k): interval(v, cfg.bootstrap_reps, cfg.seed) for k, v in ret.items()}
                entry["nr"][str(budget)] = {str(k): interval(v, cfg.bootstrap_reps, cfg.seed) for k, v in nr.items()}
                if budget == b0:
                    gains[name] = {str(k): (nr[k] - nr[0]).mean(1).tolist() for k in cfg.steps if k > 0 and 0 in nr}
                bar.update(1, env_steps=len(tasks) * cfg.seeds * budget * family.max_episode_steps)
            if name in tuned:
                entry["tuned"] = tuned[name]
            methods[name] = entry
    if "oracle" in cfg.baselines:
        one = {"mean": 1.0, "ci_low": 1.0, "ci_high": 1.0}
        methods["oracle"] = {
            "nr": {str(b): {str(k): dict(one) for k in cfg.steps} for b in cfg.budgets},
            "return": {str(b): {str(k): {"mean": float(oracle.mean()), "ci_low": float(oracle.mean()),
                                         "ci_high": float(oracle.mean())} for k in cfg.steps} for b in cfg.budgets}}

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
        "per_task_gain": {"budget": b0, "methods": gains},
        "references": {"random_return_mean": float(rand.mean()), "oracle_return_mean": float(oracle.mean()),
                       "oracle_exact": all(family.oracle_return(t) is not None for t in tasks)},
        "meta_training": {"algo": learner.config.algo, "iterations": learner.iteration,
                          "env_steps": learner.env_steps},
    }


def train_multitask(learner: Any, env_steps: int | None = None, progress: bool | None = None) -> Params:
    """The multi-task DQN baseline: one Q-network (same architecture as the learner) trained
    by DQN on all of the learner's training tasks jointly, for as many env steps as
    meta-training used (or ``env_steps``)."""
    from .agents import DQN
    cfg = learner.config
    steps = int(env_steps or learner.env_steps)
    if steps < 1:
        raise ValueError("the multi-task baseline needs env_steps >= 1 (the learner has not been meta-trained)")
    n_envs = max(8, cfg.envs_per_task)  # more envs per vector step: same env steps, fewer (costly) updates
    per_iter = len(learner.train_tasks) * n_envs
    agent = DQN(learner.family, learner.train_tasks, net=cfg.net, n_envs=n_envs, total_steps=steps,
                updates_per_step=1.0 / per_iter, learning_starts=min(steps // 10, 20 * per_iter),
                buffer_size=max(1000, n_envs * 2000), batch_size=32, target_update=200,
                eval_every=max(per_iter, steps // 10), eval_episodes=2, seed=cfg.seed, device=str(learner.device))
    agent.learn(progress=progress)
    return {k: v.detach().clone() for k, v in agent.params.items()}


__all__ = ["AdaptSpec", "BASELINES", "EvalConfig", "adapt_instances", "adaptation_curve", "evaluate",
           "interval", "normalized", "oracle_returns", "random_returns", "train_multitask", "tune_spec"]
