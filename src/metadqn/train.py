"""Meta-training MAML-DQN (and FOMAML, Meta-SGD, Reptile) over a task family.

One iteration, for every training task x ``envs_per_task`` adaptation instances at once:

1. **support**: each instance collects ``support_episodes`` episodes with the meta-parameters
   θ (epsilon-greedy, ``eps_support``) — the same budget a new task gets at test time;
2. **inner loop**: θ'ᵢ = θ − α ∇L_TD(θ; supportᵢ), ``inner_steps`` times, vmapped over instances;
3. **query**: each instance collects ``query_episodes`` episodes with its own θ'ᵢ, epsilon-greedy
   with ``eps_query`` (default 1.0, i.e. uniformly random: with a near-greedy query policy the
   TD outer loss only checks the actions that policy takes and never rewards a better argmax);
4. **outer update**: Adam on Σᵢ wᵢ L_TD(θ'ᵢ; queryᵢ) (second order through the inner
   gradient for ``maml``/``metasgd``; first order for ``fomaml``), or the Reptile step.

The outer loss is, by default, DQN's own 1-step TD loss of the adapted parameters θ'ᵢ
against the meta target network (``n_step=1``, ``outer_target="meta"``): off-policy, it asks
θ'ᵢ for the task's optimal Q-values even though the query data are random. Monte-Carlo
targets (``n_step=0``) of random query data would instead ask for the random policy's
Q-values, whose greedy policy is only one step of improvement over random: measured worse
on bandit, gridnav and driving (``benchmarks/RESULTS.md``). The inner loss is 1-step TD
against θ itself (``inner_n_step=1``, ``inner_target="adapted"``).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch.func import vmap

from .checkpoint import (CheckpointError, load_checkpoint, load_optimizer, optimizer_tensors, prefixed,
                         save_checkpoint, unprefixed)
from .config import from_dict, to_dict
from .dqn import LOSSES, collect, td_loss
from .meta.maml import adapt_tasks, maml_loss
from .meta.reptile import reptile_direction
from .meta.weighting import task_weights, validate_weights
from .nets import NetSpec, Params, build_qnet, init_params, q_values
from .progress import ProgressBar
from .replay import Batch, TaskReplay
from .runlog import RunLogger, read_metrics
from .tasks import Task, TaskFamily, make_family

ALGOS = ("maml", "fomaml", "reptile", "metasgd")
TARGETS = ("adapted", "meta")
INNER_PARAMS = ("all", "context", "head")


@dataclass
class MetaConfig:
    """Hyperparameters of meta-training. Episodes are the family's horizon in env steps."""

    algo: str = "maml"                     # maml | fomaml | reptile | metasgd
    iterations: int = 300                  # collect-then-update rounds (each: outer_steps meta-updates)
    n_train_tasks: int = 40                # training tasks drawn from the family (CLI)
    n_test_tasks: int = 20                 # held-out tasks for evaluation (CLI)
    split_seed: int = 0                    # seed of the train/test split
    envs_per_task: int = 4                 # adaptation instances per training task per iteration
    support_episodes: int = 1              # new-task data per adaptation (episodes)
    query_episodes: int = 1                # post-adaptation data per instance for the outer loss
    inner_lr: float = 0.5                  # α (Meta-SGD: initial value of every per-element α)
    inner_steps: int = 1                   # gradient steps in the inner loop
    inner_params: str = "all"              # what the inner loop adapts: all | context (CAVIA; needs net.context) | head
    outer_lr: float = 1e-3                 # β, Adam step size of the meta-update
    outer_steps: int = 1                   # meta-updates per iteration, each on fresh minibatches of its episodes
    support_batch: int = 64                # transitions sampled from the support per inner loss
    query_batch: int = 64                  # transitions sampled from the query per outer loss
    gamma: float = 0.99                    # discount
    n_step: int = 1                        # n-step returns of the outer (query) loss; 0 = Monte-Carlo (n = horizon)
    inner_n_step: int = 1                  # n-step returns of the inner (support) loss; -1 = same as n_step, 0 = MC
    double: bool = True                    # Double DQN targets where a target network is used
    loss: str = "huber"                    # huber or mse
    inner_target: str = "adapted"          # TD target in the inner loop: adapted (θ itself) or meta (target net)
    outer_target: str = "meta"             # TD target in the outer loss: adapted (θ') or meta (target net)
    target_update: int = 10                # iterations between meta target-network copies
    eps_support: float = 1.0               # exploration while collecting support data (1 = uniformly random)
    eps_query: float = 1.0                 # exploration while collecting query data (1 = uniformly random)
    query_replay: int = 0                  # query transitions kept per instance across iterations (0 = this iteration's)
    task_weights: str | tuple[float, ...] = "uniform"  # uniform | difficulty | one weight per training task
    net: NetSpec = field(default_factory=NetSpec)
    grad_clip: float = 10.0                # max meta-gradient norm (0 = off)
    eval_every: int = 50                   # iterations between held-out evaluations (0 = off)
    eval_runs: int = 2                     # adaptation runs per held-out task in each evaluation
    eval_episodes: int = 3                 # greedy episodes per adapted policy
    checkpoint_every: int = 50             # iterations between checkpoints (0 = only at the end)
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise ValueError(f"algo must be one of {ALGOS}, got {self.algo!r}")
        for name in ("iterations", "envs_per_task", "support_episodes", "query_episodes", "inner_steps",
                     "support_batch", "query_batch", "target_update", "eval_runs", "eval_episodes", "outer_steps",
                     "n_train_tasks"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("inner_lr", "outer_lr"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive number, got {v}")
        if self.inner_n_step < -1:
            raise ValueError(f"inner_n_step must be >= 0, or -1 for the same as n_step; got {self.inner_n_step}")
        if min(self.n_step, self.n_test_tasks, self.eval_every, self.checkpoint_every, self.query_replay) < 0:
            raise ValueError("n_step, n_test_tasks, eval_every, checkpoint_every and query_replay must be >= 0")
        if not 0 <= self.gamma <= 1:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        for name in ("inner_target", "outer_target"):
            if getattr(self, name) not in TARGETS:
                raise ValueError(f"{name} must be one of {TARGETS}, got {getattr(self, name)!r}")
        for name in ("eps_support", "eps_query"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if isinstance(self.task_weights, str):
            validate_weights(self.task_weights, 0)
        if self.inner_params not in INNER_PARAMS:
            raise ValueError(f"inner_params must be one of {INNER_PARAMS}, got {self.inner_params!r}")
        if self.inner_params == "context" and self.net.context < 1:
            raise ValueError("inner_params='context' adapts a task-context vector: set net.context >= 1 "
                             "(e.g. --set net.context=8)")
        if self.algo == "reptile" and self.inner_params != "all":
            raise ValueError("reptile moves every parameter toward the adapted ones: use inner_params='all'")


class MAMLDQN:
    """A Q-network meta-trained to adapt to a new task in a few gradient steps.

    >>> family = make_family("gridnav")
    >>> train, test = family.split(40, 20, seed=0)
    >>> learner = MAMLDQN(family, algo="maml", inner_lr=0.5)
    >>> learner.meta_train(train, iterations=300)            # doctest: +SKIP
    >>> adapted = learner.adapt(test[0], episodes=1, steps=3)  # doctest: +SKIP
    """

    def __init__(self, family: TaskFamily | str, config: MetaConfig | None = None, **overrides: Any) -> None:
        self.family = make_family(family) if isinstance(family, str) else family
        self.config = from_dict(MetaConfig, {**(to_dict(config) if config else {}), **overrides})
        cfg = self.config
        self.device = torch.device(cfg.device)
        self.net = build_qnet(cfg.net, tuple(self.family.observation_space.shape),
                              int(self.family.action_space.n)).to(self.device)
        self.params: Params = {k: v.to(self.device).requires_grad_() for k, v in init_params(self.net, cfg.seed).items()}
        self.target: Params = {k: v.detach().clone() for k, v in self.params.items()}
        self.inner_keys = self._inner_keys()
        self.inner_lrs: Params | None = None
        opt_params = list(self.params.values())
        if cfg.algo == "metasgd":
            self.inner_lrs = {k: torch.full_like(self.params[k], cfg.inner_lr).requires_grad_()
                              for k in self.inner_keys}
            opt_params += list(self.inner_lrs.values())
        self.optimizer = torch.optim.Adam(opt_params, lr=cfg.outer_lr)
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed + 1)
        self.iteration = 0
        self.train_tasks: list[Task] = []
        self.test_tasks: list[Task] = []
        self._env_state: torch.Tensor | None = None
        self._query_buf: TaskReplay | None = None   # persists across meta_train calls (query_replay)

    # -- small helpers --------------------------------------------------------------------
    def _inner_keys(self) -> list[str]:
        which = self.config.inner_params
        if which == "context":
            return ["context"]
        if which == "head":
            last = max(int(k.split(".")[1]) for k in self.params if k.startswith("fcs."))
            return [f"fcs.{last}.weight", f"fcs.{last}.bias"]
        return list(self.params)

    @property
    def horizon(self) -> int:
        return self.family.max_episode_steps

    @property
    def n_step(self) -> int:
        return self.config.n_step or self.horizon

    @property
    def inner_n_step(self) -> int:
        n = self.config.inner_n_step
        return self.n_step if n == -1 else (n or self.horizon)

    @property
    def inner_lr(self) -> float | Params:
        return self.inner_lrs if self.inner_lrs is not None else self.config.inner_lr

    def _instance_q(self, params: Params, obs: torch.Tensor, per_instance: bool) -> torch.Tensor:
        """Q-values ``[task, env, A]``; per-instance params have a leading ``task*env`` axis."""
        if not per_instance:
            return q_values(self.net, params, obs)
        t, e = obs.shape[:2]
        flat = obs.reshape(t * e, 1, *obs.shape[2:])
        q = vmap(lambda p, o: q_values(self.net, p, o))(params, flat)
        return q.reshape(t, e, -1)

    def _collect(self, env: Any, buffer: TaskReplay, params: Params, per_instance: bool, epsilon: float,
                 steps: int, clear: bool = True) -> float:
        return collect(env, buffer, lambda obs: self._instance_q(params, obs, per_instance), epsilon, steps,
                       self.generator, clear)

    def _support(self, env: Any, buffer: TaskReplay) -> tuple[Batch, float]:
        cfg = self.config
        detached = {k: v.detach() for k, v in self.params.items()}
        ret = self._collect(env, buffer, detached, False, cfg.eps_support, cfg.support_episodes * self.horizon)
        return buffer.sample(cfg.support_batch, self.inner_n_step, cfg.gamma, generator=self.generator), ret

    def _adapt_detached(self, support: Batch, steps: int) -> Params:
        inner_target = self.target if self.config.inner_target == "meta" else None
        lr = self.inner_lr if self.inner_lrs is None else {k: v.detach() for k, v in self.inner_lrs.items()}
        params = {k: v.detach() for k, v in self.params.items()}
        adapted = adapt_tasks(self.net, params, support, lr, steps, True, inner_target,
                              self.config.double, self.config.loss, self.inner_keys)
        return {k: v.detach() for k, v in adapted.items()}

    # -- meta-training --------------------------------------------------------------------
    def meta_train(self, train_tasks: Sequence[Task], iterations: int | None = None,
                   test_tasks: Sequence[Task] | None = None, out_dir: str | Path | None = None,
                   progress: bool | None = None) -> "MAMLDQN":
        """Run meta-training up to ``iterations`` total meta-updates (continuing from
        ``self.iteration`` after :meth:`load`). Logs to ``out_dir/metrics.jsonl`` and
        TensorBoard, checkpoints to ``out_dir/checkpoint.safetensors``."""
        cfg = self.config
        self.train_tasks = [self.family.validate_task(t) for t in train_tasks]
        self.test_tasks = [self.family.validate_task(t) for t in (test_tasks or self.test_tasks)]
        if not self.train_tasks:
            raise ValueError("meta_train needs at least one training task")
        if not isinstance(cfg.task_weights, str):
            validate_weights(cfg.task_weights, len(self.train_tasks))
        total = iterations if iterations is not None else cfg.iterations
        n_tasks, n_envs = len(self.train_tasks), cfg.envs_per_task
        env = self.family.make_batched(self.train_tasks, n_envs, device=self.device, seed=cfg.seed)
        if self._env_state is not None:
            env.generator.set_state(self._env_state)
        n = n_tasks * n_envs
        support_buf = TaskReplay(n, 1, cfg.support_episodes * self.horizon, env.obs_shape, self.device)
        query_cap = max(cfg.query_episodes * self.horizon, cfg.query_replay)
        if self._query_buf is None or (self._query_buf.n_tasks, self._query_buf.slots) != (n, query_cap):
            self._query_buf = TaskReplay(n, 1, query_cap, env.obs_shape, self.device)
        query_buf = self._query_buf
        logger = None
        if out_dir is not None:
            out_dir = Path(out_dir)
            resumed = self.iteration > 0 and (out_dir / "metrics.jsonl").exists()
            if resumed:  # drop rows logged after the checkpoint we resumed from
                keep = [r for r in read_metrics(out_dir) if r["step"] <= self.iteration]
                (out_dir / "metrics.jsonl").write_text("".join(_json_line(r) for r in keep))
            logger = RunLogger(out_dir, append=resumed)
        steps_per_iter = n * (cfg.support_episodes + cfg.query_episodes) * self.horizon  # == env_steps / iteration
        t0, start_iter = time.perf_counter(), self.iteration
        user_weights = None if isinstance(cfg.task_weights, str) else cfg.task_weights
        shown: dict[str, float] = {}
        updates_per_iter = 1 if cfg.algo == "reptile" else cfg.outer_steps
        with ProgressBar(f"meta-train {cfg.algo}", total - self.iteration, enabled=progress) as bar:
            while self.iteration < total:
                support, pre_return = self._support(env, support_buf)
                adapted = self._adapt_detached(support, cfg.inner_steps)
                post_return = self._collect(env, query_buf, adapted, True, cfg.eps_query,
                                            cfg.query_episodes * self.horizon, clear=not cfg.query_replay)
                outer_target = self.target if cfg.outer_target == "meta" else None
                inner_target = self.target if cfg.inner_target == "meta" else None
                for update in range(updates_per_iter):
                    if update:  # further meta-updates on fresh minibatches of the same episodes
                        support = support_buf.sample(cfg.support_batch, self.inner_n_step, cfg.gamma,
                                                     generator=self.generator)
                    query = query_buf.sample(cfg.query_batch, self.n_step, cfg.gamma, generator=self.generator)
                    self.optimizer.zero_grad(set_to_none=True)
                    if cfg.algo == "reptile":
                        with torch.no_grad():
                            per_task = vmap(lambda p, q: _td(self, p, outer_target, q))(adapted, query)
                        weights = self._weights(per_task, user_weights, n_tasks, n_envs)
                        for k, d in reptile_direction(self.params, adapted, weights).items():
                            self.params[k].grad = d
                        loss = (weights * per_task).sum() / weights.sum()
                    else:
                        _, per_task, _ = maml_loss(self.net, self.params, support, query, self.inner_lr,
                                                   cfg.inner_steps, cfg.algo == "fomaml", None, inner_target,
                                                   outer_target, cfg.double, cfg.loss, self.inner_keys)
                        weights = self._weights(per_task, user_weights, n_tasks, n_envs)
                        loss = (weights * per_task).sum() / weights.sum()
                        loss.backward()
                    loss_value = float(loss.detach())
                    if not math.isfinite(loss_value):
                        raise FloatingPointError(f"meta-loss became {loss_value} at iteration {self.iteration}; "
                                                 "lower inner_lr/outer_lr or check the family's rewards")
                    if cfg.grad_clip > 0:
                        torch.nn.utils.clip_grad_norm_(self.optimizer.param_groups[0]["params"], cfg.grad_clip)
                    self.optimizer.step()
                self.iteration += 1
                if self.iteration % cfg.target_update == 0:
                    with torch.no_grad():
                        for k, v in self.params.items():
                            self.target[k].copy_(v)
                elapsed = time.perf_counter() - t0
                done_iters = self.iteration - start_iter
                row: dict[str, Any] = {
                    "iteration": self.iteration, "env_steps": self.iteration * steps_per_iter,
                    "query_loss": loss_value, "pre_return": pre_return, "post_return": post_return,
                    "env_steps_per_s": done_iters * steps_per_iter / elapsed,
                    "meta_updates_per_s": done_iters * updates_per_iter / elapsed}
                if self.inner_lrs is not None:
                    row["inner_lr_mean"] = float(torch.cat([v.detach().flatten() for v in self.inner_lrs.values()]).mean())
                evaluate_now = cfg.eval_every and self.test_tasks and (
                    self.iteration % cfg.eval_every == 0 or self.iteration == total)
                if evaluate_now:
                    res = self.adaptation_returns(self.test_tasks, steps=(0, cfg.inner_steps),
                                                  runs=cfg.eval_runs, seed=10_000 + self.iteration)
                    row["test_return_pre"] = float(res["return"][0].mean())
                    row["test_return_post"] = float(res["return"][cfg.inner_steps].mean())
                    shown = {"held-out pre": row["test_return_pre"], "post": row["test_return_post"]}
                self._env_state = env.generator.get_state()
                if logger:
                    logger.log(self.iteration, row)
                    if (cfg.checkpoint_every and self.iteration % cfg.checkpoint_every == 0) or self.iteration == total:
                        self.save(out_dir / "checkpoint.safetensors")
                # pre/post_return in metrics.jsonl are the support/query episodes' returns (random
                # actions by default); the bar shows the latest held-out greedy returns instead
                bar.update(1, env_steps=steps_per_iter, **{"updates/s": row["meta_updates_per_s"], "loss": loss_value},
                           **shown)
        if logger:
            logger.close()
        return self

    def _weights(self, per_task: torch.Tensor, user: Sequence[float] | None, n_tasks: int, n_envs: int) -> torch.Tensor:
        by_task = per_task.detach().view(n_tasks, n_envs).mean(1)
        w = task_weights(user if user is not None else self.config.task_weights, by_task, n_tasks, self.device)
        return w.repeat_interleave(n_envs)

    # -- adaptation -----------------------------------------------------------------------
    def adaptation_spec(self) -> "AdaptSpec":
        """How this learner adapts to a new task (for :mod:`metadqn.evaluate`): θ, the inner
        step size(s), the support exploration, the adapted parameters and the inner TD loss."""
        from .evaluate import AdaptSpec
        cfg = self.config
        return AdaptSpec(self.net, self.params, self.inner_lr, cfg.eps_support, self.inner_keys, self.inner_n_step,
                         cfg.gamma, cfg.double, cfg.loss, cfg.support_batch,
                         self.target if cfg.inner_target == "meta" else None)

    @property
    def env_steps(self) -> int:
        """Env steps meta-training has used so far."""
        cfg = self.config
        return self.iteration * len(self.train_tasks) * cfg.envs_per_task * \
            (cfg.support_episodes + cfg.query_episodes) * self.horizon

    def adapt(self, task: Task | Mapping[str, Any], episodes: int | None = None, steps: int | None = None,
              seed: int = 0) -> Params:
        """Adapted parameters for one new task: collect ``episodes`` episodes with θ
        (epsilon-greedy ``eps_support``), then take ``steps`` inner gradient steps."""
        from .evaluate import adapt_instances
        task = self.family.validate_task(task)
        k = steps if steps is not None else self.config.inner_steps
        params = adapt_instances(self.family, self.adaptation_spec(), [task], 1,
                                 episodes or self.config.support_episodes, (k,), seed, self.device)[k]
        return {name: v[0] for name, v in params.items()}

    def adaptation_returns(self, tasks: Sequence[Task], steps: Sequence[int] = (0, 1, 3), episodes: int | None = None,
                           runs: int = 4, eval_episodes: int | None = None, seed: int = 0) -> dict[str, Any]:
        """Greedy return on ``tasks`` after k adaptation steps for each k in ``steps``.

        Returns ``{"return": {k: tensor [task, run]}, "nr": {k: tensor [task, run]} or None}``
        where NR = (R − R_random) / (R_oracle − R_random) when the family knows both.
        """
        from .evaluate import adaptation_curve
        tasks = [self.family.validate_task(t) for t in tasks]
        returns = adaptation_curve(self.family, self.adaptation_spec(), tasks, runs,
                                   episodes or self.config.support_episodes, steps,
                                   eval_episodes or self.config.eval_episodes, seed, self.device)
        oracle = [self.family.oracle_return(t) for t in tasks]
        rand = [self.family.random_return(t) for t in tasks]
        nr = None
        if all(o is not None for o in oracle) and all(r is not None for r in rand):
            o = torch.tensor(oracle, device=self.device).unsqueeze(1)
            r0 = torch.tensor(rand, device=self.device).unsqueeze(1)
            nr = {k: (v - r0) / (o - r0).clamp_min(1e-8) for k, v in returns.items()}
        return {"return": returns, "nr": nr}

    # -- persistence ----------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        opt_t, opt_meta = optimizer_tensors(self.optimizer)
        tensors = {**prefixed("params", self.params), **prefixed("target", self.target), **prefixed("opt", opt_t),
                   "rng/generator": self.generator.get_state()}
        if self.inner_lrs is not None:
            tensors.update(prefixed("inner_lr", self.inner_lrs))
        if self._env_state is not None:
            tensors["rng/env"] = self._env_state
        replay_meta = None
        if self.config.query_replay and self._query_buf is not None:  # resume must see the same data
            tensors.update(prefixed("query_replay", self._query_buf.state_tensors()))
            replay_meta = {"steps": self._query_buf.steps}  # its size is the tensors' shape
        meta = {"kind": "maml-dqn", "family": self.family.name, "family_options": self.family.options,
                "config": to_dict(self.config), "iteration": self.iteration, "optimizer": opt_meta,
                "query_replay": replay_meta,
                "train_tasks": [dict(t.params) for t in self.train_tasks],
                "test_tasks": [dict(t.params) for t in self.test_tasks]}
        save_checkpoint(path, tensors, meta)

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> "MAMLDQN":
        tensors, meta = load_checkpoint(path, kind="maml-dqn")
        family = make_family(meta["family"], **meta["family_options"])
        config = meta["config"] if device is None else {**meta["config"], "device": device}
        learner = cls(family, from_dict(MetaConfig, config))
        _copy_into(learner.params, unprefixed("params", tensors), path)
        _copy_into(learner.target, unprefixed("target", tensors), path)
        if learner.inner_lrs is not None:
            _copy_into(learner.inner_lrs, unprefixed("inner_lr", tensors), path)
        load_optimizer(learner.optimizer, unprefixed("opt", tensors), meta["optimizer"])
        learner.generator.set_state(tensors["rng/generator"])
        learner._env_state = tensors.get("rng/env")
        learner.iteration = int(meta["iteration"])
        learner.train_tasks = [family.task(**p) for p in meta["train_tasks"]]
        learner.test_tasks = [family.task(**p) for p in meta["test_tasks"]]
        replay = meta.get("query_replay")
        if replay:
            stored = unprefixed("query_replay", tensors)
            if "obs" not in stored:
                raise CheckpointError(f"{path}: the query replay's tensors are missing")
            instances, capacity = stored["obs"].shape[:2]  # [instance, slot, 1, *obs]
            learner._query_buf = TaskReplay(instances, 1, capacity, tuple(family.observation_space.shape),
                                            learner.device)
            try:
                learner._query_buf.load_state(stored, replay["steps"])
            except ValueError as e:
                raise CheckpointError(f"{path}: {e}") from None
        return learner


def _td(learner: MAMLDQN, params: Params, target: Params | None, batch: Batch) -> torch.Tensor:
    return td_loss(learner.net, params, target, batch, learner.config.double, learner.config.loss)


def _copy_into(dst: Params, src: Mapping[str, torch.Tensor], path: str | Path) -> None:
    if set(dst) != set(src):
        raise ValueError(f"{path}: checkpoint tensors {sorted(src)} do not match the network {sorted(dst)}")
    with torch.no_grad():
        for k, v in src.items():
            if v.shape != dst[k].shape:
                raise ValueError(f"{path}: {k} has shape {list(v.shape)}, the network expects {list(dst[k].shape)}")
            dst[k].copy_(v)


def _json_line(row: Mapping[str, Any]) -> str:
    return json.dumps(row) + "\n"


def summarize(result: Mapping[str, Any]) -> dict[str, Any]:
    """Means over tasks and runs of :meth:`MAMLDQN.adaptation_returns`."""
    out: dict[str, Any] = {"return": {str(k): float(v.mean()) for k, v in result["return"].items()}}
    if result["nr"] is not None:
        out["nr"] = {str(k): float(v.mean()) for k, v in result["nr"].items()}
    return out


__all__ = ["ALGOS", "MAMLDQN", "MetaConfig", "summarize"]
