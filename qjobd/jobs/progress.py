"""How fast a job moves: its progress rate over the last few seconds.

A :class:`RateMeter` keeps a few (time, progress) samples, at most one per
:data:`SAMPLE_SECONDS`, and measures the rate against the newest sample that is at
least :data:`WINDOW_SECONDS` old (or the oldest one, early in a job's life).  A job
that stops moving sees its rate fall to 0 within the window, whoever asks, because
the rate is computed at the time of asking, not when progress was last made.  Pure
arithmetic: the caller passes the time (monotonic seconds).
"""

from __future__ import annotations

from collections import deque
from typing import Final

__all__ = ["SAMPLE_SECONDS", "WINDOW_SECONDS", "RateMeter"]

#: The span the rate is measured over.
WINDOW_SECONDS: Final = 3.0

#: The least time between two samples (bounds the samples kept to ~window/this).
SAMPLE_SECONDS: Final = 0.1


class RateMeter:
    """Progress samples of one job and the rate they give."""

    def __init__(self, now: float, progress: int = 0) -> None:
        self._samples: deque[tuple[float, int]] = deque([(now, progress)])
        self._progress = progress

    def update(self, progress: int, now: float) -> None:
        """The job's progress is now ``progress``."""
        self._progress = progress
        if now - self._samples[-1][0] >= SAMPLE_SECONDS:
            self._samples.append((now, progress))
            self._forget(now)

    def _forget(self, now: float) -> None:
        """Drop samples that no longer serve as the window's start."""
        samples = self._samples
        while len(samples) > 1 and samples[1][0] <= now - WINDOW_SECONDS:
            samples.popleft()

    def rate(self, now: float) -> int:
        """Progress per second over the last :data:`WINDOW_SECONDS` (0 when still)."""
        self._forget(now)
        # The window starts at the newest sample not younger than it (the first
        # sample, early on): time without progress since then lowers the rate.
        start, progress = self._samples[0]
        elapsed = now - start
        if elapsed <= 0:
            return 0
        return max(0, int((self._progress - progress) / elapsed))
