"""Progbar output, checked character by character on in-memory streams with a fake clock.

Terminals of a real width are in test_progress_pty.py; here a "terminal" is a StringIO whose
isatty() says yes, 200 columns wide (COLUMNS), so that only the format is under test.
"""
import io
import sys
import types

import pytest

from tinynet import progress
from tinynet.progress import Progbar

FIT_LOGS = [("accuracy", 0.925812), ("loss", 0.24789)]
VAL_LOGS = FIT_LOGS + [("val_accuracy", 0.94), ("val_loss", 0.2)]


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
    monkeypatch.setenv("COLUMNS", "200")  # a TTY() has no file descriptor: its width comes from here
    return fake


def run_epoch(bar: Progbar, clock: FakeClock, steps: int, values=FIT_LOGS, final=VAL_LOGS) -> None:
    """What fit does: an update a step (10 ms each), then the epoch's logs with the validation metrics."""
    for step in range(1, steps + 1):
        clock.now = step * 0.01
        bar.update(step, values)
    bar.update(steps, final, finalize=True)


# ---- not a terminal: only the final line -----------------------------------------------------------------
def test_a_log_gets_one_line_per_epoch_with_the_validation_metrics(clock):
    stream = io.StringIO()
    for _ in range(2):
        run_epoch(Progbar(469, stream=stream), clock, 469)
        clock.now = 0.0
    line = ("469/469 [==============================] 5s 10ms/step - accuracy: 0.9258 - loss: 0.2479"
            " - val_accuracy: 0.9400 - val_loss: 0.2000\n")
    assert stream.getvalue() == line * 2


def test_reaching_the_target_without_finalize_prints_when_the_bar_is_closed(clock):
    """evaluate's pattern: no finalize call; the line comes when the bar is closed or collected."""
    stream = io.StringIO()
    bar = Progbar(3, stream=stream)
    for step in range(1, 4):
        clock.now = step * 0.5
        bar.update(step, [("loss", 0.5)])
    assert stream.getvalue() == ""  # still open: fit would add its validation metrics now
    del bar  # CPython collects it at once, as when evaluate() returns
    assert stream.getvalue() == "3/3 [==============================] 2s 500ms/step - loss: 0.5000\n"


def test_finalize_without_values_shows_the_latest_given(clock):
    stream = io.StringIO()
    bar = Progbar(4, stream=stream)
    bar.update(2, lambda: [("loss", 0.25)])
    clock.now = 2.0
    bar.update(4, finalize=True)
    assert stream.getvalue() == "4/4 [==============================] 2s 1s/step - loss: 0.2500\n"


def test_finalize_prints_once_and_long_durations(clock):
    stream = io.StringIO()
    bar = Progbar(10, stream=stream)
    clock.now = 3725
    bar.update(4, finalize=True)
    bar.update(10)  # already finished: nothing more
    bar.close()
    assert stream.getvalue() == " 4/10 [===========>..................] 1:02:05 931s/step\n"


# ---- a terminal: redrawn in place ------------------------------------------------------------------------
def test_tty_redraws_in_place_with_eta_and_throttles(clock):
    stream = TTY()
    bar = Progbar(30, stream=stream)
    clock.now = 1.2
    bar.update(12, [("loss", 1.5)])
    assert stream.getvalue() == "\r12/30 [===========>..................] 2s 100ms/step - loss: 1.5000"
    clock.now = 1.22  # within 0.05 s of the last draw: skipped
    bar.update(13)
    assert stream.getvalue().count("\r") == 1
    clock.now = 200.0
    bar.update(30, [("loss", 0.5)])  # the target: drawn at once, but left open for fit's validation metrics
    assert stream.getvalue().split("\r")[-1] == "30/30 [==============================] 3:20 11s/step - loss: 0.5000"
    bar.update(30, [("loss", 0.5), ("val_loss", 0.75)], finalize=True)
    last = stream.getvalue().split("\r")[-1]
    assert last == "30/30 [==============================] 3:20 11s/step - loss: 0.5000 - val_loss: 0.7500\n"


def test_a_shorter_line_covers_the_previous_one(clock):
    stream = TTY()
    bar = Progbar(None, stream=stream)
    bar.update(1, [("loss", 12.5)])
    clock.now = 1.0
    bar.update(2, [("loss", 1.5)])
    first, second = stream.getvalue().split("\r")[1:]
    assert second == "2/Unknown 1s 1s/step - loss: 1.5000 "  # one space over the old line's last character
    assert len(second) == len(first)


def test_close_ends_a_line_left_on_the_terminal(clock):
    """E.g. fit stopping mid-epoch on a NaN: its warning must not start on the bar's line."""
    stream = TTY()
    bar = Progbar(10, stream=stream)
    bar.update(3)
    bar.close()
    bar.close()
    assert stream.getvalue().endswith("\n") and stream.getvalue().count("\n") == 1


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


@pytest.mark.parametrize("make", [io.StringIO, TTY])
def test_nothing_drawn_means_the_values_are_never_read(clock, make):
    calls = []

    def values():
        calls.append(1)
        return [("loss", 0.25)]
    stream = make()
    silent = Progbar(50, stream=stream, verbose=0)
    run_epoch(silent, clock, 50, values=values, final=values)
    silent.close()
    assert calls == [] and stream.getvalue() == ""
    log_only = Progbar(50, stream=stream, verbose=2)  # and a log, on a terminal or not, reads them once
    run_epoch(log_only, clock, 50, values=values, final=values)
    assert calls == [1] and stream.getvalue().count("\n") == 1 and "\r" not in stream.getvalue()


def test_unknown_target_shows_the_count_and_elapsed_time(clock):
    stream = TTY()
    bar = Progbar(None, stream=stream)
    clock.now = 1.0
    bar.update(5)
    clock.now = 2.0
    bar.update(7, finalize=True)
    assert stream.getvalue() == "\r5/Unknown 1s 200ms/step\r7/Unknown 2s 500ms/step\n"


def test_byte_mode_shows_human_sizes_and_speed(clock):
    stream = TTY()
    bar = Progbar(9_912_422, width=10, unit="B", stream=stream)
    clock.now = 1.0
    bar.update(3_200_000)
    assert stream.getvalue() == "\r3.2/9.9 MB [==>.......] 2s 3.2 MB/s"
    unknown = io.StringIO()
    bar = Progbar(None, unit="B", stream=unknown)
    clock.now = 61.0
    bar.update(512, finalize=True)
    assert unknown.getvalue() == "512 B 1:00 8 B/s\n"


def test_default_stream_is_looked_up_when_printing(clock, monkeypatch):
    bar = Progbar(2)
    replacement = io.StringIO()
    monkeypatch.setattr(sys, "stdout", replacement)
    bar.update(2, finalize=True)
    assert replacement.getvalue() == "2/2 [==============================] 0s 0s/step\n"


@pytest.mark.parametrize("value, text", [(0.24789, "0.2479"), (-1.5, "-1.5000"), (12345.678, "12345.6780"),
                                         (0.0, "0.0000e+00"), (4.2e-5, "4.2000e-05"), (float("nan"), "nan")])
def test_values_are_formatted_as_keras_3_does(value, text):
    assert progress._number(value) == text


# ---- a Jupyter notebook ----------------------------------------------------------------------------------
def fake_kernel(monkeypatch, shell_class_name="ZMQInteractiveShell"):
    """What a running Jupyter kernel leaves in sys.modules, without IPython installed."""
    shell_class = type(shell_class_name, (), {})
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: shell_class()
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    return shell_class


def test_a_notebook_gets_live_redraws_of_the_whole_line(clock, monkeypatch):
    fake_kernel(monkeypatch)
    cell_output = io.StringIO()  # a kernel's stdout: not a tty
    monkeypatch.setattr(sys, "stdout", cell_output)
    long_names = [(f"a_rather_long_metric_name_{i}", 0.5) for i in range(4)]
    run_epoch(Progbar(200), clock, 200, values=long_names, final=long_names + [("val_loss", 0.25)])
    text = cell_output.getvalue()
    assert 30 <= text.count("\r") <= 50  # 2 s of steps, a redraw every 50 ms, plus the final line
    assert text.endswith("\n") and text.count("\n") == 1
    final = text.split("\r")[-1]
    assert len(final) > 160 and final.rstrip("\n").endswith(" - val_loss: 0.2500")  # nothing cut


def test_colab_is_a_notebook_and_a_plain_process_with_ipykernel_loaded_is_not(clock, monkeypatch):
    shell = fake_kernel(monkeypatch)
    colab = type("Shell", (shell,), {})  # google.colab's shell subclasses ZMQInteractiveShell
    sys.modules["IPython"].get_ipython = lambda: colab()
    assert progress._in_notebook()
    sys.modules["IPython"].get_ipython = lambda: None  # ipykernel imported, but no kernel running
    assert not progress._in_notebook()
    fake_kernel(monkeypatch, "TerminalInteractiveShell")
    assert not progress._in_notebook()


def test_a_file_written_from_a_notebook_is_a_log(clock, monkeypatch):
    fake_kernel(monkeypatch)
    log = io.StringIO()
    run_epoch(Progbar(100, stream=log), clock, 100)
    assert "\r" not in log.getvalue() and log.getvalue().count("\n") == 1
