"""Writing a file all at once or not at all, and tidying up after a writer that was killed.

A file is written to a temporary name in its own folder, flushed to disk, and renamed into place
when complete, so a crash never leaves half a file under the real name. The temporary file is made
as `open()` makes any new file (0o666 less the umask; the umask itself is never touched, so other
threads are not affected), and when it replaces an existing file it takes that file's permissions.
Its name, `.NAME.HOST-PID.RANDOM.SUFFIX`, says which process on which machine wrote it: the next
write to the same file removes the temporary files of processes of this machine that are gone (a
save or a download killed with kill -9), and those of other machines once they are a day old;
never those of a live process. A path that is a symbolic link is written through: its target is
replaced, as `open()` would write it.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import socket
import stat
import time
from pathlib import Path
from typing import BinaryIO, Iterator

STALE_AFTER_S = 24 * 3600  # a temporary file of another machine (a shared folder) is stale after a day
HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[BinaryIO]:
    """Open a temporary file beside `path` for binary writing; rename it to `path` when the block ends cleanly."""
    target = _through_links(path)
    remove_stale_temporaries(target, suffix)
    tmp = target.with_name(f".{target.name}.{HOST}-{os.getpid()}.{secrets.token_hex(4)}{suffix}")
    try:
        f = open(tmp, "xb")  # a new file only
    except OSError as err:  # name the file the user asked for, not our temporary one
        raise type(err)(err.errno, f"cannot write {os.fspath(path)}: {err.strerror}") from None
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename, so even a power cut leaves one whole file
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))  # re-saving keeps a private file private
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _through_links(path: str | os.PathLike) -> Path:
    """The file a write to `path` really goes to: a symbolic link's target; a loop of links is an error."""
    try:
        os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, f"cannot write {os.fspath(path)}: too many levels of symbolic links") from None
    return Path(os.path.realpath(path))


def remove_stale_temporaries(target: Path, suffix: str) -> None:
    """Remove temporary files of earlier writes to `target` whose writing process no longer runs."""
    pattern = re.compile(re.escape(f".{target.name}.") + r"([A-Za-z0-9]+)-(\d+)\.[0-9a-f]{8}" + re.escape(suffix))
    with contextlib.suppress(OSError):
        for entry in os.scandir(target.parent):
            match = pattern.fullmatch(entry.name)
            if match and _stale(match[1], int(match[2]), entry):
                with contextlib.suppress(OSError):  # another process may have removed it first
                    os.unlink(entry.path)


def _stale(host: str, pid: int, entry: os.DirEntry) -> bool:
    if host != HOST or os.name != "posix":  # another machine's process cannot be asked; os.kill(pid, 0) only on POSIX
        with contextlib.suppress(OSError):
            return time.time() - entry.stat().st_mtime > STALE_AFTER_S
        return False
    if pid == os.getpid():
        return False  # a write of this process, still under way in another thread
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, as another user
        return False
    return False
