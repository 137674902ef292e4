"""A sweep's summary as a table (``sweep.md``) and a plot (``sweep.png``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np


def nr_cell(r: Mapping[str, Any]) -> str:
    """A trial's NR as a table cell: mean [CI], the mean alone without a CI, or a dash."""
    nr = r.get("nr")
    if not nr:
        return "—"
    if nr.get("ci_low") is None:
        return f"{nr['mean']:.2f}"
    return f"{nr['mean']:.2f} [{nr['ci_low']:.2f}, {nr['ci_high']:.2f}]"


def markdown(summary: Mapping[str, Any]) -> str:
    """``sweep.md``: one row per trial, best first."""
    keys = sorted(summary["grid"])
    lines = [f"# Sweep on {summary['family']}", "", f"Headline: {summary['headline']}.", "",
             "| " + " | ".join([*keys, "status", "NR at K", "NR at k=0", "wall s", "run"]) + " |",
             "|" + "---|" * (len(keys) + 5)]
    for r in summary["trials"]:
        k0 = r.get("nr_k0")
        lines.append("| " + " | ".join([*(json.dumps(r["values"][k]) for k in keys), r["status"], nr_cell(r),
                                         nr_cell({"nr": k0}) if k0 else "—",
                                         f"{r['wall_s']:.0f}" if r.get("wall_s") else "—",
                                         Path(r["run"]).name]) + " |")
    if summary["best_config"]:
        lines += ["", f"Best: `{summary['best']}`; its config: `{summary['best_config']}` "
                  "(`metadqn train --config` takes it)."]
    if not summary["complete"]:
        lines += ["", "Not complete: run the same `metadqn sweep` command again to finish it."]
    return "\n".join(lines) + "\n"


def plot(summary: Mapping[str, Any], path: Path) -> None:
    """``sweep.png``: each finished trial's headline NR with its CI, best first."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [r for r in summary["trials"] if r.get("nr")]
    means = np.array([r["nr"]["mean"] for r in rows])
    low = np.array([r["nr"]["ci_low"] if r["nr"]["ci_low"] is not None else r["nr"]["mean"] for r in rows])
    high = np.array([r["nr"]["ci_high"] if r["nr"]["ci_high"] is not None else r["nr"]["mean"] for r in rows])
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(rows) + 2), 3.6))
    x = np.arange(len(rows))
    ax.errorbar(x, means, yerr=[means - low, high - means], fmt="o", capsize=3)
    ax.set_xticks(x, [r["label"] for r in rows], rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("held-out NR at K")
    ax.set_title(f"sweep on {summary['family']}", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


__all__ = ["markdown", "nr_cell", "plot"]
