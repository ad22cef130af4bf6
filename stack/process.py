"""Start, find and stop the stack's background processes through pid files."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


class StartError(RuntimeError):
    """A component did not come up; the message carries the tail of its log."""


def read_pid(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as gone.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return True


def spawn(cmd: Sequence[str], log_file: Path, pid_file: Path, cwd: Path | None = None,
          env: Mapping[str, str] | None = None) -> int:
    """Start `cmd` detached in its own session, output appended to `log_file`."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        proc = subprocess.Popen(
            list(cmd), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=cwd, env=dict(env) if env is not None else None, start_new_session=True,
        )
    pid_file.write_text(str(proc.pid))
    return proc.pid


def stop(pid_file: Path, timeout_s: float = 30.0) -> bool:
    """SIGTERM the process group, SIGKILL what is left after the timeout. True if one was running."""
    return stop_together([pid_file], timeout_s)[0]


def stop_together(pid_files: Sequence[Path], timeout_s: float = 30.0) -> list[bool]:
    """`stop` several processes at once: each gets SIGTERM before any is waited for. For the
    nodes of a quorum: stopped one by one, the last could not finish its shutdown alone."""
    pids = [read_pid(pid_file) for pid_file in pid_files]
    for pid in pids:
        if pid is not None:
            _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(pid is not None and pid_alive(pid) for pid in pids):
        time.sleep(0.2)
    for pid in pids:
        if pid is not None and pid_alive(pid):
            _signal_group(pid, signal.SIGKILL)
            wait_until(lambda pid=pid: not pid_alive(pid), 10, f"pid {pid} to exit after SIGKILL")
    for pid_file in pid_files:
        pid_file.unlink(missing_ok=True)
    return [pid is not None for pid in pids]


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


def wait_until(check: Callable[[], bool], timeout_s: float, what: str,
               alive: Callable[[], bool] | None = None, interval_s: float = 0.5) -> None:
    """Poll `check` until it is true; give up at the deadline or as soon as `alive` says no."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - any failure of a probe just means "not yet"
            pass
        if alive is not None and not alive():
            raise StartError(f"process exited while waiting for {what}")
        if time.monotonic() >= deadline:
            raise StartError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(interval_s)


def log_tail(log_file: Path, lines: int = 25) -> str:
    try:
        text = log_file.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join("    " + line for line in text[-lines:])
