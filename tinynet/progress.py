"""A small Keras-style progress bar, shared by `Model.fit(verbose=1)` and the dataset downloader.

    12/469 [=>............................] - ETA: 3s - loss: 0.2479 - accuracy: 0.9258
   469/469 [==============================] - 4s - loss: 0.2479 - accuracy: 0.9258

On a terminal the line is redrawn in place (with "\\r"), at most every 0.05 s so that
printing never slows training down. When the output is a file or a pipe (a CI log, a
notebook capture), "\\r" does not erase anything, so only the final line is printed.
"""
from __future__ import annotations

import sys
import time
from typing import Callable, TextIO, Union

REDRAW_INTERVAL = 0.05  # seconds between two redraws of the same bar
Values = Union[list[tuple[str, float]], Callable[[], list[tuple[str, float]]]]


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


class Progbar:
    """Progress towards `target` steps (or bytes with unit="B"); target None means unknown."""

    def __init__(self, target: int | None, width: int = 30, unit: str = "step", stream: TextIO | None = None) -> None:
        self.target, self.width, self.unit = target, width, unit
        self._stream = stream  # None: sys.stdout at print time, so pytest's capsys and redirections work
        self._start = time.monotonic()
        self._last_draw = float("-inf")
        self._last_len = 0
        self._finished = False

    def update(self, current: int, values: Values | None = None, finalize: bool = False) -> None:
        """Record that `current` steps are done; `values` (name, number) pairs are shown after the bar.

        `values` may be a function returning them, called only when the bar is drawn:
        fit() passes one, so the GPU's running loss is read 20 times a second, not at every step.
        """
        if self._finished:
            return
        stream = self._stream if self._stream is not None else sys.stdout
        done = finalize or (self.target is not None and current >= self.target)
        now = time.monotonic()
        tty = getattr(stream, "isatty", lambda: False)()
        if not done and (not tty or now - self._last_draw < REDRAW_INTERVAL):
            return
        self._last_draw = now
        if callable(values):
            values = values()
        line = self._line(current, values or [], now - self._start, done)
        # Pad with spaces so that a shorter line fully covers the previous one on a terminal.
        stream.write(("\r" + line.ljust(self._last_len) if tty else line) + ("\n" if done else ""))
        stream.flush()
        self._last_len, self._finished = len(line), done

    def _line(self, current: int, values: list[tuple[str, float]], elapsed: float, done: bool) -> str:
        target = self.target
        numbers = [current] if target is None else [current, target]
        if self.unit == "B":
            text = _sizes(numbers)
        else:
            text = str(current) if target is None else f"{current:{len(str(target))}d}/{target}"
        if target is not None:
            filled = min(self.width, int(self.width * current / max(target, 1)))
            bar = "=" * filled
            if filled and current < target:
                bar = bar[:-1] + ">"
            text += f" [{bar:.<{self.width}}]"
        if done:
            text += f" - {_duration(elapsed)}"
        elif target is not None:
            text += " - ETA: " + (_duration(elapsed / current * (target - current)) if current > 0 else "?")
        return text + "".join(f" - {name}: {value:.4f}" for name, value in values)
