"""Restart sink tasks that failed for a passing reason: the database or the network was away.

Kafka Connect never restarts a failed task by itself. The Debezium JDBC sink fails its task when
PostgreSQL goes away under it: a statement in flight when the server shuts down, a pooled
connection found closed, and its reads of the table's metadata are not retried at all. Once the
database is back, a restarted task resumes from its last committed offsets and re-writes what
was not committed (upserts: nothing doubles). So the watchdog checks the connectors every few
seconds and restarts a task whose failure trace says the connection was lost, with a backoff per
task (2 s doubling to 60 s) so a database that stays away is not hammered. Any other failure (a
missing column, a rejected record without a DLQ) is a human's to fix and is left as it is, for
`notipipe connectors status` to show.

Run it with `notipipe connectors watch` (`notipipe stack up` starts one, as the component
`connect-watchdog`); on Kubernetes, Strimzi's connector auto-restart plays this part.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("notipipe.connect_watchdog")

# A failure trace with one of these went wrong on the way to the database or the gateway, not
# because of a record: PostgreSQL's JDBC driver (SQLState 08xxx, 57P01/57P02/57P03 shutdown and
# "cannot connect now"), c3p0 with no connection to hand out, and the JVM's sockets.
TRANSIENT_MARKERS = (
    "terminating connection due to administrator command",
    "the database system is shutting down",
    "the database system is starting up",
    "This connection has been closed",
    "refused. Check that the hostname and port are correct",
    "Connection refused",
    "Connections could not be acquired",
    "An attempt by a client to checkout a Connection has timed out",
    "An I/O error occurred while sending to the backend",
    "org.hibernate.exception.JDBCConnectionException",
    "java.net.SocketException",
    "java.net.ConnectException",
    "java.io.EOFException",
)
FIRST_BACKOFF_S = 2.0
MAX_BACKOFF_S = 60.0


def transient(trace: str | None) -> bool:
    return bool(trace) and any(marker in trace for marker in TRANSIENT_MARKERS)


@dataclass
class Watchdog:
    """Which failed tasks to restart now. ``status()`` is `connector_status`; ``restart(name)``
    restarts a connector's failed tasks; ``clock`` is injectable for tests."""

    status: Callable[[], list[dict[str, Any]]]
    restart: Callable[[str], Any]
    clock: Callable[[], float] = time.monotonic
    # (connector, task id) -> (restarts so far, not before)
    _backoff: dict[tuple[str, int], tuple[int, float]] = field(default_factory=dict)

    def check(self) -> list[str]:
        """Restart what is due; returns what was restarted (for the log and tests)."""
        now = self.clock()
        restarted: list[str] = []
        failing: set[tuple[str, int]] = set()
        for connector in self.status():
            name = connector["name"]
            due = []
            for task in connector["tasks"]:
                key = (name, task["id"])
                if task["state"] != "FAILED":
                    continue
                failing.add(key)
                if not transient(task.get("trace")):
                    continue
                count, not_before = self._backoff.get(key, (0, 0.0))
                if now >= not_before:
                    due.append(task["id"])
                    delay = min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** count)
                    self._backoff[key] = (count + 1, now + delay)
            if due:
                self.restart(name)
                restarted += [f"{name} task {task_id}" for task_id in due]
        # A task running again starts from the first backoff next time it fails.
        for key in set(self._backoff) - failing:
            del self._backoff[key]
        return restarted


def watch(settings: Any, interval_s: float = 5.0, echo: Callable[[str], None] = print) -> None:
    """Check every ``interval_s`` until interrupted; Connect being away is waited out."""
    import urllib.error

    from stack.connectors_setup import ConnectorError, connector_status, restart_connector

    watchdog = Watchdog(lambda: connector_status(settings),
                        lambda name: restart_connector(settings, name, only_failed=True))
    echo(f"watching the connectors at {settings.connect_url} every {interval_s:g}s")
    while True:
        try:
            for what in watchdog.check():
                echo(f"restarted {what}: it had failed on a lost connection")
        except (ConnectorError, urllib.error.URLError, OSError) as exc:
            echo(f"Kafka Connect not reachable ({exc}); trying again")
        time.sleep(interval_s)
