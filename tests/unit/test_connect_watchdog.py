"""The Connect watchdog (stack/connect_watchdog.py) restarts tasks that failed on a lost
connection, backing off, and leaves every other failure for a person to see."""

from __future__ import annotations

from stack.connect_watchdog import Watchdog, transient

LOST = ("org.apache.kafka.connect.errors.ConnectException: JDBC sink connector failure\n"
        "Caused by: org.postgresql.util.PSQLException: FATAL: terminating connection due to "
        "administrator command")
MISSING_COLUMN = ("org.apache.kafka.connect.errors.ConnectException: JDBC sink connector failure\n"
                  "Caused by: org.postgresql.util.PSQLException: ERROR: column \"reason\" of "
                  "relation \"inbox\" does not exist")


def test_a_lost_connection_is_transient_a_bad_table_is_not() -> None:
    assert transient(LOST)
    assert transient("PSQLException: Connection to db.internal:5432 refused. Check that the "
                     "hostname and port are correct and that the postmaster is accepting")
    assert not transient(MISSING_COLUMN)
    assert not transient(None) and not transient("")


class Connect:
    def __init__(self) -> None:
        self.tasks = {("jdbc-inbox", 0): ("FAILED", LOST), ("http-sms", 0): ("FAILED", MISSING_COLUMN),
                      ("jdbc-log", 0): ("RUNNING", None)}
        self.restarts: list[str] = []
        self.now = 0.0

    def status(self) -> list[dict]:
        by_connector: dict[str, list[dict]] = {}
        for (name, task_id), (state, trace) in self.tasks.items():
            by_connector.setdefault(name, []).append({"id": task_id, "state": state, "trace": trace})
        return [{"name": n, "state": "RUNNING", "trace": None, "tasks": t}
                for n, t in by_connector.items()]

    def restart(self, name: str) -> None:
        self.restarts.append(name)


def test_transient_failures_are_restarted_with_a_growing_backoff() -> None:
    connect = Connect()
    watchdog = Watchdog(connect.status, connect.restart, clock=lambda: connect.now)
    assert watchdog.check() == ["jdbc-inbox task 0"]  # not the other failure
    connect.now = 1.0
    assert watchdog.check() == []  # 2 s backoff
    connect.now = 2.0
    assert watchdog.check() == ["jdbc-inbox task 0"]
    connect.now = 5.9
    assert watchdog.check() == []  # then 4 s
    connect.now = 6.0
    assert watchdog.check() == ["jdbc-inbox task 0"]
    assert connect.restarts == ["jdbc-inbox"] * 3


def test_a_task_running_again_starts_over_from_the_first_backoff() -> None:
    connect = Connect()
    watchdog = Watchdog(connect.status, connect.restart, clock=lambda: connect.now)
    for now in (0.0, 2.0, 6.0):
        connect.now = now
        watchdog.check()
    connect.tasks[("jdbc-inbox", 0)] = ("RUNNING", None)
    connect.now = 7.0
    assert watchdog.check() == []
    connect.tasks[("jdbc-inbox", 0)] = ("FAILED", LOST)
    assert watchdog.check() == ["jdbc-inbox task 0"]  # at once, not after 8 s
