"""Speed limiting for jobs: how long to wait so that bytes flow at ``speed`` per second.

The limiter tracks when the bytes processed so far are *due* at the configured speed
and asks the job to wait until then.  That keeps the long-run rate exact (no drift
from rounding each wait), while forgetting history older than one slice keeps a job
that was paused or slowed down by I/O from bursting to catch up afterwards.  Pure
arithmetic: the caller passes the time, so tests need no clock.
"""

from __future__ import annotations

from typing import Final

__all__ = ["SLICE_SECONDS", "RateLimiter"]

#: How far behind schedule a job may fall before the lost time is forgiven; also
#: QEMU's slice length for block jobs (100 ms).
SLICE_SECONDS: Final = 0.1


class RateLimiter:
    """Bytes-per-second budget; speed 0 means unlimited."""

    def __init__(self, speed: int = 0) -> None:
        self.speed = speed
        self._start: float | None = None
        self._processed = 0

    def set_speed(self, speed: int) -> None:
        """Change the rate from now on (what was done at the old rate is forgotten)."""
        self.speed = speed
        self._start = None
        self._processed = 0

    def processed(self, nbytes: int, now: float) -> None:
        """Account for ``nbytes`` just moved."""
        if not self.speed:
            return
        if self._start is None:
            self._start = now
        due = self._start + self._processed / self.speed
        if due < now - SLICE_SECONDS:
            # Long idle (paused, slow disk): restart the schedule instead of bursting.
            self._start = now - SLICE_SECONDS
            self._processed = 0
        self._processed += nbytes

    def delay(self, now: float) -> float:
        """Seconds to wait before moving more bytes."""
        if not self.speed or self._start is None:
            return 0.0
        due = self._start + self._processed / self.speed
        return max(0.0, due - now)
