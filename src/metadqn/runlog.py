"""Run outputs: metrics as JSON lines (always) and TensorBoard scalars (when installed)."""

from __future__ import annotations

import json
import math
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Mapping


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGINT/SIGTERM after saving a checkpoint (one a meta-training run
    resumes from; a DQN's holds the network so far)."""

    def __init__(self, iteration: int, checkpoint: Path | None, resumable: bool = True) -> None:
        super().__init__(iteration, checkpoint)
        self.iteration, self.checkpoint, self.resumable = iteration, checkpoint, resumable


class GracefulStop:
    """``with GracefulStop() as stop:`` — the first SIGINT or SIGTERM only sets
    ``stop.requested`` (the loop finishes its iteration, saves and stops); a second one acts
    as usual (Ctrl-C raises KeyboardInterrupt at once). Outside the main thread it does
    nothing (signals can only be caught there)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "GracefulStop":
        if threading.current_thread() is threading.main_thread():
            self._old = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True
        for sig, old in self._old.items():  # the next signal acts at once
            signal.signal(sig, old)
        print(f"metadqn: {signal.Signals(signum).name} received: finishing this iteration and saving "
              "(send it again to stop at once)", file=sys.stderr)

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


class RunLogger:
    """Appends one JSON row per step to ``metrics.jsonl`` and mirrors numbers to TensorBoard."""

    def __init__(self, out_dir: str | Path, append: bool = False, resume_step: int | None = None) -> None:
        """``resume_step``: TensorBoard drops its events after that step (logged after the
        checkpoint a run resumes from), so resumed curves have no doubled steps."""
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._file = open(self.out_dir / "metrics.jsonl", "a" if append else "w")
        try:
            from torch.utils.tensorboard import SummaryWriter
            purge = None if resume_step is None else resume_step + 1
            _after_earlier_event_files(self.out_dir / "tb")
            self._tb = SummaryWriter(str(self.out_dir / "tb"), purge_step=purge)
        except ImportError:
            self._tb = None

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        row = {"step": int(step), **{k: _plain(v) for k, v in metrics.items()}}
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        if self._tb is not None:
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)) and math.isfinite(v):
                    self._tb.add_scalar(k, v, step)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def _after_earlier_event_files(tb_dir: Path) -> None:
    """Wait, where needed, until a new TensorBoard event file will be read after the run's
    earlier ones. TensorBoard reads a run's files in name order, and a name is the second the
    file was opened in, then the host, the process and the process's writer count, unpadded
    (``….10`` sorts before ``….9``): a resumed run whose writer opened in the same second as an
    earlier one could be read before it, its purge of the steps after the checkpoint then
    applied too early and the earlier writer's later steps kept (a notebook that continues a
    short run several times). A file from a later second sorts after them all. (Files stamped
    later than that — a clock set back, files copied from another machine — are not waited for.)"""
    seconds = []
    for path in tb_dir.glob("events.out.tfevents.*"):
        stamp = path.name.split(".")[3]
        if stamp.isdigit():
            seconds.append(int(stamp))
    if seconds:
        wait = max(seconds) + 1 - time.time()
        if 0 < wait <= 1:
            time.sleep(wait)


def _plain(v: Any) -> Any:
    if hasattr(v, "item"):
        return v.item()
    return v


def read_metrics(out_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of ``out_dir/metrics.jsonl``; a torn last line (a kill during a write) is
    dropped with a note on stderr, a torn line elsewhere is an error naming the file."""
    path = Path(out_dir) / "metrics.jsonl"
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    rows = []
    for i, line in enumerate(lines):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                print(f"metadqn: {path}: dropped a torn last line (the run was killed while writing it)",
                      file=sys.stderr)
                break
            raise ValueError(f"{path}: line {i + 1} is not valid JSON; the metrics file is damaged") from None
    return rows


def open_metrics(out_dir: str | Path, resume_step: int) -> RunLogger:
    """A logger for ``out_dir``: a fresh metrics file, or (``resume_step > 0``) the existing
    one without the rows logged after the checkpoint being resumed from."""
    path = Path(out_dir) / "metrics.jsonl"
    resumed = resume_step > 0 and path.exists()
    if resumed:
        keep = [r for r in read_metrics(out_dir) if r["step"] <= resume_step]
        path.write_text("".join(json.dumps(r) + "\n" for r in keep))
    return RunLogger(out_dir, append=resumed, resume_step=resume_step if resumed else None)


__all__ = ["GracefulStop", "RunLogger", "TrainingInterrupted", "open_metrics", "read_metrics"]
