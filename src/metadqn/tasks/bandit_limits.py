"""The bandit's online information limit: the Bayes-adaptive policy, exactly.

Arm means are i.i.d. uniform on [0, 1], so after the support data each arm's posterior is
Beta(α, β) and stays Beta while the evaluation episode goes on. The Bayes-adaptive policy
maximizes the expected return under that belief, updating it after every pull; its value
satisfies, with ``(s, f)`` the successes and failures of each arm so far in the episode,

    V(s, f) = max_i  p_i (1 + V(s + e_i, f)) + (1 − p_i) V(s, f + e_i),
    p_i = (α_i + s_i) / (α_i + β_i + s_i + f_i),

and V = 0 once ``horizon`` pulls are made. The limit of an instance is the expected return
of that policy on the TRUE arm means μ (ties between arms shared equally):

    W(s, f) = μ_a (1 + W(s + e_a, f)) + (1 − μ_a) W(s, f + e_a),   a = the policy's arm.

Both run backwards over the pull count t. The states with t pulls are the compositions of t
into 2K parts (successes and failures of K arms), C(t + 2K − 1, 2K − 1) of them, kept in
lexicographic order; a successor's index is its rank (combinatorial number system). For 5
arms and 20 pulls that is 30,045,015 states in all: exact, but heavy (benchmarks/RESULTS.md
has the cost), so instances go through in batches along the last axis (row gathers), the
tables of the last (arms, horizon) stay cached for the next call (≈ 1.1 GB for 5 × 20), and
families above :data:`MAX_STATES` get no limit.
"""

from __future__ import annotations

from functools import lru_cache
from math import comb

import numpy as np
import torch

MAX_STATES = 40_000_000   # all levels together; 5 arms × 20 pulls = 30,045,015
BATCH = 16                # instances per backward pass (memory: ≈ 2 × states of a level × BATCH × 4 bytes)
CHUNK = 1 << 16           # states per vectorized block of the backward pass
RANK_CHUNK = 1 << 20      # states per block while ranking successors


def state_count(arms: int, horizon: int) -> int:
    """States of the DP over every level t = 0 … horizon."""
    return comb(horizon + 2 * arms, 2 * arms)


def _compositions(parts: int, horizon: int) -> list[np.ndarray]:
    """For t = 0 … horizon, every composition of t into ``parts`` non-negative parts,
    lexicographic, int8 ``[N_t, parts]``."""
    comps = [np.array([[t]], np.int8) for t in range(horizon + 1)]
    for _ in range(parts - 1):
        comps = [np.concatenate([np.concatenate((np.full((len(comps[t - c]), 1), c, np.int8), comps[t - c]), 1)
                                 for c in range(t + 1)]) for t in range(horizon + 1)]
    return comps


def _successor_ranks(states: np.ndarray, t: int, binom: torch.Tensor) -> torch.Tensor:
    """int32 ``[N, parts]``: the lexicographic rank among level t + 1's states of each state of
    level t with part j raised by one. The rank of a composition c of t is
    Σ_j C(r_j + k_j, k_j) − C(r_j − c_j + k_j, k_j), r_j = t − Σ_{i<j} c_i, k_j = parts − 1 − j;
    raising part j adds 1 to r_i for i ≤ j and to c_j, and leaves the later terms alone."""
    c = torch.from_numpy(states).long()
    k = torch.arange(c.shape[1] - 1, -1, -1)
    r = t - torch.cumsum(c, 1) + c
    raised_r = binom[r + 1 + k, k] - binom[r + 1 - c + k, k]    # terms before j
    same = binom[r + k, k] - binom[r - c + k, k]                # terms after j
    own = binom[r + 1 + k, k] - binom[r - c + k, k]             # part j itself
    before = torch.cumsum(raised_r, 1) - raised_r
    after = torch.flip(torch.cumsum(torch.flip(same, [1]), 1), [1]) - same
    return (before + own + after).to(torch.int32)


@lru_cache(maxsize=1)
def _tables(arms: int, horizon: int) -> tuple[list[np.ndarray], list[torch.Tensor]]:
    parts = 2 * arms
    binom = torch.tensor([[comb(n, k) for k in range(parts + 1)] for n in range(horizon + parts + 2)])
    comps = _compositions(parts, horizon)
    return comps, [torch.cat([_successor_ranks(comps[t][lo:lo + RANK_CHUNK], t, binom)  # chunks bound the int64 temporaries
                              for lo in range(0, len(comps[t]), RANK_CHUNK)]) for t in range(horizon)]


def bayes_adaptive_returns(alpha: np.ndarray, beta: np.ndarray, means: np.ndarray,
                           horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """For instances ``[B, K]`` of Beta posteriors (``alpha``, ``beta``) and true arm ``means``:
    the Bayes-adaptive policy's value under the belief ``[B]`` and its expected return on the
    true means ``[B]`` over ``horizon`` pulls (float32 arithmetic)."""
    alpha, beta, means = (np.atleast_2d(np.asarray(x, np.float64)) for x in (alpha, beta, means))
    n, arms = alpha.shape
    if state_count(arms, horizon) > MAX_STATES:
        raise ValueError(f"{arms} arms × {horizon} pulls: {state_count(arms, horizon):,} states, above {MAX_STATES:,}")
    comps, succ = _tables(arms, horizon)
    value, ret = np.zeros(n), np.zeros(n)
    for lo in range(0, n, BATCH):
        a, b, mu = (torch.as_tensor(x[lo:lo + BATCH].T, dtype=torch.float32) for x in (alpha, beta, means))  # [K, B]
        v, w = _backward(comps, succ, horizon, a, b, mu)
        value[lo:lo + BATCH], ret[lo:lo + BATCH] = v.numpy(), w.numpy()
    return value, ret


def _backward(comps: list[np.ndarray], succ: list[torch.Tensor], horizon: int, a: torch.Tensor, b: torch.Tensor,
              mu: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    arms, batch = a.shape
    value = ret = None  # level t + 1's [N, B]; None at t + 1 = horizon (all zero)
    for t in range(horizon - 1, -1, -1):
        states = torch.from_numpy(comps[t])
        new_value = torch.empty(states.shape[0], batch)
        new_ret = torch.empty_like(new_value)
        for lo in range(0, states.shape[0], CHUNK):
            block = states[lo:lo + CHUNK].float()
            s, f = block[:, 0::2, None], block[:, 1::2, None]                               # [C, K, 1]
            p = (a + s) / (a + b + s + f)                                                   # [C, K, B]
            if value is None:
                q, w = p, mu.expand_as(p)
            else:
                idx = succ[t][lo:lo + CHUNK].long()
                rows = lambda x, j: x[idx[:, j::2].reshape(-1)].view(idx.shape[0], arms, batch)  # noqa: E731
                q = rows(value, 1) + p * (1 + rows(value, 0) - rows(value, 1))
                w = rows(ret, 1) + mu * (1 + rows(ret, 0) - rows(ret, 1))
            best = q.max(1, keepdim=True).values
            tie = (q >= best).float()  # equal arms give bit-equal values (same arithmetic on permuted states)
            new_value[lo:lo + CHUNK] = best[:, 0]
            new_ret[lo:lo + CHUNK] = (tie * w).sum(1) / tie.sum(1)
        value, ret = new_value, new_ret
    return value[0], ret[0]


__all__ = ["MAX_STATES", "bayes_adaptive_returns", "state_count"]
