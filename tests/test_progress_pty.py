"""Progbar on a real pseudo-terminal, 80 columns wide, read back through a minimal terminal emulator.

A child process draws two epochs of fit-like progress (a redraw at every step: REDRAW_INTERVAL = 0)
on the slave side of a pty; the test reads everything from the master side and replays it.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

if sys.platform == "win32":
    pytest.skip("pseudo-terminals are POSIX only", allow_module_level=True)
import fcntl  # noqa: E402  (POSIX only)
import select  # noqa: E402
import struct  # noqa: E402
import termios  # noqa: E402

PROGRESS = Path(__file__).resolve().parents[1] / "tinynet" / "progress.py"
COLUMNS = 80

CHILD = textwrap.dedent("""
    import importlib.util, sys
    # progress.py alone (standard library only): importing the whole package would only slow the test down
    spec = importlib.util.spec_from_file_location("progress", sys.argv[1])
    progress = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(progress)
    progress.REDRAW_INTERVAL = 0  # redraw at every step
    names = sys.argv[2].split(",")
    for epoch in (1, 2):
        print(f"Epoch {epoch}/2")
        bar = progress.Progbar(200)
        for step in range(1, 201):
            bar.update(step, lambda: [(name, 0.25) for name in names])
        logs = [(name, 0.25) for name in names] + [("val_" + name, 0.5) for name in names]
        bar.update(200, logs, finalize=True)
""")


def run_in_terminal(names: list[str]) -> str:
    """Everything the child wrote to an 80-column pty, as the terminal received it."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, COLUMNS, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(PROGRESS), ",".join(names)],
                             stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    received = bytearray()
    try:
        while select.select([master], [], [], 10)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child has exited and the slave side is closed
                break
            if not chunk:
                break
            received += chunk
    finally:
        os.close(master)
        assert child.wait(timeout=10) == 0, received.decode(errors="replace")
    return received.decode()


def emulate(output: str) -> tuple[list[str], int]:
    """The screen's rows after the output, and the widest a row ever was.

    Minimal: "\\n" starts a row, "\\r" goes back to its column 0, "\\x1b[K" erases to its end,
    other characters overwrite. A real terminal would wrap a row past its width; here the row
    just grows, so its length shows whether it would have wrapped.
    """
    rows, widest = [], 0
    for physical in output.replace("\r\n", "\n").split("\n"):  # the pty turns "\n" into "\r\n"
        row, column = [], 0
        for piece in physical.split("\r"):
            for index, part in enumerate(piece.split("\x1b[K")):
                if index:
                    del row[column:]
                row[column:column + len(part)] = part
                column += len(part)
                widest = max(widest, len(row))
            column = 0
        rows.append("".join(row))
    return rows, widest


def redraws(output: str) -> list[str]:
    """The running lines: every text between two "\\r" that did not end in a newline."""
    pieces = []
    for physical in output.replace("\r\n", "\n").split("\n"):
        pieces += physical.split("\r")[1:-1]
    return pieces


def test_fit_on_an_80_column_terminal_leaves_one_line_per_epoch():
    output = run_in_terminal(["loss"])
    rows, widest = emulate(output)
    assert widest < COLUMNS
    assert rows[-1] == "" and len(rows) == 5, rows  # "Epoch i/2" and its final line, twice
    for header, final in zip(rows[0:4:2], rows[1:4:2]):
        assert header.startswith("Epoch ")
        assert final.startswith("200/200 [=") and final.rstrip().endswith(" - loss: 0.2500 - val_loss: 0.5000"), final
        # With its 30 cells the bar would make the final line 87 columns wide: it was narrowed, nothing cut.
        assert len(final[final.index("["):final.index("]") + 1]) < 32
    running = redraws(output)  # 67 columns: full bar, nothing cut
    assert all(line.rstrip().endswith(" - loss: 0.2500") and "/200 [" in line for line in running)
    assert any("[" + "=" * 30 + "]" in line for line in running)


def test_lines_too_wide_for_the_terminal_are_cut_while_running_and_broken_at_the_end():
    names = ["loss", "sparse_categorical_accuracy", "mean_absolute_percentage_error"]
    output = run_in_terminal(names)
    running = redraws(output)
    assert len(running) >= 400  # a redraw a step
    assert max(len(line) for line in running) == COLUMNS - 1  # cut...
    assert not any(line.rstrip().endswith("mean_absolute_percentage_error: 0.2500") for line in running)  # ...here
    rows, widest = emulate(output)
    assert widest < COLUMNS
    epochs = [index for index, row in enumerate(rows) if row.startswith("Epoch ")]
    assert epochs == [0, len(rows) // 2]
    for start, end in zip(epochs, epochs[1:] + [len(rows) - 1]):
        first, *rest = rows[start + 1:end]  # one final line per epoch, broken between metrics
        assert first.startswith("200/200 [") and all(row.startswith("    - ") for row in rest)
        shown = first.rstrip() + "".join(row[3:].rstrip() for row in rest)
        assert shown.endswith(" - " + " - ".join(f"{n}: 0.2500" for n in names)
                              + "".join(f" - val_{n}: 0.5000" for n in names)), shown
