"""A Keras 3-style progress bar, shared by `Model.fit(verbose=1)`, `evaluate` and the dataset downloader.

     12/469 [=>............................] 3s 7ms/step - accuracy: 0.9258 - loss: 0.2479
    469/469 [==============================] 4s 9ms/step - accuracy: 0.9258 - loss: 0.2479

While running, the time is the estimated time left; on the final line, the time taken. The
time per step leaves out the first step, which includes one-off work (allocations, kernels).
The bar is ASCII, not Keras 3's "━": that character is "ambiguous width" in Unicode (two
columns in CJK locales) and cannot be written to a log in a legacy encoding such as cp1252.

Where the output goes decides how it is drawn:
- a terminal: one line redrawn in place with "\\r", at most every REDRAW_INTERVAL seconds, and
  never wider than the terminal (a line that wraps cannot be redrawn: every redraw would leave
  a stale copy behind). The bar narrows first, then a running line is cut; the final line,
  which stays, is broken between metrics instead so that no metric is lost.
- a Jupyter notebook (a running IPython kernel): the same redraws with "\\r", which the output
  area applies to the whole logical line however the browser wraps it, so nothing is cut.
- anything else (a file, a pipe, a CI log): "\\r" erases nothing there, so only the final line.

Reaching the target draws the complete line but leaves it open, so that fit can still end it
with `update(target, logs, finalize=True)` and the epoch's validation metrics; otherwise the
line is ended by `close()`, or when the bar is garbage-collected (evaluate's bar, at its return).
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from typing import Callable, TextIO, Union

REDRAW_INTERVAL = 0.05  # seconds between two redraws of the same bar: printing must never slow training down
MIN_BAR = 10  # on a narrow terminal the bar shrinks to this many cells before anything is cut
INDENT = "    "  # continuation rows of a final line broken to fit the terminal
Pairs = list[tuple[str, float]]
Values = Union[Pairs, Callable[[], Pairs]]


def _duration(seconds: float) -> str:
    """4s, 2:05 or 1:02:05: short enough to sit in the bar, exact enough to plan a coffee."""
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}" if s >= 60 else f"{s}s"


def _sizes(numbers: list[float]) -> str:
    """Byte counts in one shared unit, e.g. [3.2e6, 9.9e6] -> '3.2/9.9 MB'."""
    for scale, name in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if max(numbers) >= scale:
            return "/".join(f"{n / scale:.1f}" for n in numbers) + f" {name}"
    return "/".join(str(int(n)) for n in numbers) + " B"


def _per_unit(seconds: float, unit: str) -> str:
    """Keras 3's time per step: '2s/step', '7ms/step' or '350us/step'."""
    if seconds >= 1 or seconds == 0:
        return f"{seconds:.0f}s/{unit}"
    return f"{seconds * 1e3:.0f}ms/{unit}" if seconds >= 1e-3 else f"{seconds * 1e6:.0f}us/{unit}"


def _number(value: float) -> str:
    """Keras 3's rule: 4 decimals, or the exponent form where 4 decimals would show (almost) nothing."""
    return f"{value:.4f}" if abs(value) > 1e-3 else f"{value:.4e}"


def _in_notebook() -> bool:
    """True inside a Jupyter kernel (Colab's and VS Code's included), looked up without importing IPython."""
    if "ipykernel" not in sys.modules:  # cheap first: a plain script never loaded it
        return False
    get_ipython = getattr(sys.modules.get("IPython"), "get_ipython", None)
    shell = get_ipython() if callable(get_ipython) else None
    # Colab's shell subclasses ZMQInteractiveShell; a terminal IPython's does not (and is a tty anyway).
    return any(cls.__name__ == "ZMQInteractiveShell" for cls in type(shell).__mro__)


def _columns(stream: TextIO) -> int:
    """The terminal's width now (it may have been resized since the last draw)."""
    try:
        columns = os.get_terminal_size(stream.fileno()).columns  # the stream's own terminal: stderr's too
    except (AttributeError, ValueError, OSError):  # io.UnsupportedOperation is an OSError
        columns = shutil.get_terminal_size(fallback=(80, 24)).columns
    return columns if columns > 0 else 80  # some pseudo-terminals report 0 before their size is set


def _wrap(segments: list[str], budget: int) -> list[str]:
    """Rows of at most `budget` characters, broken only between segments (cut if one alone is too long)."""
    rows = [segments[0]]
    for segment in segments[1:]:
        if len(rows[-1]) + len(segment) <= budget:
            rows[-1] += segment
        else:
            rows.append(INDENT + segment.lstrip())
    return [row[:budget] for row in rows]


class Progbar:
    """Progress towards `target` steps (or bytes with unit="B"); target None means unknown.

    verbose=1 draws as described above, verbose=2 only the final line (as in a log), 0 nothing.
    """

    def __init__(self, target: int | None, width: int = 30, unit: str = "step", stream: TextIO | None = None,
                 verbose: int = 1) -> None:
        self.target, self.width, self.unit, self.verbose = target, width, unit, verbose
        self._stream = stream  # None: sys.stdout at print time, so pytest's capsys and redirections work
        self._start = time.monotonic()
        self._first: tuple[int, float] | None = None  # (step, time) of the first update, left out of the pace
        self._last_draw = float("-inf")
        self._last_len = 0  # of the line now on the terminal, which the next redraw must cover
        self._bar_cells = width  # only ever narrows, so that the bar does not jitter as values change length
        self._values: Values | None = None  # the latest given, for a final update that gives none
        self._pending: tuple[int, Values | None, float] | None = None  # target reached, line still open
        self._live = False  # a line without its "\n" is on a terminal or in a notebook
        self._finished = verbose == 0

    def update(self, current: int, values: Values | None = None, finalize: bool = False) -> None:
        """Record that `current` steps are done; `values` (name, number) pairs are shown after the bar.

        `values` may be a function returning them, called only when a line is drawn: fit() passes
        one, so the GPU's running loss is read at most 20 times a second, not at every step.
        `finalize=True` draws the final line with these values (or the latest given) and ends it.
        """
        if self._finished:
            return
        now = time.monotonic()
        if self._first is None and current > 0:
            self._first = (current, now)
        if values is not None:
            self._values = values
        if finalize:
            self._end(current, self._values, now)
        elif self.target is not None and current >= self.target:
            if self._pending is None:  # drawn once, whatever the throttle: the bar must show 100%
                self._pending = (current, self._values, now)
                self._draw(current, self._values, now, final=False)
        elif now - self._last_draw >= REDRAW_INTERVAL and self._pending is None:
            self._last_draw = now
            self._draw(current, self._values, now, final=False)

    def close(self) -> None:
        """End the line: the complete one if the target was reached, else whatever a terminal shows."""
        if self._finished:
            return
        if self._pending is not None:
            self._end(*self._pending)
        elif self._live:
            self._write("\n")
        self._finished = True

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # at interpreter exit the stream may already be closed: nothing to save
            pass

    def _end(self, current: int, values: Values | None, now: float) -> None:
        self._draw(current, values, now, final=True)
        self._pending, self._finished = None, True

    def _draw(self, current: int, values: Values | None, now: float, final: bool) -> None:
        stream = self._stream if self._stream is not None else sys.stdout
        mode = self._mode(stream)
        if mode == "log" and not final:
            return  # nothing but the final line: the values are not even read
        pairs = values() if callable(values) else list(values or [])
        if mode == "tty":
            budget = max(1, _columns(stream) - 1)  # the last column would make some terminals wrap
            rows = self._fit(current, pairs, now, final, budget)
            # Spaces over the rest of the previous line; never past the budget (that would wrap).
            text = "\r" + rows[0].ljust(min(self._last_len, budget)) + "".join("\n" + row for row in rows[1:])
            self._last_len = len(rows[0])
        else:
            line = "".join(self._segments(current, pairs, now, self.width, final))
            text = ("\r" if mode == "notebook" else "") + line
        self._write(text + ("\n" if final else ""), stream)
        self._live = mode != "log" and not final

    def _write(self, text: str, stream: TextIO | None = None) -> None:
        if stream is None:
            stream = self._stream if self._stream is not None else sys.stdout
        stream.write(text)
        stream.flush()

    def _mode(self, stream: TextIO) -> str:
        """'tty', 'notebook' or 'log', decided at each draw (sys.stdout may have been replaced since)."""
        if self.verbose == 2:
            return "log"
        if getattr(stream, "isatty", lambda: False)():
            return "tty"
        # Only the kernel's own streams reach the output area; a file opened in a notebook is a log.
        return "notebook" if (stream is sys.stdout or stream is sys.stderr) and _in_notebook() else "log"

    def _fit(self, current: int, pairs: Pairs, now: float, final: bool, budget: int) -> list[str]:
        """The line as terminal rows: the bar narrowed to fit, then a running line cut, a final one broken."""
        segments = self._segments(current, pairs, now, self._bar_cells, final)
        overflow = len("".join(segments)) - budget
        narrowest = min(MIN_BAR, self.width)
        # A final line that cannot fit in one row anyway is broken, with the bar as it was.
        if self.target is not None and overflow > 0 and not (final and self._bar_cells - overflow < narrowest):
            self._bar_cells = max(narrowest, self._bar_cells - overflow)
            segments = self._segments(current, pairs, now, self._bar_cells, final)
        return _wrap(segments, budget) if final else ["".join(segments)[:budget]]

    def _segments(self, current: int, pairs: Pairs, now: float, cells: int, final: bool) -> list[str]:
        """The line in pieces: count, bar and times first, then one ' - name: value' per metric."""
        head = self._count(current)
        if self.target is not None:
            filled = max(0, min(cells, int(cells * current / max(self.target, 1))))
            bar = "=" * filled
            if filled and current < self.target:
                bar = bar[:-1] + ">"
            head += f" [{bar:.<{cells}}]"
        pace = self._step_time(current, now)
        if final or self.target is None or current >= self.target:  # done: the time it took
            head += " " + _duration(now - self._start)
        else:  # the time left
            head += " " + (_duration(pace * (self.target - current)) if pace > 0 else "?")
        if self.unit == "B":  # bytes: a speed says more than microseconds per byte
            head += f" {_sizes([current / (now - self._start)])}/s" if now > self._start else ""
        else:
            head += " " + _per_unit(pace, self.unit)
        return [head] + [f" - {name}: {_number(float(value))}" for name, value in pairs]

    def _count(self, current: int) -> str:
        if self.unit == "B":
            return _sizes([current] if self.target is None else [current, self.target])
        return f"{current}/Unknown" if self.target is None else f"{current:{len(str(self.target))}d}/{self.target}"

    def _step_time(self, current: int, now: float) -> float:
        """Seconds per step, leaving out the first update (it pays for one-off work) once there are others."""
        if current <= 0 or self._first is None:
            return 0.0
        first_step, first_time = self._first
        if current > first_step:
            return (now - first_time) / (current - first_step)
        return (now - self._start) / current
