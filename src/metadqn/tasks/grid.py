"""Grid geometry shared by gridnav and its information limit: moves, shortest-path
distances around walls, reproducible obstacle layouts."""

from __future__ import annotations

from collections import deque
from functools import lru_cache

import numpy as np

from .base import TaskError

MOVES = np.array([[-1, 0], [1, 0], [0, -1], [0, 1]])  # up, down, left, right as (row, col)


@lru_cache(maxsize=4096)
def obstacle_layout(size: int, n_obstacles: int, layout: int, keep_free: tuple[int, ...]) -> np.ndarray:
    """A reproducible obstacle map ``[size, size]`` (bool) whose free cells are all connected.

    ``keep_free`` lists flat cell indices that must stay free (the start).
    """
    if n_obstacles == 0:
        return np.zeros((size, size), dtype=bool)
    rng = np.random.default_rng(layout)
    candidates = np.setdiff1d(np.arange(size * size), np.asarray(keep_free, dtype=int))
    for _ in range(1000):
        walls = np.zeros(size * size, dtype=bool)
        walls[rng.choice(candidates, size=n_obstacles, replace=False)] = True
        walls = walls.reshape(size, size)
        free = np.argwhere(~walls)
        if (bfs_distance(walls, tuple(free[0])) < np.inf).sum() == len(free):
            return walls
    raise TaskError(f"could not place {n_obstacles} obstacles on a {size}x{size} grid "
                    "keeping free cells connected; use fewer obstacles")


def bfs_distance(walls: np.ndarray, source: tuple[int, int]) -> np.ndarray:
    """Shortest-path distance (in moves) from ``source`` to every cell; inf for walls/unreachable.

    Read-only: one table per layout and source is kept (the information limit asks for the same
    goals' distances tens of thousands of times per evaluation)."""
    walls = np.asarray(walls, dtype=bool)
    return _bfs_distance(walls.tobytes(), walls.shape, (int(source[0]), int(source[1])))


@lru_cache(maxsize=16384)
def _bfs_distance(walls_bytes: bytes, shape: tuple[int, int], source: tuple[int, int]) -> np.ndarray:
    walls = np.frombuffer(walls_bytes, dtype=bool).reshape(shape)
    size = walls.shape[0]
    dist = np.full(walls.shape, np.inf)
    dist[source] = 0
    queue = deque([source])
    while queue:
        r, c = queue.popleft()
        for dr, dc in MOVES:
            nr, nc = r + dr, c + dc
            if 0 <= nr < size and 0 <= nc < size and not walls[nr, nc] and dist[nr, nc] == np.inf:
                dist[nr, nc] = dist[r, c] + 1
                queue.append((nr, nc))
    dist.setflags(write=False)
    return dist


def successors(walls: np.ndarray) -> np.ndarray:
    """Flat successor cell ``[cell, action]`` of an ``[N, N]`` grid: a move into a wall or off
    the grid stays put."""
    n = walls.shape[0]
    r, c = np.divmod(np.arange(n * n), n)
    out = np.zeros((n * n, len(MOVES)), dtype=int)
    for a, (dr, dc) in enumerate(MOVES):
        nr, nc = np.clip(r + dr, 0, n - 1), np.clip(c + dc, 0, n - 1)
        blocked = walls[nr, nc]
        out[:, a] = np.where(blocked, r, nr) * n + np.where(blocked, c, nc)
    return out
