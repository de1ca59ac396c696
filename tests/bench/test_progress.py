"""Progress of warm-up and timed runs: an ETA line on a terminal, nothing otherwise."""

from __future__ import annotations

import io
import time

import pytest

from edgekit.bench.timing import Progress, TimingConfig, time_runs, warm_up
from edgekit.core import console


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_nothing_is_printed_when_the_console_is_not_a_terminal(monkeypatch, capsys):
    captured = io.StringIO()  # isatty() is False
    monkeypatch.setattr(console, "_terminal", captured)
    assert Progress.open("timing", 50) is None
    assert len(time_runs(lambda: None, 50, progress=True)) == 50
    warm_up(lambda: None, TimingConfig(steady_window=5), progress=True)
    out, err = capsys.readouterr()
    assert captured.getvalue() == out == err == ""


def test_a_terminal_gets_counts_and_an_eta_and_the_line_is_erased(monkeypatch):
    terminal = FakeTerminal()
    monkeypatch.setattr(console, "_terminal", terminal)
    start = time.monotonic()
    samples = time_runs(lambda: time.sleep(0.002), 50, progress=True)
    elapsed = time.monotonic() - start
    text = terminal.getvalue()
    assert len(samples) == 50 and (samples > 1_000_000).all()
    assert "timing: 1/50 runs, ETA" in text  # the first run already shows an ETA
    assert 1 <= text.count("timing:") <= 1 + elapsed / Progress.interval_s  # throttled
    assert text.endswith("\r\x1b[K")  # erased, so the next line starts clean


def test_drawing_is_not_inside_the_timed_span(monkeypatch):
    class SlowTerminal(FakeTerminal):
        def write(self, text: str) -> int:
            time.sleep(0.05)
            return super().write(text)

    monkeypatch.setattr(console, "_terminal", SlowTerminal())
    monkeypatch.setattr(Progress, "interval_s", 0.0)  # draw after every run
    samples = time_runs(lambda: None, 10, progress=True)
    assert samples.max() < 20_000_000  # 50 ms per draw would show if it were timed


def test_warm_up_until_steady_shows_a_bounded_eta(monkeypatch):
    terminal = FakeTerminal()
    monkeypatch.setattr(console, "_terminal", terminal)
    info = warm_up(lambda: None, TimingConfig(steady_window=5, steady_tolerance=10.0),
                   progress=True)
    assert info["steady"] is True
    assert "warm-up: 1/500 runs, ETA <= " in terminal.getvalue()


@pytest.mark.parametrize(("seconds", "text"), [(0.4, "0 s"), (42.0, "42 s"), (125, "2:05 min")])
def test_eta_format(seconds, text):
    from edgekit.bench.timing import _duration

    assert _duration(seconds) == text
