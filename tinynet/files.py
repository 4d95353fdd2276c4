"""Writing a file all at once or not at all, and tidying up after a writer that was killed.

A file is written to a temporary name in its own folder and renamed into place when complete,
so a crash never leaves half a file under the real name. The temporary file is created with
permissions 0o666 and the process's umask applies to it as to any new file (the umask itself is
never touched, so other threads are not affected). Its name, `.NAME.PID.RANDOM.SUFFIX`, says
which process wrote it: the next write to the same folder removes the ones whose process is
gone (a save or a download killed with kill -9), and leaves those of live processes alone.
A path that is a symbolic link is written through: its target is replaced, as `open()` would write it.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import time
from pathlib import Path
from typing import BinaryIO, Iterator

STALE_AFTER_S = 24 * 3600  # where a process cannot be asked whether it lives (not POSIX): age decides


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[BinaryIO]:
    """Open a temporary file beside `path` for binary writing; rename it to `path` when the block ends cleanly."""
    target = Path(os.path.realpath(path))  # through a symlink: replace its target, not the link
    remove_stale_temporaries(target, suffix)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}{suffix}")
    try:
        with open(tmp, "xb") as f:  # a new file only, made with 0o666 less the umask like any other
            yield f
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def remove_stale_temporaries(target: Path, suffix: str) -> None:
    """Remove temporary files of earlier writes to `target` whose writing process no longer runs."""
    for tmp in target.parent.glob(f".{target.name}.*.*{suffix}"):
        pid = tmp.name[len(target.name) + 2:].split(".")[0]
        if pid.isdigit() and not _alive(int(pid), tmp):
            with contextlib.suppress(OSError):  # another process may have removed it first
                tmp.unlink()


def _alive(pid: int, tmp: Path) -> bool:
    if pid == os.getpid():
        return True  # a write of this process still under way (another thread)
    if os.name != "posix":  # there os.kill(pid, 0) would send a signal; go by age instead
        with contextlib.suppress(OSError):
            return time.time() - tmp.stat().st_mtime < STALE_AFTER_S
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user
        return True
    return True
