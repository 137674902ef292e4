"""MetaConfig: every setting of meta-training, with its default and a one-line help."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..config import resolve_device, unset_from
from ..nets import NetSpec
from ..td import LOSSES
from .weighting import validate_weights

REWARD_MODELS = ("joint", "next")  # the model head's reward inputs (adapters/context.py)

ALGOS = ("maml", "fomaml", "reptile", "metasgd", "context", "encoder", "blr")
CONTEXT_ALGOS = ("context", "encoder", "blr")  # a task context read by the Q-network, inferred with a model

# Settings whose default depends on the algorithm (like RL-Zoo's hyperparameter files): a
# field left at None takes its algorithm's value. Context steps are cheap, so the context
# algorithm takes more of them and more meta-updates per batch of episodes, on every support
# transition; whole-network MAML keeps the settings measured for it (benchmarks/RESULTS.md).
_GRADIENT = {"inner_steps": 1, "inner_lr": 0.5, "outer_steps": 1, "support_batch": 64}
ALGO_DEFAULTS: dict[str, dict[str, Any]] = {
    "maml": _GRADIENT, "fomaml": _GRADIENT, "metasgd": _GRADIENT, "reptile": _GRADIENT,
    "context": {"inner_steps": 5, "inner_lr": 2.0, "outer_steps": 8, "support_batch": 0},
    "blr": {"inner_steps": 1, "inner_lr": 2.0, "outer_steps": 8, "support_batch": 0},  # inner_lr: unused
    "encoder": {"inner_steps": 0, "inner_lr": 2.0, "outer_steps": 8, "support_batch": 0},
}
# Settings measured to work better on one family than the defaults: a new run of that family and
# algorithm takes them for every field the user leaves unset, and the CLI prints them (like RL-Zoo's
# hyperparameter files). Why each is here, in short (NR after one episode unless said); every number,
# command and seed is in benchmarks/RESULTS.md under the setting's name.
# - cartpole-physics, context: balancing needs more meta-updates per iteration (outer_steps 32) and query
#   data from the adapted policy kept in a replay (eps_query 0.3, query_replay 4000): 0.35 -> 0.47 on one
#   seed. Its Q-learning peaks and falls during meta-training, so a run keeps its best check on the
#   training tasks (keep_best_every 10): after two episodes 0.41 -> 0.50 over four seeds (no gain on gridnav).
#   3-step returns in the outer TD loss (n_step 3, as the single-task DQN that solves CartPole uses), with
#   the model head fitting 1-step transitions: after two episodes 0.525 over six runs -> 0.816 / 1.044 /
#   0.655 / 0.799 / 1.006 on seeds 0-4 (on gridnav, whose query replay is further off-policy, n_step 4
#   lost: 0.73 / 0.80).
# - gridnav: the goal's reward model is multimodal (goals at equal distances from the visited cells) and
#   gradient steps from one start find one basin: 8 learned starts, the end that fits the support best kept
#   (0.64 -> 0.78 at 200 iterations; no help on the bandit). Support sets of 1-3 episodes in training
#   (support_episodes_max) let more data help, and epsilon-greedy query data kept in a replay (eps_query 0.3,
#   query_replay 2000) reach the far cells where greedy paths end (the encoder 0.79 / 0.83 / 0.76 -> 0.85 /
#   0.85 / 0.84 on seeds 0-2). Context MAML takes them with support sets of 1-2 episodes (0.797 over five
#   seeds with the starts alone -> 0.843 / 0.845 on seeds 0 / 1; with 1-3 episodes 0.846 over nine seeds,
#   too slow for `make demo`), and a reward model that reads the observed next cell without the
#   next-observation term (reward_model "next", model_obs_weight 0: the moves do not depend on the goal, and
#   the dynamics network is then not run): 0.836 -> 0.842 over seven seeds at 0.94x the time per iteration.
#   And the elapsed fraction of the episode t / H in every network's input (time_feature; families.with_time):
#   where the episode leaves several goals possible, a frozen policy can then follow a plan in time rather than
#   a map of the cell (greedy paths that looped one cell off an identified goal reach it): 0.849 -> 0.856 over
#   fifteen seeds on one host (11 of 15 >= 0.85; +0.007 is within the seeds' spread), at the same training time.
#   And a Q-network that reads the pool of the 3 best-fitting ends rather than the best one (context_pool 3;
#   trained so, the near-best ends land on more of the goals the episode leaves possible: 32% -> 47% of them
#   where 3+ remain, seed 0): 0.856 -> 0.863 after one episode (within the seeds' spread), 0.956 -> 0.965
#   online warm (up on 12 of 15), 0.938 -> 0.943 after two episodes, on the same fifteen seeds, paired, at
#   1.2x the time per iteration. gridnav-history keeps the best end (+0.010 frozen, +0.002 online over eight
#   paired seeds, at 1.2x the time), as does gridnav with obstacles (size 6, 4 obstacles, seed 0: 0.743 -> 0.695).
#   The encoder: Bayesian pooling (0.57 -> 0.81 over three seeds; worse on cartpole-physics, level on the
#   bandit and driving) and 5 context steps refining its code on a heavier model loss (model_weight 10).
# - gridnav-history (gridnav with the episode's positions as memory): gridnav's recommendations, the encoder
#   and the model head reading each window's newest step while the Q-network reads the whole window
#   (context_obs "newest"): the encoder 0.869, context MAML 0.859 over ten seeds.
_GRIDNAV_ENCODER = {"encoder_pooling": "bayes", "support_episodes_max": 3, "inner_steps": 5, "model_weight": 10.0,
                    "eps_query": 0.3, "query_replay": 2000}
# the encoder's training data: support sets of 1-3 episodes, epsilon-greedy query data kept in a replay
_GRIDNAV_DATA = {k: _GRIDNAV_ENCODER[k] for k in ("support_episodes_max", "eps_query", "query_replay")}
_GRIDNAV_CONTEXT = {"context_starts": 8, **_GRIDNAV_DATA, "support_episodes_max": 2, "reward_model": "next",
                    "model_obs_weight": 0.0, "time_feature": True}
FAMILY_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "cartpole-physics": {"context": {"outer_steps": 32, "query_replay": 4000, "eps_query": 0.3,
                                     "n_train_tasks": 20, "n_test_tasks": 10, "envs_per_task": 2,
                                     "keep_best_every": 10, "n_step": 3}},
    "gridnav": {"context": {**_GRIDNAV_CONTEXT, "context_pool": 3}, "encoder": _GRIDNAV_ENCODER},
    "bandit": {"blr": {"reward_model": "next", "model_obs_weight": 0.0, "net": {"film": True}, "support_prefix_min": 1}},
    "preference": {"blr": {"reward_model": "next", "model_obs_weight": 0.0, "net": {"film": True}, "envs_per_task": 1,
                           "outer_steps": 32, "eps_query": 0.3, "query_replay": 4000, "iterations": 600}},
    # gridnav with obstacles (any obstacles > 0; FAMILY_DEFAULTS keys are TaskFamily.recommendation): every
    # task draws its own layout, so held-out tasks are new maps. The Q-network needs many more maps: on
    # size 6, 4 obstacles (seed 0, 300 iterations) held-out NR after one episode -0.06 with 40 training
    # tasks, 0.40 with 160, 0.74 with 640 (limit 0.98; 160 tasks for 600 iterations: 0.19, not the cure);
    # on 8 x 8 with 10 obstacles -0.13 with 40, 0.30 with 640 (limit 0.96): better, far from solved
    "gridnav+obstacles": {"context": {**_GRIDNAV_CONTEXT, "n_train_tasks": 640, "envs_per_task": 1}},
    "gridnav-history": {"context": {"context_starts": 8, "context_obs": "newest", **_GRIDNAV_DATA},
                        "encoder": {**_GRIDNAV_ENCODER, "context_obs": "newest"}},
}
# A family's default algorithm where another one measured better there than context MAML (the user's
# algo, where given, wins; printed with the recommended settings), and that algorithm's recommendation:
# - bandit: blr. Context MAML's model picks the posterior's best arm on only 72% of the instances and no
#   setting of it moved it (92% of the frozen limit over three seeds); blr's exact posterior mean, with
#   the reward read from the observed transition (reward_model "next", model_obs_weight 0: a bandit's
#   observation change carries nothing) and FiLM, reaches 97-104% of it over five seeds. Trained on
#   beginnings of the support as well (support_prefix_min 1), it also acts online from no data at all:
#   0.30 / 0.26 / 0.40 -> 0.66 / 0.62 / 0.58 on seeds 0-2 (the online limit: 0.62), where trained on
#   whole episodes only it hardly explored. On 10 arms it is no worse than context MAML (0.42 vs 0.38).
# - preference: blr, the only method measured to adapt there (context MAML at most 0.05, its CI touching
#   0): the reward is linear in the player's weights, blr's structure, and FiLM lets the context scale the
#   values. Its data settings (one instance per task, 32 meta-updates per iteration, epsilon-greedy query
#   data kept in a replay) and 600 iterations: 0.15 / 0.23 / 0.20 after one episode on seeds 0-2 (35% of
#   the 0.56 limit; 300 iterations: 0.10). Its held-out return stays at random until about iteration 350.
FAMILY_ALGOS: dict[str, str] = {"bandit": "blr", "preference": "blr"}
TARGETS = ("adapted", "meta")
ENCODER_POOLINGS = ("mean+max", "bayes")
CONTEXT_OBS = ("all", "newest")
INNER_PARAMS = ("all", "context", "head")


@dataclass
class MetaConfig:
    """Hyperparameters of meta-training. Episodes are the family's horizon in env steps."""

    algo: str = "context"                  # context (context MAML on a model loss; the default) | maml | fomaml |
                                           # reptile | metasgd (whole-network MAML family) | encoder (a set
                                           # encoder infers the context) | blr (the context is the exact posterior
                                           # mean of a linear model on learned features; net.context = d features,
                                           # the Q-network reads d·m). None below: the algorithm's default
    iterations: int = 300                  # collect-then-update rounds (each: outer_steps meta-updates)
    n_train_tasks: int = 40                # training tasks of the split meta_train() draws when given none
    n_test_tasks: int = 20                 # held-out tasks of that split (evaluation)
    split_seed: int = 0                    # seed of the train/test split
    envs_per_task: int = 4                 # adaptation instances per training task per iteration
    support_episodes: int = 1              # new-task data per adaptation (episodes; also what adapt/evaluate use)
    support_episodes_max: int = 0          # meta-train on support sets of support_episodes..support_episodes_max
                                           # episodes, cycled over iterations, so that the adapter learns to use more
                                           # data than it is trained on by default (0: always support_episodes)
    support_prefix_min: int = 0            # meta-train on beginnings of the support data as well: every meta-update
                                           # cuts the support to its first m transitions, m uniform in
                                           # support_prefix_min..all (one m for all instances), so that the adapter
                                           # also learns from as little data as online adaptation starts with
                                           # (needs support_batch 0; 0: off, always all of it)
    query_episodes: int = 1                # post-adaptation data per instance for the outer loss
    inner_lr: float | None = None          # α (Meta-SGD, context: initial value of every learned α); maml 0.5, context 2
    inner_steps: int | None = None         # adaptation steps K (encoder: context steps refining the code); maml 1, context 5
    inner_params: str = "all"              # what MAML's inner loop adapts: all | context (CAVIA; needs net.context) | head
    first_order_context: bool = False      # context, encoder: ignore second derivatives through the context steps
    context_starts: int = 1                # context (and encoder with inner_steps): learned starting contexts (the
                                           # encoder's code is one more); the end with the lowest support loss wins
    start_shortlist: int = 3               # meta-training with context_starts > 1: the starts are ranked once per
                                           # iteration (each descended, θ of the iteration's start) and every
                                           # meta-update re-chooses among the best start_shortlist only (the pick
                                           # carries no gradient; ≥ context_starts: among all at every update, as
                                           # at test time; 1: the first choice kept). 3 re-picks 98% of the full
                                           # choices after 7 updates on gridnav at a fraction of its cost
    context_pool: int = 1                  # context with context_starts > 1: the Q-network reads a pool of the
                                           # context_pool ends with the lowest support loss (their mean + A x their
                                           # spread, weighted by softmax(-loss / tau); A, tau meta-learned), so that
                                           # it sees how many hypotheses the support leaves open; 1: the best end
                                           # alone. At most context_starts ends (pooled_ends); meta-training keeps
                                           # at least that many in its shortlist
    model_weight: float = 1.0              # context, encoder, blr: weight of the query model loss in the outer loss
    task_loss_weight: float = 0.0          # context, encoder: weight of a task-inference loss in the outer loss — a
                                           # linear probe of the adapted context predicts the training task's
                                           # parameters (scaled to [0, 1]); meta-training only, never at test time
    model_obs_weight: float = 1.0          # context, blr (joint): weight of next-observation vs reward error in the model loss
    model_hidden: tuple[int, ...] = (64, 64)  # context, encoder: hidden widths of the model head m(s, a; c); blr: of φ
    model_members: int = 1                 # context, encoder: independently initialized model heads (an ensemble);
                                           # the model loss (inner steps, the choice among starts, outer) averages
                                           # their errors, so a context cannot exploit one model's mistakes
    reward_model: str = "joint"            # context, encoder, blr: joint (one MLP predicts r and Δs from s, a, c) | next
                                           # (the reward has its own MLP that also sees the observed s′)
    context_obs: str = "all"               # context, encoder: what the model head and the encoder read of a window
                                           # observation [steps, features] (families.with_history): all of it, or the
                                           # newest step (the current state) — the Q-network always reads all of it,
                                           # so it has memory of the episode while inference reads transitions
    encoder_hidden: tuple[int, ...] = (64, 64)  # encoder: hidden widths of the per-transition network φ
    encoder_head: tuple[int, ...] = ()     # encoder: hidden widths of ρ, the network after pooling (c = ρ(pool φ))
    encoder_pooling: str = "mean+max"      # encoder: mean+max (of φ over the set) | bayes (the Gaussian posterior
                                           # over a latent z, each transition read as linear measurements of z)
    encoder_latent: int = 16               # encoder, bayes pooling: dimension L of the latent z
    encoder_measurements: int = 2          # encoder, bayes pooling: linear measurements of z per transition
    outer_lr: float = 1e-3                 # β, Adam step size of the meta-update
    outer_lr_decay: float = 0.0            # fraction of β removed linearly over the config's iterations: iteration
                                           # i steps with β (1 − decay · i / iterations), held at its last value
                                           # past them (0: constant β; 0.9 ends at 0.1 β)
    outer_steps: int | None = None         # meta-updates per iteration, on fresh minibatches of its episodes; maml 1, context 8
    support_batch: int | None = None       # transitions sampled per support episode per inner loss (0: all, once);
                                           # maml 64, context 0
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
    keep_best_every: int = 0               # iterations between checks of the adapted greedy return on the
                                           # TRAINING tasks (eval_runs fresh support sets per task, K steps, the
                                           # same data at every check); the run ends with the parameters of the
                                           # best check, as DQN's keep_best (0 = off: the last iteration's). Its
                                           # episodes, like the held-out checks', are not counted in env_steps
    time_feature: bool = False             # every network reads the elapsed fraction of the episode t / H next to the
                                           # observation (families.with_time; vector observations): a policy frozen
                                           # after adaptation can follow a plan in time, as the frozen limit's does
    seed: int = 0
    device: str = "cpu"                    # or cuda, cuda:N, auto (cuda where this machine has it; saved resolved)

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise ValueError(f"algo must be one of {ALGOS}, got {self.algo!r}")
        self.device = resolve_device(self.device)  # auto: the device this machine has
        for name, value in ALGO_DEFAULTS[self.algo].items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if self.inner_steps < (0 if self.algo == "encoder" else 1):
            raise ValueError(f"inner_steps must be >= 1 (encoder: >= 0), got {self.inner_steps}")
        for name in ("iterations", "envs_per_task", "support_episodes", "query_episodes",
                     "query_batch", "target_update", "eval_runs", "eval_episodes", "outer_steps",
                     "n_train_tasks"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("inner_lr", "outer_lr"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive number, got {v}")
        if not 0 <= self.outer_lr_decay <= 1:
            raise ValueError(f"outer_lr_decay must be in [0, 1] (the fraction of outer_lr removed by the last "
                             f"iteration), got {self.outer_lr_decay}")
        if self.support_episodes_max and self.support_episodes_max < self.support_episodes:
            raise ValueError(f"support_episodes_max must be 0 (off) or >= support_episodes ({self.support_episodes}), "
                             f"got {self.support_episodes_max}")
        if self.support_prefix_min < 0:
            raise ValueError(f"support_prefix_min must be >= 0 (0: off), got {self.support_prefix_min}")
        if self.support_prefix_min and self.support_batch != 0:
            raise ValueError("support_prefix_min cuts the support in the order it was collected: it needs "
                             f"support_batch=0 (every transition once), got support_batch={self.support_batch}")
        if self.inner_n_step < -1:
            raise ValueError(f"inner_n_step must be >= 0, or -1 for the same as n_step; got {self.inner_n_step}")
        if min(self.support_batch, self.n_step, self.n_test_tasks, self.eval_every, self.checkpoint_every,
               self.query_replay, self.keep_best_every) < 0:
            raise ValueError("support_batch, n_step, n_test_tasks, eval_every, checkpoint_every, query_replay and "
                             "keep_best_every must be >= 0")
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
        if self.algo in CONTEXT_ALGOS and self.net.context < 1:
            self.net.context = 8  # these algorithms need a context: 8 dimensions unless set
        if self.net.film and self.net.context < 1:
            raise ValueError("net.film lets the task context scale the Q-network's layers: it needs a context "
                             "(algo context or encoder, or --set net.context=8)")
        for name in ("model_weight", "model_obs_weight", "task_loss_weight"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"{name} must be a number >= 0, got {getattr(self, name)}")
        if self.task_loss_weight > 0 and self.algo not in ("context", "encoder"):
            raise ValueError("task_loss_weight asks a task context to predict the task: use algo 'context' or 'encoder'")
        if self.reward_model not in REWARD_MODELS:
            raise ValueError(f"reward_model must be one of {REWARD_MODELS}, got {self.reward_model!r}")
        if self.start_shortlist < 1:
            raise ValueError(f"start_shortlist must be >= 1, got {self.start_shortlist}")
        if self.context_starts < 1:
            raise ValueError(f"context_starts must be >= 1, got {self.context_starts}")
        if self.context_pool < 1:
            raise ValueError(f"context_pool must be >= 1, got {self.context_pool}")
        if self.context_pool > 1 and self.algo != "context":
            raise ValueError(f"context_pool={self.context_pool} pools the ends of context MAML's starts: use algo "
                             "'context' (with context_starts > 1)")
        if self.context_starts > 1 and not (self.algo == "context" or (self.algo == "encoder" and self.inner_steps)):
            raise ValueError("context_starts > 1 starts context steps from learned contexts: use algo 'context', or "
                             "'encoder' with refinement steps (inner_steps >= 1)")
        if self.model_members < 1:
            raise ValueError(f"model_members must be >= 1, got {self.model_members}")
        if self.algo == "blr" and (self.model_members != 1 or self.first_order_context):
            raise ValueError("blr solves its context in closed form with one linear model: model_members must be 1 "
                             "and first_order_context false (there are no context steps)")
        self.model_hidden = tuple(int(h) for h in self.model_hidden)
        self.encoder_hidden = tuple(int(h) for h in self.encoder_hidden)
        self.encoder_head = tuple(int(h) for h in self.encoder_head)
        if self.context_obs not in CONTEXT_OBS:
            raise ValueError(f"context_obs must be one of {CONTEXT_OBS}, got {self.context_obs!r}")
        if self.context_obs != "all" and self.algo not in CONTEXT_ALGOS:
            raise ValueError("context_obs chooses what a model head and an encoder read: use algo 'context', "
                             "'encoder' or 'blr'")
        if self.encoder_pooling not in ENCODER_POOLINGS:
            raise ValueError(f"encoder_pooling must be one of {ENCODER_POOLINGS}, got {self.encoder_pooling!r}")
        if self.encoder_latent < 1 or self.encoder_measurements < 1:
            raise ValueError(f"encoder_latent and encoder_measurements must be >= 1, got {self.encoder_latent} "
                             f"and {self.encoder_measurements}")
        if self.algo == "reptile" and self.inner_params != "all":
            raise ValueError("reptile moves every parameter toward the adapted ones: use inner_params='all'")
        if self.algo == "reptile" and self.outer_steps != 1:
            raise ValueError("reptile takes one step toward the adapted parameters per iteration: "
                             "outer_steps must be 1 (raise iterations instead)")

    @staticmethod
    def algo_defaults(values: Mapping[str, Any]) -> dict[str, Any]:
        """The algorithm defaults (:data:`ALGO_DEFAULTS`) that ``values`` leave in force and the
        algorithm reads (blr's ``inner_lr`` fills the field only: it takes no gradient steps)."""
        algo = str(values.get("algo", MetaConfig.algo))
        out = unset_from(ALGO_DEFAULTS.get(algo, {}), values)
        if algo == "blr":
            out.pop("inner_lr", None)
        return out

    @staticmethod
    def family_defaults(family: Any, values: Mapping[str, Any]) -> dict[str, Any]:
        """``family``'s recommended settings (:data:`FAMILY_DEFAULTS`) for the algorithm of
        ``values`` (none given: the family's :data:`FAMILY_ALGOS` entry, itself among the settings
        returned, or the default ``algo``) that ``values`` leave unset (a recommended ``support_episodes_max`` is dropped
        where the user's ``support_episodes`` already reaches it). ``family``: a family (its
        ``recommendation`` key, which its options may change) or the key itself."""
        key = family if isinstance(family, str) else family.recommendation
        named = values.get("algo")
        algo = named or FAMILY_ALGOS.get(key, MetaConfig.algo)
        out = unset_from(FAMILY_DEFAULTS.get(key, {}).get(str(algo), {}), values)
        if not named and key in FAMILY_ALGOS:  # the family's own default algorithm, said first
            out = {"algo": algo, **out}
        mine = values.get("support_episodes", MetaConfig.support_episodes)
        if isinstance(mine, int) and out.get("support_episodes_max", 0) <= mine:  # (a bad value: the config says so)
            out.pop("support_episodes_max", None)
        return out

    def support_episodes_at(self, iteration: int) -> int:
        """Support episodes of meta-iteration ``iteration`` (0-based): ``support_episodes``, or with
        ``support_episodes_max`` the sizes support_episodes..support_episodes_max in turn."""
        if not self.support_episodes_max:
            return self.support_episodes
        return self.support_episodes + iteration % (self.support_episodes_max - self.support_episodes + 1)

    def outer_lr_at(self, iteration: int) -> float:
        """β of meta-iteration ``iteration`` (0-based): ``outer_lr`` less ``outer_lr_decay`` of it,
        linearly over ``iterations`` (held at the last iteration's value past them)."""
        progress = min(iteration, self.iterations - 1) / self.iterations
        return self.outer_lr * (1.0 - self.outer_lr_decay * progress)

    def support_episodes_until(self, iterations: int) -> int:
        """Support episodes per instance of meta-iterations 0 … ``iterations`` − 1 together."""
        lo, hi = self.support_episodes, max(self.support_episodes_max, self.support_episodes)
        cycles, rest = divmod(iterations, hi - lo + 1)
        return cycles * (lo + hi) * (hi - lo + 1) // 2 + sum(lo + i for i in range(rest))

    @property
    def pooled_ends(self) -> int:
        """The ends the Q-network's context pools: ``context_pool``, at most ``context_starts``
        (1: the best end alone, and no pool parameters)."""
        return min(self.context_pool, self.context_starts) if self.algo == "context" else 1

    @property
    def first_order(self) -> bool:
        """Whether the meta-gradient ignores the inner loop's second derivatives."""
        return self.algo in ("fomaml", "reptile") or (self.algo in ("context", "encoder") and self.first_order_context)


__all__ = ["ALGOS", "ALGO_DEFAULTS", "CONTEXT_ALGOS", "CONTEXT_OBS", "FAMILY_ALGOS", "FAMILY_DEFAULTS", "INNER_PARAMS", "MetaConfig", "REWARD_MODELS", "TARGETS"]
