"""A rich progress bar that shows throughput in the units that matter (env-steps/s)."""

from __future__ import annotations

import sys
import time

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class ProgressBar:
    """``with ProgressBar("train", total) as bar: bar.update(n, env_steps=..., **stats)``."""

    def __init__(self, description: str, total: int, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.description, self.total = description, total
        self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[stats]}"),
                                  disable=not self.enabled)
        self.env_steps = 0
        self._t0 = time.perf_counter()

    def __enter__(self) -> "ProgressBar":
        self._progress.__enter__()
        self._task = self._progress.add_task(self.description, total=self.total, stats="")
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)

    @property
    def env_steps_per_s(self) -> float:
        return self.env_steps / max(time.perf_counter() - self._t0, 1e-9)

    def update(self, advance: int = 1, env_steps: int = 0, **stats: float) -> None:
        self.env_steps += env_steps
        text = f"{self.env_steps_per_s:,.0f} env-steps/s"
        text += "".join(f"  {k} {v:.3g}" for k, v in stats.items())
        self._progress.update(self._task, advance=advance, stats=text)
