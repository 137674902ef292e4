"""The meta-learner: :class:`MAMLDQN` loops :func:`~metadqn.meta.iteration.meta_iteration`,
logs, evaluates on held-out tasks and checkpoints. What one iteration does is in
:mod:`metadqn.meta.iteration`; how a new task is adapted to is in :mod:`metadqn.adaptation`.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from .adaptation import adapt_instances, adaptation_curve
from .adapters import Adapter, LinearModel, ModelHead, SetEncoder
from .checkpoint import (CheckpointError, load_checkpoint, load_optimizer, optimizer_tensors, prefixed,
                         save_checkpoint, unprefixed)
from .config import from_dict, to_dict, with_preset
from .meta.config import ALGOS, MetaConfig
from .meta.iteration import Buffers, MetaState, inner_keys, make_adapter, meta_iteration
from .meta.weighting import validate_weights
from .nets import Params, build_qnet, init_params
from .progress import ProgressBar
from .replay import TaskReplay
from .runlog import GracefulStop, TrainingInterrupted, open_metrics
from .scale.rollout import RolloutWorkers, rollout_workers
from .seeding import derive_seed
from .stats import normalized
from .tasks import Task, TaskFamily, TimeFamily, make_family, with_time
from .tasks.registry import saved_family


@dataclass
class Best:
    """keep_best_every: the best check of meta-training so far — its mean adapted greedy return
    on the training tasks, its iteration, and copies of θ and the step sizes then."""

    score: float
    iteration: int
    params: Params
    inner_lrs: Params | None


def _copy(params: Params) -> Params:
    return {k: v.detach().clone() for k, v in params.items()}


class MAMLDQN:
    """A Q-network meta-trained to adapt to a new task in a few cheap steps: by default
    context MAML (a task context adapted on a model loss) — or the family's own default
    algorithm (:data:`~metadqn.meta.config.FAMILY_ALGOS`: ``blr`` on the bandit and preference);
    ``algo="maml"`` (and fomaml, metasgd, reptile) for whole-network MAML, ``algo="encoder"``
    for the inference baseline, ``algo="blr"`` for a closed-form posterior context.

    >>> family = make_family("gridnav")
    >>> learner = MAMLDQN(family)                 # context MAML; MAMLDQN(family, algo="maml") for MAML
    >>> learner.meta_train(iterations=300)        # the config's split: 40 train, 20 held-out  # doctest: +SKIP
    >>> adapted = learner.adapt(learner.test_tasks[0], episodes=1, steps=5)                   # doctest: +SKIP
    """

    def __init__(self, family: TaskFamily | str, config: MetaConfig | None = None, **overrides: Any) -> None:
        """Settings: ``config`` (default ``MetaConfig()``) with keyword ``overrides`` on top;
        settings left unset take their algorithm's default (:data:`~metadqn.meta.config.ALGO_DEFAULTS`).
        Without ``config``, the family's default algorithm where ``overrides`` name none
        (:data:`~metadqn.meta.config.FAMILY_ALGOS`) and its recommended settings
        (:data:`~metadqn.meta.config.FAMILY_DEFAULTS`) fill what ``overrides`` leave unset; a
        ``config`` is taken as it is."""
        self.family = make_family(family) if isinstance(family, str) else family
        base = to_dict(config) if config is not None else MetaConfig.family_defaults(self.family, overrides)
        self.config = from_dict(MetaConfig, with_preset(base, overrides))
        cfg = self.config
        if isinstance(self.family, TimeFamily):
            raise ValueError("pass the family itself and time_feature=True: a run saves its family by name and "
                             "options, and time_feature is what adds t / H to its observations")
        if cfg.time_feature:  # the learner's own view of the family: its tasks, name and episodes are the same
            self.family = with_time(self.family)
        self.device = torch.device(cfg.device)
        obs_shape, n_actions = tuple(self.family.observation_space.shape), int(self.family.action_space.n)
        self.model: ModelHead | LinearModel | None = None
        net_spec = cfg.net
        if cfg.algo == "blr":  # a linear model on net.context features; the Q-network reads its weights vec(W_N)
            self.model = LinearModel(obs_shape, n_actions, cfg.net.context, cfg.model_hidden, cfg.reward_model,
                                     cfg.model_obs_weight, newest=cfg.context_obs == "newest")
            net_spec = replace(cfg.net, context=self.model.context_width)
        self.net = build_qnet(net_spec, obs_shape, n_actions).to(self.device)
        params = init_params(self.net, cfg.seed)
        if isinstance(self.model, LinearModel):
            params.update(self.model.init_params(derive_seed(cfg.seed, "model-head")))
        self.encoder: SetEncoder | None = None
        inner_lrs = None
        if cfg.algo in ("context", "encoder"):  # a model head m(s, a; c)
            self.model = ModelHead(obs_shape, n_actions, cfg.net.context, cfg.model_hidden, cfg.reward_model,
                                   members=cfg.model_members, newest=cfg.context_obs == "newest")
            params.update(self.model.init_params(derive_seed(cfg.seed, "model-head")))
        if cfg.task_loss_weight > 0:  # a linear probe c → the task's scaled parameters (meta-training only)
            n_task = len(self.family.task_vector(self.family.default_task()))
            if n_task == 0:
                raise ValueError(f"task_loss_weight: family {self.family.name!r} has no inferable task parameters")
            gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "task-probe"))
            params["probe.weight"] = torch.randn(n_task, cfg.net.context, generator=gen) * cfg.net.context ** -0.5
            params["probe.bias"] = torch.zeros(n_task)
        if cfg.algo in ("context", "encoder") and cfg.inner_steps:  # learned step sizes α [K, d]
            inner_lrs = {"context": torch.full((cfg.inner_steps, cfg.net.context), cfg.inner_lr)}
        if cfg.algo in ("context", "encoder") and cfg.context_starts > 1:  # more learned starting contexts
            gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "context-starts"))
            params["context_starts"] = torch.randn(cfg.context_starts - 1, cfg.net.context, generator=gen)
        if cfg.pooled_ends > 1:  # the pool's spread map A (from the identity) and log temperature
            params["pool.spread"] = torch.eye(cfg.net.context)
            params["pool.log_tau"] = torch.tensor(math.log(1e-3))
        if cfg.algo == "encoder":
            self.encoder = SetEncoder(obs_shape, n_actions, cfg.net.context, cfg.encoder_hidden, cfg.encoder_head,
                                      pooling=cfg.encoder_pooling, latent=cfg.encoder_latent,
                                      measurements=cfg.encoder_measurements, newest=cfg.context_obs == "newest")
            params.update(self.encoder.init_params(derive_seed(cfg.seed, "set-encoder")))
        elif cfg.algo == "metasgd":
            moved = inner_keys(cfg, params) or tuple(params)
            inner_lrs = {k: torch.full_like(params[k], cfg.inner_lr) for k in moved}
        params = {k: v.to(self.device).requires_grad_() for k, v in params.items()}
        if inner_lrs is not None:
            inner_lrs = {k: v.to(self.device).requires_grad_() for k, v in inner_lrs.items()}
        optimizer = torch.optim.Adam([*params.values(), *(inner_lrs or {}).values()], lr=cfg.outer_lr)
        generator = torch.Generator(device=self.device).manual_seed(derive_seed(cfg.seed, "meta-train"))
        self.state = MetaState(params, inner_lrs, _copy(params), optimizer,
                               generator)
        self.train_tasks: list[Task] = []
        self.test_tasks: list[Task] = []
        # carried between meta_train calls on the same training tasks (resume must continue them)
        self._env_state: torch.Tensor | None = None
        self._query_buf: TaskReplay | None = None
        self.moved_from: str | None = None  # load: the device it was trained on, where that was another kind
        self.best: Best | None = None  # keep_best_every: the best check so far (its parameters and return)

    @property
    def params(self) -> Params:
        """θ, the meta-learned initial parameters."""
        return self.state.params

    @property
    def inner_lrs(self) -> Params | None:
        """Meta-SGD's learned per-element step sizes (None for other algorithms)."""
        return self.state.inner_lrs

    @property
    def iteration(self) -> int:
        return self.state.iteration

    @property
    def horizon(self) -> int:
        return self.family.max_episode_steps

    @property
    def env_steps_per_iteration(self) -> int:
        """Env steps of one iteration: support and query episodes of every training instance
        (with ``support_episodes_max``, those of an iteration with ``support_episodes``)."""
        cfg = self.config
        return len(self.train_tasks) * cfg.envs_per_task * (cfg.support_episodes + cfg.query_episodes) * self.horizon

    def env_steps_until(self, iterations: int) -> int:
        """Env steps of meta-iterations 0 … ``iterations`` − 1 together."""
        cfg = self.config
        episodes = cfg.support_episodes_until(iterations) + iterations * cfg.query_episodes
        return len(self.train_tasks) * cfg.envs_per_task * episodes * self.horizon

    @property
    def env_steps(self) -> int:
        """Env steps meta-training has used so far."""
        return self.env_steps_until(self.iteration)

    def split(self) -> tuple[list[Task], list[Task]]:
        """The config's train/held-out split (``n_train_tasks``, ``n_test_tasks``, ``split_seed``)."""
        cfg = self.config
        return self.family.split(cfg.n_train_tasks, cfg.n_test_tasks, seed=cfg.split_seed)

    def adapter(self) -> Adapter:
        """How this learner adapts to a new task (detached from meta-training's graph)."""
        return make_adapter(self.net, self.state, self.config, self.horizon, self.model, self.encoder).detached()

    # -- meta-training --------------------------------------------------------------------
    def meta_train(self, train_tasks: Sequence[Task] | None = None, iterations: int | None = None,
                   test_tasks: Sequence[Task] | None = None, out_dir: str | Path | None = None,
                   progress: bool | None = None, workers: RolloutWorkers | None = None,
                   callback: Callable[["MAMLDQN", dict[str, Any]], None] | None = None) -> "MAMLDQN":
        """Meta-train until ``iterations`` iterations in total (default ``config.iterations``;
        continuing from :attr:`iteration` after :meth:`load`). Without ``train_tasks`` the
        learner's own (after :meth:`load`) or the config's :meth:`split` are used. With
        ``out_dir``: metrics in ``metrics.jsonl`` and TensorBoard, checkpoints in
        ``checkpoint.safetensors`` (run directories: :mod:`metadqn.runs`). SIGINT or SIGTERM
        finishes the current iteration, saves a checkpoint and raises
        :class:`~metadqn.runlog.TrainingInterrupted`; a second signal stops at once. ``workers``:
        step a ``from_gymnasium`` family's environments on Ray actors (same transitions;
        :mod:`metadqn.scale.rollout`). ``callback(learner, row)`` runs after every iteration
        is logged and checkpointed (a sweep reports to Ray Tune from it)."""
        cfg = self.config
        if train_tasks is None and not self.train_tasks:
            train_tasks, split_test = self.split()
            test_tasks = split_test if test_tasks is None else test_tasks
        new_train = [self.family.validate_task(t) for t in (train_tasks if train_tasks is not None
                                                            else self.train_tasks)]
        if not new_train:
            raise ValueError("meta_train needs at least one training task")
        if [t.key() for t in new_train] != [t.key() for t in self.train_tasks]:
            self._env_state, self._query_buf = None, None  # other tasks: nothing carries over
        self.train_tasks = new_train
        self.test_tasks = [self.family.validate_task(t) for t in (test_tasks if test_tasks is not None
                                                                  else self.test_tasks)]
        if not isinstance(cfg.task_weights, str):
            validate_weights(cfg.task_weights, len(self.train_tasks))
        total = iterations if iterations is not None else cfg.iterations
        end = max(total, cfg.iterations)  # the run's end (a call that stops short of the config's is a part of it)
        if self.moved_from is not None and 0 < self.iteration < total:
            warnings.warn(f"continuing on {self.device} a run trained on {self.moved_from}: its random streams start "
                          "afresh from the seed, so this is not the run it would have been there", stacklevel=2)
        resources = contextlib.ExitStack()  # rollout workers step training and held-out evaluation alike
        with contextlib.ExitStack() as on_error:
            on_error.callback(resources.close)
            resources.enter_context(rollout_workers(self.family, workers))
            env = self.family.make_batched(self.train_tasks, cfg.envs_per_task, device=self.device,
                                           seed=derive_seed(cfg.seed, "meta-env"))
            resources.callback(env.close)
            on_error.pop_all()
        if self._env_state is not None:
            env.generator.set_state(self._env_state)
        n = len(self.train_tasks) * cfg.envs_per_task
        query_cap = max(cfg.query_episodes * self.horizon, cfg.query_replay)
        if self._query_buf is None:
            self._query_buf = TaskReplay(n, 1, query_cap, env.obs_shape, self.device)
        most = max(cfg.support_episodes, cfg.support_episodes_max)
        buffers = Buffers(TaskReplay(n, 1, most * self.horizon, env.obs_shape, self.device), self._query_buf)
        logger = None
        if out_dir is not None:
            logger = open_metrics(out_dir, resume_step=self.iteration)
        t0, start_iter, start_steps = time.perf_counter(), self.iteration, self.env_steps
        last_steps = start_steps
        shown: dict[str, float] = {}
        try:
            with GracefulStop() as stop, \
                    ProgressBar(f"meta-train {cfg.algo}", total - self.iteration, enabled=progress) as bar:
                while self.iteration < total:
                    row = meta_iteration(self.state, net=self.net, env=env, buffers=buffers, cfg=cfg, model=self.model,
                                         encoder=self.encoder)
                    self._env_state = env.generator.get_state()
                    elapsed, done, env_steps = time.perf_counter() - t0, self.iteration - start_iter, self.env_steps
                    row.update(iteration=self.iteration, env_steps=env_steps,
                               env_steps_per_s=(env_steps - start_steps) / elapsed,
                               meta_updates_per_s=done * cfg.outer_steps / elapsed)
                    if cfg.keep_best_every and (self.iteration % cfg.keep_best_every == 0 or self.iteration == end):
                        row.update(self._keep_best(final=self.iteration == end))
                    if cfg.eval_every and self.test_tasks and (self.iteration % cfg.eval_every == 0
                                                               or self.iteration == total):
                        res = self.adaptation_returns(self.test_tasks, steps=(0, cfg.inner_steps), runs=cfg.eval_runs,
                                                      seed=derive_seed(cfg.seed, "held-out-eval", self.iteration))
                        row["test_return_pre"] = float(res["return"][0].mean())
                        row["test_return_post"] = float(res["return"][cfg.inner_steps].mean())
                        shown = {"held-out pre": row["test_return_pre"], "post": row["test_return_post"]}
                    stopping = stop.requested and self.iteration < total  # SIGINT/SIGTERM: save, then stop
                    checkpoint = Path(out_dir) / "checkpoint.safetensors" if logger else None
                    if logger:
                        logger.log(self.iteration, row)
                        if (cfg.checkpoint_every and self.iteration % cfg.checkpoint_every == 0) \
                                or self.iteration == total or stopping:
                            self.save(checkpoint)
                    bar.update(1, env_steps=env_steps - last_steps,
                               **{"updates/s": row["meta_updates_per_s"], "loss": row["query_loss"]}, **shown)
                    last_steps = env_steps
                    if callback is not None:
                        callback(self, row)
                    if stopping:
                        raise TrainingInterrupted(self.iteration, checkpoint)
        finally:
            resources.close()
            if logger:
                logger.close()
        return self

    @property
    def kept_iteration(self) -> int:
        """The iteration whose parameters the learner holds: its last, or, once a keep_best_every
        run has reached its end (``config.iterations`` or beyond), the best check's."""
        done = self.best is not None and self.iteration >= self.config.iterations
        return self.best.iteration if done else self.iteration

    def _keep_best(self, *, final: bool) -> dict[str, Any]:
        """keep_best_every: the adapted greedy return on the training tasks now (the same
        support data at every check); the best check's parameters are kept, and at the run's
        ``final`` iteration (``config.iterations``, or a call's larger ``iterations``) they become
        the run's θ, step sizes and meta target — training continued later starts from them."""
        cfg, st = self.config, self.state
        score = float(self.adaptation_returns(self.train_tasks, steps=(cfg.inner_steps,), runs=cfg.eval_runs,
                                              seed=derive_seed(cfg.seed, "keep-best"))["return"][cfg.inner_steps].mean())
        if self.best is None or score > self.best.score:
            self.best = Best(score, self.iteration, _copy(st.params), None if st.inner_lrs is None else _copy(st.inner_lrs))
        if final:  # also where the best is this iteration: the meta target still lags θ then
            with torch.no_grad():
                for k, v in self.best.params.items():
                    st.params[k].copy_(v)
                    st.target[k].copy_(v)
                for k, v in (self.best.inner_lrs or {}).items():
                    st.inner_lrs[k].copy_(v)
        return {"train_return_adapted": score, "best_iteration": self.best.iteration}

    # -- adaptation -----------------------------------------------------------------------
    def adapt(self, task: Task | Mapping[str, Any], episodes: int | None = None, steps: int | None = None,
              seed: int = 0) -> Params:
        """The adapted state for one new task (a parameter dict; ``algo="context"``: the
        context ``{"context": c}``): collect ``episodes`` episodes (default ``support_episodes``)
        with the prior, epsilon-greedy ``eps_support``, then take ``steps`` (default
        ``inner_steps``) adaptation steps — the path evaluation uses."""
        task = self.family.validate_task(task)
        k = steps if steps is not None else self.config.inner_steps
        episodes = episodes if episodes is not None else self.config.support_episodes
        if episodes < 1 or k < 0:
            raise ValueError(f"adapt needs episodes >= 1 and steps >= 0, got episodes={episodes}, steps={k}")
        state = adapt_instances(self.adapter(), self.family, [task], runs_per_task=1, episodes=episodes,
                                steps=(k,), seed=seed, device=self.device)[k]
        return {name: v[0] for name, v in state.items()}

    def adaptation_returns(self, tasks: Sequence[Task], steps: Sequence[int] = (0, 1, 3), episodes: int | None = None,
                           runs: int = 4, eval_episodes: int | None = None, seed: int = 0) -> dict[str, Any]:
        """Greedy return on ``tasks`` after k adaptation steps for each k in ``steps``.

        Returns ``{"return": {k: tensor [task, run]}, "nr": {k: tensor [task, run]} or None}``
        where NR = (R − R_random) / (R_oracle − R_random) when the family knows both.
        """
        tasks = [self.family.validate_task(t) for t in tasks]
        returns = adaptation_curve(self.adapter(), self.family, tasks, runs_per_task=runs,
                                   episodes=episodes or self.config.support_episodes, steps=steps,
                                   eval_episodes=eval_episodes or self.config.eval_episodes, seed=seed,
                                   device=self.device)
        oracle = [self.family.oracle_return(t) for t in tasks]
        rand = [self.family.random_return(t) for t in tasks]
        nr = None
        if all(o is not None for o in oracle) and all(r is not None for r in rand):
            nr = {k: torch.as_tensor(normalized(v.cpu().numpy(), np.array(rand), np.array(oracle)))
                  for k, v in returns.items()}
        return {"return": returns, "nr": nr}

    # -- persistence ----------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        st = self.state
        opt_t, opt_meta = optimizer_tensors(st.optimizer)
        tensors = {**prefixed("params", st.params), **prefixed("target", st.target), **prefixed("opt", opt_t),
                   "rng/generator": st.generator.get_state()}
        if st.inner_lrs is not None:
            tensors.update(prefixed("inner_lr", st.inner_lrs))
        if self._env_state is not None:
            tensors["rng/env"] = self._env_state
        if self.best is not None:
            tensors.update(prefixed("best/params", self.best.params))
            if self.best.inner_lrs is not None:
                tensors.update(prefixed("best/inner_lr", self.best.inner_lrs))
        replay_meta = None
        if self.config.query_replay and self._query_buf is not None:  # resume must see the same data
            tensors.update(prefixed("query_replay", self._query_buf.state_tensors()))
            replay_meta = {"steps": self._query_buf.steps}  # its size is the tensors' shape
        meta = {"kind": "maml-dqn", "family": self.family.name, "family_options": self.family.options,
                "config": to_dict(self.config), "iteration": self.iteration, "optimizer": opt_meta,
                "query_replay": replay_meta,
                "best": None if self.best is None else {"score": self.best.score, "iteration": self.best.iteration},
                "train_tasks": [dict(t.params) for t in self.train_tasks],
                "test_tasks": [dict(t.params) for t in self.test_tasks]}
        save_checkpoint(path, tensors, meta)

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> "MAMLDQN":
        """The learner a checkpoint holds, on ``device`` (default: the one it was trained on, or
        the CPU where that is a GPU this machine lacks — a run trained on a GPU box evaluates on a
        laptop). On another kind of device than the one it was trained on, the random streams
        start afresh from the seed (a generator's state belongs to its device), so a resumed run
        continues but is not bit-exact; :attr:`moved_from` then names the training device."""
        try:
            return cls._load(path, device)
        except KeyError as e:  # a checkpoint written by us always has these: damaged or foreign
            raise CheckpointError(f"{path}: the checkpoint lacks {e.args[0]!r}; it is damaged or not a "
                                  "metadqn meta-training checkpoint") from None

    @classmethod
    def _load(cls, path: str | Path, device: str | None) -> "MAMLDQN":
        tensors, meta = load_checkpoint(path, kind="maml-dqn")
        tensors, config = _from_earlier_versions(tensors, meta["config"])
        family = saved_family(meta["family"], meta["family_options"])
        trained_on = torch.device(config.get("device", "cpu"))
        if device is None and trained_on.type == "cuda" and not torch.cuda.is_available():
            device = "cpu"
            warnings.warn(f"{path} was trained on {trained_on}; this machine has no CUDA, so it is loaded on the CPU",
                          stacklevel=3)
        config = config if device is None else {**config, "device": device}
        learner = cls(family, from_dict(MetaConfig, config))
        st = learner.state
        _copy_into(st.params, unprefixed("params", tensors), path)
        _copy_into(st.target, unprefixed("target", tensors), path)
        if st.inner_lrs is not None:
            _copy_into(st.inner_lrs, unprefixed("inner_lr", tensors), path)
        load_optimizer(st.optimizer, unprefixed("opt", tensors), meta["optimizer"])
        st.iteration = int(meta["iteration"])
        if learner.device.type == trained_on.type:
            st.generator.set_state(tensors["rng/generator"])
            learner._env_state = tensors.get("rng/env")
        else:
            learner.moved_from = str(trained_on)
        learner.train_tasks = [family.task(**p) for p in meta["train_tasks"]]
        learner.test_tasks = [family.task(**p) for p in meta["test_tasks"]]
        best = meta.get("best")
        if best:
            params, lrs = _copy(st.params), None if st.inner_lrs is None else _copy(st.inner_lrs)
            _copy_into(params, unprefixed("best/params", tensors), path)
            if lrs is not None:
                _copy_into(lrs, unprefixed("best/inner_lr", tensors), path)
            learner.best = Best(float(best["score"]), int(best["iteration"]), params, lrs)
        replay = meta.get("query_replay")
        if replay:
            stored = unprefixed("query_replay", tensors)
            if "obs" not in stored:
                raise CheckpointError(f"{path}: the query replay's tensors are missing")
            instances, capacity = stored["obs"].shape[:2]  # [instance, slot, 1, *obs]
            learner._query_buf = TaskReplay(instances, 1, capacity, tuple(learner.family.observation_space.shape),
                                            learner.device)
            try:
                learner._query_buf.load_state(stored, replay["steps"])
            except ValueError as e:
                raise CheckpointError(f"{path}: {e}") from None
        return learner


_LEGACY_LAYERS = re.compile(r"^(params|target)/(model|encoder)\.(\d+)\.(weight|bias)$")


def _from_earlier_versions(tensors: dict[str, torch.Tensor],
                           config: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A checkpoint of an earlier metadqn as this one reads it. Before the model head had a
    separate reward network (and the encoder a network after pooling) their layers were named
    ``model.{i}`` / ``encoder.{i}``, now ``model.layers.{i}`` / ``encoder.layers.{i}`` (same
    shapes, same order); before the encoder could refine its code by context steps it ignored
    ``inner_steps`` (runs stored MAML's 1) and had no step sizes."""
    tensors = {_LEGACY_LAYERS.sub(r"\1/\2.layers.\3.\4", k): v for k, v in tensors.items()}
    if config.get("algo") == "encoder" and not any(k.startswith("inner_lr/") for k in tensors):
        config = {**config, "inner_steps": 0}
    return tensors, config


def _copy_into(dst: Params, src: Mapping[str, torch.Tensor], path: str | Path) -> None:
    if set(dst) != set(src):
        raise CheckpointError(f"{path}: checkpoint tensors {sorted(src)} do not match the network {sorted(dst)}")
    with torch.no_grad():
        for k, v in src.items():
            if v.shape != dst[k].shape:
                raise CheckpointError(f"{path}: {k} has shape {list(v.shape)}, the network expects "
                                      f"{list(dst[k].shape)}")
            dst[k].copy_(v)


def summarize(result: Mapping[str, Any]) -> dict[str, Any]:
    """Means over tasks and runs of :meth:`MAMLDQN.adaptation_returns`."""
    out: dict[str, Any] = {"return": {str(k): float(v.mean()) for k, v in result["return"].items()}}
    if result["nr"] is not None:
        out["nr"] = {str(k): float(v.mean()) for k, v in result["nr"].items()}
    return out


__all__ = ["ALGOS", "MAMLDQN", "MetaConfig", "summarize"]
