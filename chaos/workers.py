"""The run's worker processes: `notipipe worker` as children, started, stopped, killed and
restarted with other settings, as a deployment does."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from stack.components import worker_page

ROOT = Path(__file__).resolve().parents[1]


def port_allocator(first: int) -> Callable[[], int]:
    """Free loopback ports from ``first`` up, each handed out once."""
    taken: set[int] = set()

    def allocate() -> int:
        port = first
        while True:
            if port not in taken:
                with socket.socket() as sock:
                    try:
                        sock.bind(("127.0.0.1", port))
                    except OSError:
                        port += 1
                        continue
                taken.add(port)
                return port
            port += 1
    return allocate


class WorkerProcess:
    def __init__(self, name: str, env: Mapping[str, str], web_port: int, data_dir: Path,
                 log_dir: Path) -> None:
        self.name, self.web_port, self.data_dir = name, web_port, data_dir
        self.env = dict(env)  # the pipeline's settings for this worker (NOTIPIPE_*)
        self.log = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.meant_to_run = False  # started and not stopped or killed on purpose since

    def start(self, extra_env: Mapping[str, str] | None = None) -> None:
        """Start (again, on the same data directory), with ``extra_env`` on top of its settings
        from now on: a changed setting, a new version pinned."""
        self.env.update(extra_env or {})
        env = {**os.environ, **self.env, "NOTIPIPE_WEB_PORT": str(self.web_port),
               "NOTIPIPE_DATA_DIR": str(self.data_dir),
               "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.meant_to_run = True
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=env,
                                         stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no last commit, no flush."""
        self.meant_to_run = False
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self, timeout_s: float = 120.0) -> float:
        """SIGTERM and wait for the exit; seconds it took. SIGKILL after ``timeout_s``."""
        self.meant_to_run = False
        if not self.running:
            return 0.0
        assert self.proc is not None
        started = time.monotonic()
        self.proc.terminate()
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(f"{self.name} did not stop within {timeout_s:.0f}s of SIGTERM "
                               f"(SIGKILLed):\n{self.log_tail()}") from None
        return time.monotonic() - started

    def _get(self, page: str) -> dict | None:
        return worker_page(self.web_port, page)

    def health(self) -> dict | None:
        """The /health report, or None while it does not answer."""
        return self._get("health") if self.running else None

    def counters(self) -> dict | None:
        return self._get("counters") if self.running else None

    def owned(self) -> set[int]:
        report = self.health()
        return set(report.get("partitions", [])) if report else set()

    def log_tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return f"(no log at {self.log})"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def group_stable(workers: list[WorkerProcess], partitions: int) -> bool:
    """Every partition owned by exactly one running worker, and every running worker owns some
    and is healthy."""
    running = [w for w in workers if w.running]
    owned = [w.owned() for w in running]
    every = [p for o in owned for p in o]
    return (bool(running) and all(owned) and sorted(every) == list(range(partitions))
            and all((w.health() or {}).get("state") == "ok" for w in running))


def wait_until(check: Callable[[], object], timeout_s: float, what: str,
               interval_s: float = 0.5, failed: Callable[[], str | None] | None = None) -> object:
    """Poll ``check`` until truthy; ``failed`` may end the wait early with its reason."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        reason = failed() if failed is not None else None
        if reason:
            raise RuntimeError(f"{what}: {reason}")
        if time.monotonic() >= deadline:
            raise RuntimeError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(interval_s)


def exited(workers: Iterable[WorkerProcess]) -> str | None:
    """A reason to stop waiting: a worker meant to run has exited."""
    for worker in workers:
        if worker.meant_to_run and not worker.running:
            code = worker.proc.returncode if worker.proc is not None else None
            return f"{worker.name} exited with {code}:\n{worker.log_tail()}"
    return None
