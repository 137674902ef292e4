"""DQN on one task (the baseline), on several tasks with shared parameters (multi-task DQN),
or on several tasks with one network each trained side by side (``independent=True``: the
per-task oracle of the evaluation, every network updated in one vmapped step).

Reads top to bottom like CleanRL: collect a step of every ``[task, env]`` with
epsilon-greedy, store it in the per-task replay, take gradient steps on the n-step Double
DQN loss, copy the target network now and then, evaluate greedily and keep the best
parameters.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch.func import vmap

from .checkpoint import load_checkpoint, prefixed, save_checkpoint, unprefixed
from .config import from_dict, resolve_device, to_dict, unset_from, with_preset
from .rollout import epsilon_greedy, greedy_returns, linear_schedule, params_q
from .td import LOSSES, td_loss
from .nets import NetSpec, Params, build_qnet, init_params, q_values
from .progress import ProgressBar
from .replay import TaskReplay
from .runlog import GracefulStop, RunLogger, TrainingInterrupted
from .seeding import derive_seed
from .tasks import Task, TaskFamily, make_family
from .tasks.registry import saved_family


# Settings measured to beat the defaults on one family (benchmarks/RESULTS.md, the time-to-solve
# tables): DQN(family) without a config — and so `metadqn dqn --family F` and the per-task oracles
# of an evaluation — takes them for every field the user leaves unset, and the CLI prints them
# (like RL-Zoo's per-environment hyperparameters). acrobot-physics: -1 per step until the swing-up,
# over episodes of up to 500 steps; 8-step returns carry the goal's signal back faster, and with
# them a quarter of an update per env step at lr 1e-3 suffices.
DQN_FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "acrobot-physics": {"n_step": 8, "updates_per_step": 0.25, "lr": 1e-3},
}


@dataclass
class DQNConfig:
    """Hyperparameters of (multi-task) DQN. Step counts are environment steps summed over
    every task and environment unless said otherwise (with ``independent``: per task)."""

    total_steps: int = 50_000          # environment steps to train for
    n_envs: int = 8                    # environments per task, stepped together
    net: NetSpec = field(default_factory=NetSpec)
    lr: float = 2.3e-3                 # Adam step size
    batch_size: int = 64               # transitions per task per gradient step
    buffer_size: int = 50_000          # replay capacity per task (transitions)
    learning_starts: int = 1_000       # environment steps before the first update
    updates_per_step: float = 0.5      # gradient steps per environment step
    gamma: float = 0.99                # discount
    n_step: int = 3                    # n-step returns (1 = plain TD)
    double: bool = True                # Double DQN targets
    loss: str = "huber"                # huber or mse
    target_update: int = 128           # gradient steps between target-network copies
    grad_clip: float = 10.0            # max gradient norm (0 = off)
    eps_start: float = 1.0             # epsilon at the start
    eps_end: float = 0.04              # epsilon after the decay
    eps_fraction: float = 0.16         # fraction of training over which epsilon decays
    eval_every: int = 5_000            # environment steps between greedy evaluations (0 = off)
    eval_episodes: int = 10            # episodes per task in each evaluation
    keep_best: bool = True             # keep the parameters with the best greedy evaluation
    independent: bool = False          # one network per task, trained side by side; step counts per task
    seed: int = 0
    device: str = "cpu"                    # or cuda, cuda:N, auto (cuda where this machine has it; saved resolved)

    @staticmethod
    def family_defaults(family: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """``family``'s recommended settings (:data:`DQN_FAMILY_DEFAULTS`) that ``values`` leave
        unset."""
        return unset_from(DQN_FAMILY_DEFAULTS.get(family, {}), values)

    def __post_init__(self) -> None:
        self.device = resolve_device(self.device)  # auto: the device this machine has
        positive = ("total_steps", "n_envs", "batch_size", "buffer_size", "n_step", "target_update", "eval_episodes")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or not math.isfinite(self.lr):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if not 0 <= self.gamma <= 1:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.updates_per_step < 0 or self.learning_starts < 0 or self.eval_every < 0:
            raise ValueError("updates_per_step, learning_starts and eval_every must be >= 0")
        for name in ("eps_start", "eps_end"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.net.film and self.net.context < 1:
            raise ValueError("net.film lets a task context scale the Q-network's layers: the DQN has none "
                             "(set net.context too, or leave film off)")


class DQN:
    """DQN with Double DQN, n-step returns and Huber loss.

    ``DQN(family)`` trains on the family's default task; ``DQN(family, tasks)`` with a list
    shares one network over every task (the multi-task baseline). Without ``config``, the
    family's recommended settings (:data:`DQN_FAMILY_DEFAULTS`) fill what ``overrides`` leave
    unset.
    """

    def __init__(self, family: TaskFamily | str, tasks: Task | Sequence[Task] | Mapping[str, Any] | None = None,
                 config: DQNConfig | None = None, **overrides: Any) -> None:
        self.family = make_family(family) if isinstance(family, str) else family
        if tasks is None:
            tasks = [self.family.default_task()]
        elif isinstance(tasks, (Task, Mapping)):
            tasks = [tasks]
        self.tasks = [self.family.validate_task(t) for t in tasks]
        # a config is taken as it is; without one, the family's recommended settings fill what the
        # overrides leave unset
        base = to_dict(config) if config is not None else DQNConfig.family_defaults(self.family.name, overrides)
        self.config = from_dict(DQNConfig, with_preset(base, overrides))
        cfg = self.config
        self.device = torch.device(cfg.device)
        obs_shape = tuple(self.family.observation_space.shape)
        self.net = build_qnet(cfg.net, obs_shape, int(self.family.action_space.n)).to(self.device)
        if cfg.independent:  # parameters with a leading task axis, task i initialised from seed + i
            inits = [init_params(self.net, cfg.seed + i) for i in range(len(self.tasks))]
            self.params: Params = {k: torch.stack([p[k] for p in inits]).to(self.device).requires_grad_()
                                   for k in inits[0]}
        else:
            for k, v in init_params(self.net, cfg.seed).items():
                self.net.get_parameter(k).data.copy_(v)
            self.params = dict(self.net.named_parameters())
        self.history: list[dict[str, float]] = []

    # -- training -------------------------------------------------------------------------
    def learn(self, out_dir: str | Path | None = None, progress: bool | None = None,
              callback: Callable[["DQN", int], bool | None] | None = None, callback_every: int = 1_000) -> "DQN":
        """Train for ``config.total_steps`` env steps. ``callback(agent, env_steps)`` runs every
        ``callback_every`` env steps; returning False stops training there (as in SB3)."""
        cfg, dev = self.config, self.device
        if callback_every < 1:
            raise ValueError(f"callback_every must be >= 1, got {callback_every}")
        n_tasks = len(self.tasks)
        env = self.family.make_batched(self.tasks, cfg.n_envs, device=dev, seed=cfg.seed)
        replay = TaskReplay(n_tasks, cfg.n_envs, cfg.buffer_size, env.obs_shape, dev)
        gen = torch.Generator(device=dev).manual_seed(derive_seed(cfg.seed, "dqn"))
        target = {k: v.detach().clone() for k, v in self.params.items()}
        # fused: one kernel for the whole Adam step (2.5x faster than foreach for a [256, 256] MLP on CPU)
        opt = torch.optim.Adam(self.params.values(), lr=cfg.lr, fused=True)
        logger = RunLogger(out_dir) if out_dir is not None else None
        ind = cfg.independent
        per_iter = cfg.n_envs if ind else n_tasks * cfg.n_envs  # env steps per iteration, as counted
        iterations = math.ceil(cfg.total_steps / per_iter)
        best_ret = torch.full((n_tasks if ind else 1,), -math.inf, device=dev)
        best = {k: v.detach().clone() for k, v in self.params.items()}
        recent = deque(maxlen=100)
        credit, updates, loss_value, next_eval, next_callback = 0.0, 0, float("nan"), cfg.eval_every, callback_every
        obs = env.reset()
        t0 = time.perf_counter()
        label = f"dqn x{n_tasks} independent" if ind else "dqn"
        with GracefulStop() as stop, ProgressBar(label, iterations, enabled=progress) as bar:
            for it in range(iterations):
                steps = (it + 1) * per_iter
                eps = linear_schedule(cfg.eps_start, cfg.eps_end, cfg.eps_fraction, it / iterations)
                with torch.no_grad():
                    actions = epsilon_greedy(params_q(self.net, self.params, per_task=ind)(obs), eps, gen)
                out = env.step(actions)
                replay.add(obs, actions, out.reward, out.next_obs, out.terminated, out.done)
                obs = out.obs
                if bool(out.done.any()):
                    recent.extend(out.episode_return[out.done].tolist())

                if steps >= cfg.learning_starts:
                    credit += per_iter * cfg.updates_per_step
                    while credit >= 1:
                        credit -= 1
                        batch = replay.sample(cfg.batch_size, cfg.n_step, cfg.gamma, generator=gen)
                        if ind:  # each task's loss reaches only its own network
                            loss = vmap(lambda p, t, b: td_loss(self.net, p, b, target=t, double=cfg.double, loss=cfg.loss))(
                                self.params, target, batch).sum()
                        else:
                            loss = td_loss(self.net, self.params, batch, target=target, double=cfg.double, loss=cfg.loss)
                        opt.zero_grad(set_to_none=True)
                        loss.backward()
                        if cfg.grad_clip > 0:
                            _clip(self.params, cfg.grad_clip, per_task=ind)
                        opt.step()
                        updates += 1
                        if updates % cfg.target_update == 0:
                            for k, v in self.params.items():
                                target[k].copy_(v.detach())
                    if updates:
                        loss_value = float(loss.detach())
                        if not math.isfinite(loss_value):
                            raise FloatingPointError(f"DQN loss became {loss_value} after {updates} updates; "
                                                     "lower lr or check the task's rewards")

                last = it == iterations - 1
                if cfg.eval_every and (steps >= next_eval or last):
                    next_eval += cfg.eval_every
                    rets = self.evaluate(episodes=cfg.eval_episodes, seed=derive_seed(cfg.seed, "dqn-eval", it)).mean(1)
                    rets = rets if ind else rets.mean().reshape(1)
                    better = rets > best_ret                        # per network
                    best_ret = torch.where(better, rets, best_ret)
                    for k, v in self.params.items():  # better is [task] or [1]: broadcast over the rest
                        best[k] = torch.where(better.view(-1, *[1] * (v.dim() - 1)), v.detach(), best[k])
                    ret = float(rets.mean())
                    row = {"env_steps": steps, "updates": updates, "epsilon": eps, "loss": loss_value,
                           "train_return": float(np.mean(recent)) if recent else float("nan"),
                           "eval_return": ret, "env_steps_per_s": steps / (time.perf_counter() - t0)}
                    self.history.append(row)
                    if logger:
                        logger.log(steps, row)
                bar.update(1, env_steps=per_iter, loss=loss_value,
                           ret=float(np.mean(recent)) if recent else float("nan"))
                if callback is not None and steps >= next_callback:
                    next_callback += callback_every
                    if callback(self, steps) is False:
                        break
                if stop.requested and it < iterations - 1:  # SIGINT/SIGTERM: keep the network so far
                    checkpoint = None
                    if logger:
                        logger.close()
                        checkpoint = Path(out_dir) / "checkpoint.safetensors"
                        self.save(checkpoint)
                    raise TrainingInterrupted(steps, checkpoint, resumable=False)
        if cfg.keep_best and cfg.eval_every and bool(torch.isfinite(best_ret).all()):
            with torch.no_grad():
                for k, v in best.items():
                    self.params[k].copy_(v)
        self.train_seconds = time.perf_counter() - t0
        if logger:
            logger.close()
            self.save(Path(out_dir) / "checkpoint.safetensors")
        return self

    # -- using the policy -----------------------------------------------------------------
    @torch.no_grad()
    def predict(self, obs: np.ndarray | torch.Tensor) -> np.ndarray:
        """Greedy actions for observations ``[..., *obs_shape]`` (``independent``: ``[task, ..., *obs_shape]``)."""
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=self.device)
        if self.config.independent:
            if x.dim() < len(self.net.obs_shape) + 1 or x.shape[0] != len(self.tasks):
                raise ValueError(f"an independent DQN needs observations [task={len(self.tasks)}, ..., *obs_shape]")
            return params_q(self.net, self.params, per_task=True)(x).argmax(-1).cpu().numpy()
        return q_values(self.net, self.params, x).argmax(-1).cpu().numpy()

    def evaluate(self, tasks: Sequence[Task] | None = None, episodes: int = 10, seed: int = 0) -> torch.Tensor:
        """Greedy returns ``[task, episodes]`` on ``tasks`` (default: the training tasks;
        ``independent``: network i plays task i, so as many tasks as networks)."""
        tasks = list(tasks or self.tasks)
        if self.config.independent and len(tasks) != len(self.tasks):
            raise ValueError(f"an independent DQN has {len(self.tasks)} networks, one per task; got {len(tasks)} tasks")
        return greedy_returns(self.family, tasks, params_q(self.net, self.params, per_task=self.config.independent),
                              episodes=episodes, device=self.device, seed=seed)

    # -- persistence ----------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        meta = {"kind": "dqn", "family": self.family.name, "family_options": self.family.options,
                "tasks": [t.to_dict()["params"] for t in self.tasks], "config": to_dict(self.config)}
        save_checkpoint(path, prefixed("params", self.params), meta)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "DQN":
        tensors, meta = load_checkpoint(path, kind="dqn")
        family = saved_family(meta["family"], meta["family_options"])
        agent = cls(family, meta["tasks"], from_dict(DQNConfig, {**meta["config"], "device": device}))
        params = unprefixed("params", tensors)
        missing = set(agent.params) ^ set(params)
        if missing:
            raise ValueError(f"{path}: checkpoint parameters do not match the network ({sorted(missing)})")
        with torch.no_grad():
            for k, v in params.items():
                if v.shape != agent.params[k].shape:
                    raise ValueError(f"{path}: parameter {k} has shape {list(v.shape)}, "
                                     f"network expects {list(agent.params[k].shape)}")
                agent.params[k].copy_(v)
        return agent


def _clip(params: Params, max_norm: float, per_task: bool) -> None:
    """Clip gradients to ``max_norm``: over all parameters, or per network (leading task axis)."""
    if not per_task:
        torch.nn.utils.clip_grad_norm_(params.values(), max_norm)
        return
    grads = [p.grad for p in params.values() if p.grad is not None]
    norms = torch.sqrt(sum(g.flatten(1).square().sum(1) for g in grads))          # [task]
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.view(-1, *[1] * (g.dim() - 1)))
