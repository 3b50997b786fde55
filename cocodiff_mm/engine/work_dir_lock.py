"""One training run per work dir.

Two ``tools/train.py`` runs with the same work dir would both write
``epoch_N.pth``, ``last_checkpoint`` and the best checkpoint, each
overwriting the other's. :class:`WorkDirLock` holds an exclusive
``fcntl.flock`` on ``<work_dir>/.lock`` for the life of the run: the kernel
releases it when the process ends, however it ends, so a crashed run never
blocks the next one. The file also names the holder (pid, host, start
time) for the refusal message, and for the warning when a later run finds
a lock file that no process holds any more (a crash or a kill).

``tools/train.py`` takes it after its checks and before the Runner writes
anything; in a distributed run only rank 0 does (the ranks share the work
dir).
"""
import datetime
import fcntl
import json
import os
import socket
import sys
from pathlib import Path
from typing import Callable, Dict, Optional, Union

from ..utils.config_keys import ConfigError

#: The lock file's name inside the work dir.
LOCK_NAME = '.lock'


class WorkDirInUseError(ConfigError):
    """Another live run holds the work dir (names its pid, host and start)."""


def _describe(holder: Dict) -> str:
    if not holder:
        return 'a process that has not written its name yet'
    return (f'pid {holder.get("pid", "?")} on {holder.get("host", "?")} '
            f'since {holder.get("since", "?")}')


def _is_running(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, TypeError, OverflowError):
        return True  # someone else's process, or no pid to test
    return True


class WorkDirLock:
    """An exclusive, process-lifetime lock on a work dir.

    Args:
        work_dir (str | os.PathLike): The run's work dir (created if
            missing; removed again on release if it was created here and is
            still empty).
        option (str): How the user named the work dir, for the message.
            Defaults to ``''`` (the path alone).
        warn (callable): Prints the stale-lock warning. Defaults to a print
            to stderr.
    """

    def __init__(self, work_dir: Union[str, os.PathLike], option: str = '',
                 warn: Optional[Callable[[str], None]] = None) -> None:
        self.work_dir = Path(work_dir)
        self.path = self.work_dir / LOCK_NAME
        self.option = option
        self._warn = warn or (lambda line: print(line, file=sys.stderr))
        self._fd: Optional[int] = None
        self._made_dir = False

    @property
    def held(self) -> bool:
        """bool: Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> 'WorkDirLock':
        """Take the lock, or refuse naming its holder.

        Returns:
            WorkDirLock: ``self``.

        Raises:
            WorkDirInUseError: If another live process holds it.
        """
        self._made_dir = not self.work_dir.exists()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = self._read(fd)
                os.close(fd)
                self._remove_dir_if_made()
                name = f'{self.option} {self.work_dir}'.strip()
                raise WorkDirInUseError(
                    f'{name} is in use by another run: {_describe(holder)}; '
                    'wait for it to end, or give another --work-dir') from None
            # A holder that was releasing may have removed the file we
            # opened: the lock must be on the file that is there now.
            try:
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        previous = self._read(fd)
        if previous.get('pid') is not None:
            alive = previous.get('host') == socket.gethostname() and \
                _is_running(previous['pid'])
            state = ('still running but not holding it' if alive else
                     'no longer running')
            self._warn(f'warning: {self.work_dir}: taking over the lock of '
                       f'{_describe(previous)} ({state}; a crashed or killed '
                       'run leaves it)')
        record = dict(pid=os.getpid(), host=socket.gethostname(),
                      since=datetime.datetime.now().isoformat(
                          timespec='seconds'))
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file and let go of the lock (idempotent)."""
        if self._fd is None:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self._fd)  # closing the last descriptor drops the flock
        self._fd = None
        self._remove_dir_if_made()

    def _remove_dir_if_made(self) -> None:
        if self._made_dir:
            try:
                self.work_dir.rmdir()  # only when empty
            except OSError:
                pass

    @staticmethod
    def _read(fd: int) -> Dict:
        try:
            data = json.loads(os.pread(fd, 4096, 0).decode() or '{}')
        except (ValueError, UnicodeDecodeError, OSError):
            return {}
        return data if isinstance(data, dict) else {}

    def __enter__(self) -> 'WorkDirLock':
        return self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()
