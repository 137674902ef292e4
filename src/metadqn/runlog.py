"""Run outputs: metrics as JSON lines (always) and TensorBoard scalars (when installed)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any, Mapping


class RunLogger:
    """Appends one JSON row per step to ``metrics.jsonl`` and mirrors numbers to TensorBoard."""

    def __init__(self, out_dir: str | Path, append: bool = False) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._file = open(self.out_dir / "metrics.jsonl", "a" if append else "w")
        try:
            from torch.utils.tensorboard import SummaryWriter
            self._tb = SummaryWriter(str(self.out_dir / "tb"))
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
    return RunLogger(out_dir, append=resumed)


__all__ = ["RunLogger", "open_metrics", "read_metrics"]
