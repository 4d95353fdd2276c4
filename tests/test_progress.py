"""Progbar output, checked character by character on an in-memory stream with a fake clock."""
import io
import sys

import pytest

from tinynet import progress
from tinynet.progress import Progbar


class FakeClock:
    """Stands in for the `time` module inside tinynet.progress, so elapsed times are exact."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(progress, "time", fake)
    return fake


def test_non_tty_prints_only_the_final_line(clock):
    stream = io.StringIO()
    bar = Progbar(469, stream=stream)
    for step in range(1, 470):
        clock.now = step * 0.01
        bar.update(step, [("loss", 0.24789), ("accuracy", 0.925812)])
    assert stream.getvalue() == "469/469 [==============================] - 5s - loss: 0.2479 - accuracy: 0.9258\n"


def test_tty_redraws_in_place_with_eta_and_throttles(clock):
    stream = TTY()
    bar = Progbar(30, stream=stream)
    clock.now = 1.2
    bar.update(12, [("loss", 1.5)])
    assert stream.getvalue() == "\r12/30 [===========>..................] - ETA: 2s - loss: 1.5000"
    clock.now = 1.22  # within 0.05 s of the last draw: skipped
    bar.update(13)
    assert stream.getvalue().count("\r") == 1
    clock.now = 200.0
    bar.update(30, [("loss", 0.5)])
    last = stream.getvalue().split("\r")[-1]
    assert last.startswith("30/30 [==============================] - 3:20 - loss: 0.5000")
    assert last.endswith("\n")


def test_values_given_as_a_function_are_read_only_when_drawn(clock):
    """fit() passes a function, so that a GPU's running loss is not read back at every step."""
    stream, reads = TTY(), []

    def values():
        reads.append(clock.now)
        return [("loss", 0.25)]
    bar = Progbar(100, stream=stream)
    for step in range(1, 101):
        clock.now = step * 0.01  # a step every 10 ms, a redraw at most every 50 ms
        bar.update(step, values)
    assert len(reads) == stream.getvalue().count("\r") and 15 <= len(reads) <= 25
    assert stream.getvalue().split("\r")[-1].rstrip().endswith(" - loss: 0.2500")


def test_finalize_prints_once_and_long_durations(clock):
    stream = io.StringIO()
    bar = Progbar(10, stream=stream)
    clock.now = 3725
    bar.update(4, finalize=True)
    bar.update(10)  # already finished: nothing more
    assert stream.getvalue() == " 4/10 [===========>..................] - 1:02:05\n"


def test_unknown_target_shows_just_the_count(clock):
    stream = TTY()
    bar = Progbar(None, stream=stream)
    clock.now = 1.0
    bar.update(5)
    clock.now = 2.0
    bar.update(7, finalize=True)
    assert stream.getvalue() == "\r5\r7 - 2s\n"


def test_byte_mode_shows_human_sizes(clock):
    stream = TTY()
    bar = Progbar(9_912_422, width=10, unit="B", stream=stream)
    clock.now = 1.0
    bar.update(3_200_000)
    assert stream.getvalue() == "\r3.2/9.9 MB [==>.......] - ETA: 2s"
    unknown = io.StringIO()
    bar = Progbar(None, unit="B", stream=unknown)
    clock.now = 61.0
    bar.update(512, finalize=True)
    assert unknown.getvalue() == "512 B - 1:00\n"


def test_default_stream_is_looked_up_when_printing(clock, monkeypatch):
    bar = Progbar(2)
    replacement = io.StringIO()
    monkeypatch.setattr(sys, "stdout", replacement)
    bar.update(2)
    assert replacement.getvalue() == "2/2 [==============================] - 0s\n"
