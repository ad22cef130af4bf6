"""The systems under test, each started as its own OS processes on its own topic prefix.

| name | what | process |
|---|---|---|
| `notipipe` | the project's worker | `python -m streams.cli worker` (= `notipipe worker`) |
| `confluent-loop` | plain consume → decode → rocksdict → produce loop | `-m bench.peers.confluent_loop` |
| `quix` | the same rules on Quix Streams | `<quix venv>/bin/python -m bench.peers.quix_app` |
| `naive-faust` | a straightforward per-event Faust agent | `-m bench.peers.naive_faust` |
| `notipipe-fallback` | the worker with fallback chains (`--fallback`) | as `notipipe`, + chains |

All of them read the same NOTIPIPE_* variables (topic prefix, group/app id, data dir, web port,
router settings), so they get the same workload and the same rules.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from stack.kafka_access import stack_access
from stack.settings import PROJECT_ROOT, StackSettings

QUIX_VENV = PROJECT_ROOT / ".cache" / "bench" / "quix-venv"
QUIX_REQUIREMENTS = PROJECT_ROOT / "bench" / "peers" / "quix-requirements.txt"
CLOCK_TICK = os.sysconf("SC_CLK_TCK")


# The categories of the workload with a chain, 40 % of its events (workload.py); five seconds,
# so the deliveries without a receipt fall back within a run.
BENCH_FALLBACKS = "security=push>sms>email/5,message=push>email/5,billing=email>sms/5,order=push>email/5"


@dataclass(frozen=True)
class System:
    name: str
    label: str
    module: str
    quix: bool = False
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()  # settings of its own, over the run's router settings

    def command(self) -> list[str]:
        python = str(QUIX_VENV / "bin" / "python") if self.quix else sys.executable
        return [python, "-m", self.module, *self.args]


SYSTEMS: dict[str, System] = {
    "notipipe": System("notipipe", "notipipe worker (Faust)", "streams.cli", args=("worker",)),
    "notipipe-fallback": System("notipipe-fallback", "notipipe worker (Faust) + fallback", "streams.cli",
                                args=("worker",), env=(("NOTIPIPE_FALLBACKS", BENCH_FALLBACKS),)),
    "confluent-loop": System("confluent-loop", "plain confluent-kafka loop", "bench.peers.confluent_loop"),
    "quix": System("quix", "Quix Streams", "bench.peers.quix_app", quix=True),
    "naive-faust": System("naive-faust", "naive Faust agent", "bench.peers.naive_faust"),
}


def ensure_quix_venv(echo=print) -> Path:
    """Quix Streams pins confluent-kafka below the version this project uses, so it cannot share
    the project's environment: it gets a venv of its own under .cache/bench (created once)."""
    python = QUIX_VENV / "bin" / "python"
    marker = QUIX_VENV / ".requirements"
    wanted = QUIX_REQUIREMENTS.read_text()
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    echo(f"creating the Quix Streams environment in {QUIX_VENV} (once; needs the package index)")
    subprocess.run([sys.executable, "-m", "venv", str(QUIX_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(QUIX_REQUIREMENTS)], check=True)
    marker.write_text(wanted)
    return python


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICK
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0.0


def proc_rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def proc_disk_write_bytes(pid: int) -> int:
    """Bytes a process (all its threads) has caused to be written to storage so far: RocksDB's
    log, flushes and compactions for the workers. 0 if the kernel does not say."""
    try:
        with open(f"/proc/{pid}/io") as f:
            return parse_write_bytes(f.read())
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0


def parse_write_bytes(proc_io: str) -> int:
    for line in proc_io.splitlines():
        name, _, value = line.partition(":")
        if name == "write_bytes":
            return int(value)
    return 0


def machine_cpu_s() -> float:
    """CPU seconds spent by the whole machine (all cores, not idle)."""
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    values = [int(v) for v in parts]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / CLOCK_TICK


class Running:
    """The processes of one system under test."""

    def __init__(
        self,
        system: System,
        stack: StackSettings,
        prefix: str,
        workers: int,
        data_dir: Path,
        log_dir: Path,
        router_env: dict[str, str],
        base_port: int,
    ) -> None:
        self.system = system
        self.prefix = prefix
        self.group = f"{prefix}{system.name}"  # consumer group / Faust app id
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []
        log_dir.mkdir(parents=True, exist_ok=True)
        for i in range(workers):
            port = base_port + i
            env = {
                **os.environ,
                **stack_access(stack, "admin").environ(),  # the benchmark's login (kafka_io.py)
                "NOTIPIPE_BOOTSTRAP_SERVERS": stack.bootstrap_servers,
                "NOTIPIPE_REGISTRY_URL": stack.registry_url,
                "NOTIPIPE_TOPIC_PREFIX": prefix,
                "NOTIPIPE_APP_ID": self.group,
                "NOTIPIPE_WEB_PORT": str(port),
                "NOTIPIPE_DATA_DIR": str(data_dir / f"w{i}"),
                "NOTIPIPE_LOG_LEVEL": "info",
                "PYTHONPATH": str(PROJECT_ROOT),
                **router_env,
                **dict(system.env),
            }
            cmd = system.command()
            log = log_dir / f"{system.name}-{workers}w-{i}.log"
            self.logs.append(log)
            with log.open("ab") as out:
                self.procs.append(
                    subprocess.Popen(
                        cmd,
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        cwd=PROJECT_ROOT,
                        start_new_session=True,
                    )
                )

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def cpu_s(self) -> float:
        return sum(proc_cpu_s(pid) for pid in self.pids)

    def disk_write_bytes(self) -> int:
        return sum(proc_disk_write_bytes(pid) for pid in self.pids)

    def rss_mb(self) -> list[float]:
        return [round(proc_rss_mb(pid), 1) for pid in self.pids]

    def log_tail(self, lines: int = 30) -> str:
        out = []
        for log in self.logs:
            text = log.read_text(errors="replace").splitlines() if log.exists() else []
            out.append(f"--- {log.name}\n" + "\n".join(text[-lines:]))
        return "\n".join(out)

    def stop(self, timeout_s: float = 30) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
