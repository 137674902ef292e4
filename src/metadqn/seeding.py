"""Every random stream a run uses is derived here from the run's one seed and a purpose, so
no module invents its own offset and two purposes never share a stream by accident."""

from __future__ import annotations

import zlib


def derive_seed(seed: int, purpose: str, index: int = 0) -> int:
    """A seed in [0, 2**31) for ``purpose`` (e.g. ``"support"``, ``"eval"``), stable across
    Python runs (CRC32, not ``hash``), different for each ``index``."""
    return (int(seed) * 1_000_003 + zlib.crc32(purpose.encode()) + int(index) * 7_919) % (2**31 - 1)


__all__ = ["derive_seed"]
