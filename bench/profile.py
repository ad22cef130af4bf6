"""py-spy on the project's worker under load: a flame graph (SVG) and a summary of where the time goes.

py-spy samples the running process from outside (``--nonblocking``: without pausing it), so the
worker runs unchanged. Samples are on-CPU only (py-spy leaves idle threads out by default), so the
percentages are shares of the worker's busy time.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")

# Where a frame's file puts it; the first matching rule wins (order matters).
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Avro encode/decode (fastavro, avro_codec, delivery_avro)",
        ("fastavro/", "streams/contracts/avro_codec.py", "streams/contracts/delivery_avro.py"),
    ),
    (
        "routing rules (streams.core: routing, model, templates)",
        ("streams/core/", "zoneinfo", "datetime"),
    ),
    ("state JSON (table values)", ("json/",)),
    ("RocksDB store", ("rocksdict", "faust/stores/")),
    ("Faust tables/changelog", ("faust/tables/",)),
    (
        "Faust topics/producer path",
        (
            "faust/topics.py",
            "faust/transport/producer.py",
            "faust/transport/drivers/aiokafka.py",
            "faust/channels.py",
        ),
    ),
    (
        "Faust streams/consumer/acks",
        (
            "faust/streams.py",
            "faust/transport/consumer.py",
            "faust/transport/conductor.py",
            "faust/agents/",
            "faust/events.py",
        ),
    ),
    ("Faust other", ("faust/",)),
    ("aiokafka producer", ("aiokafka/producer/",)),
    ("aiokafka consumer/fetcher", ("aiokafka/consumer/",)),
    ("aiokafka other (protocol, conn)", ("aiokafka/",)),
    ("mode (Faust's service/timer framework)", ("mode/",)),
    ("asyncio event loop", ("asyncio/", "uvloop", "selectors.py")),
    ("logging", ("logging/",)),
    ("the worker's own parts (streams/worker/, streams/faust_ext/)", ("streams/",)),
)


def parse_frame(frame: str) -> tuple[str, str]:
    """'Pipeline._route (streams/app.py:171)' -> ('Pipeline._route', 'streams/app.py')."""
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip(), ""
    return m.group("func"), m.group("file")


def category(file: str) -> str:
    for name, needles in CATEGORIES:
        if any(n in file for n in needles):
            return name
    return "other (stdlib, C extensions, interpreter)"


def summarize_collapsed(lines: Iterable[str], top: int = 25) -> dict:
    """From py-spy's raw (collapsed stack) output: self time by category and by function, and
    inclusive time by function, as percentages of all samples."""
    total = 0
    self_fn: Counter = Counter()
    self_cat: Counter = Counter()
    incl_fn: Counter = Counter()
    for line in lines:
        line = line.rstrip("\n")
        if not line:
            continue
        stack, _, count_text = line.rpartition(" ")
        try:
            count = int(count_text)
        except ValueError:
            continue
        frames = [parse_frame(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        func, file = frames[-1]
        self_fn[f"{func} ({file})"] += count
        self_cat[category(file)] += count
        for key in {f"{fn} ({fl})" for fn, fl in frames}:
            incl_fn[key] += count

    def pct(counter: Counter, n: int | None) -> list[tuple[str, float]]:
        return [(k, round(100.0 * v / total, 1)) for k, v in counter.most_common(n)]

    if total == 0:
        return {"samples": 0, "self_by_category": [], "self_by_function": [], "inclusive_by_function": []}
    return {
        "samples": total,
        "self_by_category": pct(self_cat, None),
        "self_by_function": pct(self_fn, top),
        "inclusive_by_function": pct(incl_fn, top),
    }


def py_spy() -> str | None:
    found = Path(sys.executable).with_name("py-spy")
    return str(found) if found.exists() else shutil.which("py-spy")


class Profiler:
    """Two py-spy recorders on one process: raw stacks (for the summary) and an SVG flame graph."""

    def __init__(self, pid: int, out_dir: Path, rate: int = 200) -> None:
        self.pid, self.out_dir, self.rate = pid, out_dir, rate
        self.procs: list[subprocess.Popen] = []
        self.raw = out_dir / "worker-profile.txt"
        self.svg = out_dir / "worker-profile.svg"
        self.error: str | None = None

    def start(self) -> None:
        exe = py_spy()
        if exe is None:
            self.error = "py-spy is not installed (pip install '.[bench]')"
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for fmt, out in (("raw", self.raw), ("flamegraph", self.svg)):
            cmd = [
                exe,
                "record",
                "--pid",
                str(self.pid),
                "--rate",
                str(self.rate),
                "--nonblocking",
                "--format",
                fmt,
                "-o",
                str(out),
            ]
            self.procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))

    def stop(self) -> dict:
        outputs = []
        for proc in self.procs:
            proc.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        for proc in self.procs:
            try:
                out, _ = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
            outputs.append(out.decode(errors="replace")[-500:])
        if self.error or not self.raw.exists():
            return {"error": self.error or "py-spy wrote nothing: " + " | ".join(outputs)}
        summary = summarize_collapsed(self.raw.read_text().splitlines())
        summary["raw"] = str(self.raw)
        summary["svg"] = str(self.svg) if self.svg.exists() else None
        return summary
