"""``driving``: a light, batched multi-lane highway whose road conditions vary per task.

Why not ``highway-env`` itself: its ``highway-fast-v0`` steps at about 29 steps/s on one
core, far too slow to meta-train on a laptop. This simulator keeps what matters for
adaptation and steps every task x environment in one tensor operation (tens of thousands
of steps/s on one core). ``highway`` (an optional extra) wraps the real simulator.

The road: up to 4 lanes; the ego car and ``MAX_CARS`` other cars, all positions relative to
the ego car (the view spans ``[-VIEW_BEHIND, VIEW_AHEAD]`` metres; cars leaving it re-enter
at the other end in a random lane). One step is ``DT`` = 1 s.

Actions (as highway-env's ``DiscreteMetaAction``): 0 lane left, 1 idle, 2 lane right,
3 faster, 4 slower. Faster adds ``1 + 3 * friction`` m/s, slower removes ``2 + 8 * friction``
m/s (a slippery road neither accelerates nor brakes well); the ego speed stays in
``[MIN_SPEED, MAX_SPEED]``.

Other cars keep their speed (drawn in ``[0.6, 0.95] x speed_limit``), except that a car
behind the ego car in its lane slows so as not to run into it (cutting in close still crashes).

Reward per step: ``(1 - safety) * min(v / speed_limit, 1) - safety * closeness
- max(v - speed_limit, 0) / 5``, where closeness = ``clip((2 s - time gap ahead) / 2 s, 0, 1)``;
a collision gives ``-3`` and ends the episode. ``speed_limit``, ``friction`` and ``safety``
are hidden from the agent (it must infer them from rewards and from how the car responds);
lanes and traffic are visible. So the best speed and following distance differ per task:
the policy that is best on a fast dry road is penalised on a slow icy one.

Observation (25 floats): ego lane one-hot (4), which lanes exist (4), ego speed / 40, then per
lane (4 each): gap to the nearest car ahead / 100 (1 if none), that car's speed relative to
the ego / 20 (0 if none), gap to the nearest car behind / 100, its relative speed / 20.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import gymnasium as gym
import numpy as np
import torch

from .base import BatchedEnv, Param, Task, TaskError, TaskFamily

MAX_LANES = 4
MAX_CARS = 12
CARS_PER_LANE = 3          # cars per lane in view at density 1
CAR_LENGTH = 5.0           # m
VIEW_AHEAD, VIEW_BEHIND = 120.0, 60.0
DT = 1.0                   # s per step
MIN_SPEED, MAX_SPEED = 5.0, 40.0
COLLISION_REWARD = -3.0
ACTIONS = ("lane_left", "idle", "lane_right", "faster", "slower")
OBS_DIM = 2 * MAX_LANES + 1 + 4 * MAX_LANES


class DrivingFamily(TaskFamily):
    name = "driving"
    description = ("Multi-lane highway driving (batched); tasks vary lanes, traffic density, speed limit, "
                   "road friction and the speed/safety trade-off of the reward")

    def __init__(self, *, horizon: int = 40, ranges: Mapping[str, Sequence[float]] | None = None) -> None:
        if int(horizon) < 1:
            raise TaskError(f"driving: horizon must be >= 1, got {horizon}")
        self.max_episode_steps = int(horizon)
        self.options = {"horizon": self.max_episode_steps}
        low = np.full(OBS_DIM, -1.0, dtype=np.float32)
        low[: 2 * MAX_LANES + 1] = 0.0
        self.observation_space = gym.spaces.Box(low, np.ones(OBS_DIM, dtype=np.float32), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(len(ACTIONS))
        super().__init__(ranges)

    def _param_specs(self) -> tuple[Param, ...]:
        return (
            Param("lanes", 2, MAX_LANES, 3, "number of lanes (visible)", integer=True),
            Param("density", 0.0, 1.0, 0.5, f"traffic: round(density * {CARS_PER_LANE} * lanes) other cars in view"),
            Param("speed_limit", 15.0, 35.0, 25.0, "speed limit (m/s; hidden); driving above it is penalised"),
            Param("friction", 0.2, 1.0, 0.8, "road friction (hidden): 0.2 ice ... 1.0 dry asphalt"),
            Param("safety", 0.0, 1.0, 0.3, "reward weight of keeping a 2 s time gap vs. speed (hidden)"),
        )

    def make_batched(self, tasks: Sequence[Task], envs_per_task: int = 1,
                     device: str | torch.device = "cpu", seed: int | None = None,
                     dtype: torch.dtype = torch.float32) -> "DrivingBatched":
        return DrivingBatched(self, [self.validate_task(t) for t in tasks], envs_per_task, device, seed, dtype)

    def render_text(self, env: BatchedEnv) -> str:
        """The road around the ego car: one row per lane, 5 m per character; A = ego, c = car."""
        lanes = int(env.lanes[0, 0])
        cols = int((VIEW_AHEAD + VIEW_BEHIND) // 5)
        rows = [["." for _ in range(cols)] for _ in range(lanes)]
        ego_col = int(VIEW_BEHIND // 5)
        for lane, s, active in zip(env.car_lane[0, 0].tolist(), env.car_s[0, 0].tolist(),
                                   env.car_active[0].tolist()):
            col = int((s + VIEW_BEHIND) // 5)
            if active and 0 <= col < cols and lane < lanes:
                rows[lane][col] = "c"
        rows[int(env.ego_lane[0, 0])][ego_col] = "A"
        speed = float(env.ego_v[0, 0])
        return "\n".join("".join(r) for r in rows) + f"\nego speed {speed:.1f} m/s"


class DrivingBatched(BatchedEnv):
    state_names = ("ego_lane", "ego_v", "car_lane", "car_s", "car_v", "spawn_u")

    def __init__(self, family: DrivingFamily, tasks: Sequence[Task], envs_per_task: int,
                 device: Any, seed: int | None, dtype: torch.dtype) -> None:
        super().__init__(family, tasks, envs_per_task, device, seed, dtype)
        col = lambda name: self._task_tensor(t[name] for t in self.tasks)  # noqa: E731  [task, 1]
        self.lanes = self._task_tensor((t["lanes"] for t in self.tasks), dtype=torch.long)   # [task, 1]
        self.limit, self.friction, self.safety = col("speed_limit"), col("friction"), col("safety")
        self.accel = 1.0 + 3.0 * self.friction
        self.brake = 2.0 + 8.0 * self.friction
        n_cars = [min(MAX_CARS, round(t["density"] * CARS_PER_LANE * t["lanes"])) for t in self.tasks]
        slots = torch.arange(MAX_CARS, device=self.device)
        self.car_active = slots < torch.as_tensor(n_cars, device=self.device).unsqueeze(1)   # [task, K]
        shape = self.batch_shape
        self.ego_lane = torch.zeros(shape, dtype=torch.long, device=self.device)
        self.ego_v = torch.zeros(shape, dtype=dtype, device=self.device)
        self.car_lane = torch.zeros((*shape, MAX_CARS), dtype=torch.long, device=self.device)
        self.car_s = torch.zeros((*shape, MAX_CARS), dtype=dtype, device=self.device)
        self.car_v = torch.zeros((*shape, MAX_CARS), dtype=dtype, device=self.device)
        self.spawn_u = torch.zeros((*shape, MAX_CARS, 3), dtype=dtype, device=self.device)
        self.lane_ids = torch.arange(MAX_LANES, device=self.device)

    def _lane_from(self, u: torch.Tensor) -> torch.Tensor:
        """A lane of each task's road from uniforms ``u`` ``[task, ...]``."""
        lanes = self.lanes.reshape(self.n_tasks, *([1] * (u.dim() - 1)))
        return (u * lanes).long().clamp_max(lanes - 1)

    def _speed_from(self, u: torch.Tensor) -> torch.Tensor:
        """A traffic speed in ``[0.6, 0.95] x speed_limit`` from uniforms ``u`` ``[task, ...]``."""
        limit = self.limit.reshape(self.n_tasks, *([1] * (u.dim() - 1)))
        return limit * (0.6 + 0.35 * u)

    def _reset_where(self, mask: torch.Tensor) -> None:
        t, e, k = self.n_tasks, self.envs_per_task, MAX_CARS
        ego_lane = self._lane_from(self._rand(t, e))
        ego_v = 15.0 + 10.0 * self._rand(t, e)
        lane = self._lane_from(self._rand(t, e, k))
        s = -VIEW_BEHIND + (VIEW_AHEAD + VIEW_BEHIND) * self._rand(t, e, k)
        near = (lane == ego_lane.unsqueeze(-1)) & (s.abs() < 25.0)
        s = torch.where(near, torch.where(s >= 0, s + 25.0, s - 25.0), s)  # keep 25 m clear of the ego car
        v = self._speed_from(self._rand(t, e, k))
        m1, mk = mask, mask.unsqueeze(-1)
        self.ego_lane = torch.where(m1, ego_lane, self.ego_lane)
        self.ego_v = torch.where(m1, ego_v, self.ego_v)
        self.car_lane = torch.where(mk, lane, self.car_lane)
        self.car_s = torch.where(mk, s, self.car_s)
        self.car_v = torch.where(mk, v, self.car_v)
        self.spawn_u = torch.where(mk.unsqueeze(-1), self._rand(t, e, k, 3), self.spawn_u)

    def _nearest(self) -> tuple[torch.Tensor, ...]:
        """Per lane ``[task, env, lane]``: gap ahead, speed of that car, gap behind, its speed."""
        active = self.car_active.unsqueeze(1)                                           # [t, 1, K]
        in_lane = active.unsqueeze(-1) & (self.car_lane.unsqueeze(-1) == self.lane_ids)  # [t, e, K, L]
        s = self.car_s.unsqueeze(-1)
        inf = torch.full_like(s.expand_as(in_lane), float("inf"), dtype=self.car_s.dtype)
        ahead = torch.where(in_lane & (s >= 0), s.expand_as(inf), inf)
        behind = torch.where(in_lane & (s < 0), (-s).expand_as(inf), inf)
        gap_a, idx_a = ahead.min(dim=2)                                                  # [t, e, L]
        gap_b, idx_b = behind.min(dim=2)
        v_a = self.car_v.gather(2, idx_a)
        v_b = self.car_v.gather(2, idx_b)
        return gap_a, v_a, gap_b, v_b

    def _observe(self) -> torch.Tensor:
        gap_a, v_a, gap_b, v_b = self._nearest()
        v = self.ego_v.unsqueeze(-1)
        has_a, has_b = torch.isfinite(gap_a), torch.isfinite(gap_b)
        rel = lambda x, has: torch.where(has, ((x - v) / 20.0).clamp(-1, 1), torch.zeros_like(x))  # noqa: E731
        lane_exists = (self.lane_ids < self.lanes.unsqueeze(-1)).expand(-1, self.envs_per_task, -1)
        obs = torch.cat((
            torch.nn.functional.one_hot(self.ego_lane, MAX_LANES).to(v.dtype),
            lane_exists.to(v.dtype),
            v / MAX_SPEED,
            (gap_a / 100.0).clamp(0, 1), rel(v_a, has_a),
            (gap_b / 100.0).clamp(0, 1), rel(v_b, has_b),
        ), dim=-1)
        return obs.float()

    def _transition(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lane_max = self.lanes - 1
        self.ego_lane = torch.minimum((self.ego_lane + (actions == 2).long() - (actions == 0).long()).clamp_min(0),
                                      lane_max)
        dv = torch.where(actions == 3, self.accel, torch.zeros_like(self.ego_v))
        dv = torch.where(actions == 4, -self.brake, dv)
        self.ego_v = (self.ego_v + dv).clamp(MIN_SPEED, MAX_SPEED)
        v = self.ego_v.unsqueeze(-1)
        same = (self.car_lane == self.ego_lane.unsqueeze(-1)) & self.car_active.unsqueeze(1)
        # a car behind the ego car in its lane slows so as not to hit it
        room = (-self.car_s - CAR_LENGTH).clamp_min(0.0) / DT
        follow = same & (self.car_s < 0)
        car_v = torch.where(follow, torch.minimum(self.car_v, v + 0.5 * room), self.car_v)
        old_s = self.car_s
        self.car_s = old_s + (car_v - v) * DT
        crossed = (old_s.sign() * self.car_s.sign() < 0)
        collided = (same & ((self.car_s.abs() < CAR_LENGTH) | crossed)).any(-1)
        # cars leaving the view re-enter at the far end, in a random lane, with a fresh speed; the
        # random numbers were drawn in advance (part of the state, so a step is a function of it)
        gone_back, gone_front = self.car_s < -VIEW_BEHIND, self.car_s > VIEW_AHEAD
        gone = gone_back | gone_front
        u_s, u_lane, u_v = self.spawn_u.unbind(-1)
        fresh_s = torch.where(gone_back, VIEW_AHEAD - 20.0 * u_s, -VIEW_BEHIND + 20.0 * u_s)
        self.car_s = torch.where(gone, fresh_s, self.car_s)
        self.car_lane = torch.where(gone, self._lane_from(u_lane), self.car_lane)
        self.car_v = torch.where(gone, self._speed_from(u_v), self.car_v)
        self.spawn_u = torch.where(gone.unsqueeze(-1), self._rand(*self.spawn_u.shape), self.spawn_u)
        # reward
        gap_ahead = torch.where(same & (self.car_s >= 0), self.car_s, torch.full_like(self.car_s, float("inf")))
        gap_ahead = gap_ahead.min(-1).values
        time_gap = (gap_ahead - CAR_LENGTH).clamp_min(0.0) / self.ego_v.clamp_min(1.0)
        closeness = ((2.0 - time_gap) / 2.0).clamp(0.0, 1.0)
        speed = (self.ego_v / self.limit).clamp_max(1.0)
        over = (self.ego_v - self.limit).clamp_min(0.0) / 5.0
        reward = (1.0 - self.safety) * speed - self.safety * closeness - over
        reward = torch.where(collided, torch.full_like(reward, COLLISION_REWARD), reward)
        return reward.float(), collided
