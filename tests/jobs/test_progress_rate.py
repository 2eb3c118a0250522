"""The rate meter behind JobInfo's rate and JOB_PROGRESS: measured over a window,
falling to 0 when the job stops (pure arithmetic, explicit times)."""

from __future__ import annotations

from qjobd.jobs.progress import SAMPLE_SECONDS, WINDOW_SECONDS, RateMeter


def test_steady_progress_gives_its_rate() -> None:
    meter = RateMeter(100.0)
    for step in range(1, 101):
        meter.update(step * 1000, 100.0 + step * 0.1)  # 10 000 per second
    assert meter.rate(110.0) == 10_000


def test_rate_follows_a_change_within_the_window() -> None:
    meter = RateMeter(0.0)
    now = 0.0
    for _ in range(100):  # 10 s at 1000/s
        now += 0.1
        meter.update(int(now * 1000), now)
    progress = int(now * 1000)
    for _ in range(int(WINDOW_SECONDS / 0.1) + 2):  # then 5000/s for longer than the window
        now += 0.1
        progress += 500
        meter.update(progress, now)
    assert 4900 <= meter.rate(now) <= 5100


def test_a_still_job_falls_to_zero() -> None:
    meter = RateMeter(0.0)
    meter.update(1_000_000, 1.0)
    assert meter.rate(1.0) == 1_000_000
    assert 0 < meter.rate(2.0) < 1_000_000  # the stillness counts
    assert meter.rate(1.0 + WINDOW_SECONDS + SAMPLE_SECONDS) == 0


def test_samples_are_bounded() -> None:
    meter = RateMeter(0.0)
    for step in range(100_000):
        meter.update(step, step * 0.001)
    assert len(meter._samples) <= WINDOW_SECONDS / SAMPLE_SECONDS + 2
