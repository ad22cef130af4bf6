"""The inbox API on the real stack: a service process reading and marking the real PostgreSQL
inbox. Rows are inserted as the JDBC sink writes them (the sink's own path is tested in
test_inbox_live.py and test_sinks.py); here their times are chosen, to pin down the order."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from inbox.api import MAX_LIMIT
from inbox.cursor import Cursor
from stack.settings import StackSettings
from tests.integration.inbox_harness import InboxInstance, Secrets
from tests.integration.pipeline import PipelineEnv

RUN = uuid.uuid4().hex[:8]
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def secrets(tmp_path_factory: pytest.TempPathFactory) -> Secrets:
    return Secrets.make(tmp_path_factory.mktemp("inbox-secrets"))


@pytest.fixture(scope="module")
def service(pipeline_env: PipelineEnv, secrets: Secrets, tmp_path_factory: pytest.TempPathFactory):
    instance = InboxInstance(pipeline_env, secrets, tmp_path_factory.mktemp("inbox-logs")).start()
    yield instance
    instance.stop()


@pytest.fixture
def user(pg: psycopg.Connection):
    name = f"api-{RUN}-{uuid.uuid4().hex[:6]}"
    yield name
    pg.execute("DELETE FROM inbox WHERE user_id = %s", (name,))


def add_rows(pg: psycopg.Connection, user: str, rows: list[tuple[str, datetime]]) -> None:
    """Rows as the inbox sink writes them (its columns only)."""
    with pg.cursor() as cur:
        cur.executemany(
            "INSERT INTO inbox (delivery_id, user_id, kind, category, priority, title, body, item_count,"
            " event_ids, digest_key, reason, created_at, first_occurred_at) VALUES "
            "(%s, %s, 'SINGLE', 'billing', 'NORMAL', %s, 'body', 1, %s, NULL, 'immediate', %s, %s)",
            [(f"{user}:{i}", user, f"title {i}", [f"e-{i}"], at, at) for i, at in rows])


def newest_first(rows: list[tuple[str, datetime]], user: str) -> list[str]:
    return [f"{user}:{i}" for i, _ in sorted(rows, key=lambda r: (r[1], f"{user}:{r[0]}"), reverse=True)]


def all_pages(service: InboxInstance, user: str, token: str, limit: int, shelf: str = "inbox") -> list[str]:
    ids, cursor = [], None
    for _ in range(100):
        query = f"?limit={limit}&shelf={shelf}" + (f"&cursor={cursor}" if cursor else "")
        answer = service.call("GET", f"/v1/users/{user}/notifications{query}", token)
        assert answer.status == 200, answer.body
        ids += [item["delivery_id"] for item in answer.body["items"]]
        cursor = answer.body["next_cursor"]
        if cursor is None:
            return ids
    raise AssertionError("pagination did not end")


def test_pages_are_newest_first_with_a_stable_cursor(service: InboxInstance, secrets: Secrets, pg,
                                                     user) -> None:
    # 23 rows; three share one instant (the tie is broken by delivery_id), two share another.
    rows = [(i, T0 + timedelta(seconds=i)) for i in range(18)]
    rows += [(i, T0 + timedelta(seconds=5)) for i in (18, 19, 20)] + [(i, T0) for i in (21, 22)]
    add_rows(pg, user, rows)
    token = secrets.token(user)
    expected = newest_first(rows, user)
    for limit in (1, 4, 10, MAX_LIMIT):
        assert all_pages(service, user, token, limit) == expected, limit

    # Rows arriving while a client pages (newer ones, and an older one) do not move the pages
    # after its cursor: nothing is skipped or repeated, unlike with OFFSET.
    first = service.call("GET", f"/v1/users/{user}/notifications?limit=5", token).body
    assert [i["delivery_id"] for i in first["items"]] == expected[:5]
    assert first["feed_after"] == first["items"][0]["cursor"]
    add_rows(pg, user, [(100, T0 + timedelta(hours=1)), (101, T0 + timedelta(hours=2))])
    rest = service.call("GET", f"/v1/users/{user}/notifications?limit=50&cursor={first['next_cursor']}",
                        token).body
    assert [i["delivery_id"] for i in rest["items"]] == expected[5:] and rest["next_cursor"] is None
    assert "feed_after" not in rest
    item = first["items"][0]
    assert item["created_at"] == "2025-03-01T12:00:17.000Z" and item["read"] is False
    assert Cursor.decode(item["cursor"]) == Cursor.of(T0 + timedelta(seconds=17), item["delivery_id"])


def test_unread_count_marks_and_archive(service: InboxInstance, secrets: Secrets, pg, user) -> None:
    rows = [(i, T0 + timedelta(minutes=i)) for i in range(6)]
    add_rows(pg, user, rows)
    token = secrets.token(user)
    base = f"/v1/users/{user}"

    def unread() -> int:
        answer = service.call("GET", f"{base}/unread-count", token)
        assert answer.status == 200
        return answer.body["unread"]

    assert unread() == 6
    marked = service.call("PATCH", f"{base}/notifications/{user}:0", token, {"read": True})
    assert marked.status == 200 and marked.body["read"] is True and marked.body["unread"] == 5
    first_read_at = marked.body["read_at"]
    again = service.call("PATCH", f"{base}/notifications/{user}:0", token, {"read": True})
    assert again.body["read_at"] == first_read_at  # marking twice keeps the first time
    assert service.call("PATCH", f"{base}/notifications/{user}:0", token, {"read": False}).body["unread"] == 6

    archived = service.call("PATCH", f"{base}/notifications/{user}:5", token, {"archived": True})
    assert archived.body["archived"] is True and archived.body["unread"] == 5
    assert f"{user}:5" not in all_pages(service, user, token, 10)
    assert all_pages(service, user, token, 10, "archived") == [f"{user}:5"]
    assert len(all_pages(service, user, token, 10, "all")) == 6
    one = service.call("GET", f"{base}/notifications/{user}:5", token)
    assert one.status == 200 and one.body["archived_at"] is not None

    # Mark all read up to what the user has seen (the 3rd newest of the inbox): newer stay unread.
    page = service.call("GET", f"{base}/notifications?limit=3", token).body
    done = service.call("POST", f"{base}/notifications/mark-all", token,
                        {"read": True, "until": page["items"][2]["cursor"]})
    assert done.status == 200 and (done.body["updated"], done.body["unread"]) == (3, 2)
    done = service.call("POST", f"{base}/notifications/mark-all", token, {"read": True})
    assert (done.body["updated"], done.body["unread"]) == (2, 0)
    unread_rows = pg.execute("SELECT delivery_id FROM inbox WHERE user_id = %s AND read_at IS NULL",
                             (user,)).fetchall()
    assert unread_rows == [(f"{user}:5",)]  # the archived one is left as it was
    done = service.call("POST", f"{base}/notifications/mark-all", token, {"read": False})
    assert (done.body["updated"], done.body["unread"]) == (5, 5)
    restored = service.call("PATCH", f"{base}/notifications/{user}:5", token, {"archived": False})
    assert restored.body["archived_at"] is None and restored.body["unread"] == 6


def test_bad_requests_name_what_is_wrong(service: InboxInstance, secrets: Secrets, pg, user) -> None:
    add_rows(pg, user, [(0, T0)])
    token = secrets.token(user)
    base = f"/v1/users/{user}"
    for path, problem in ((f"{base}/notifications?cursor=nope", "cursor"),
                          (f"{base}/notifications?limit=0", "limit"),
                          (f"{base}/notifications?limit={MAX_LIMIT + 1}", "limit"),
                          (f"{base}/notifications?shelf=bin", "shelf")):
        answer = service.call("GET", path, token)
        assert answer.status == 400 and problem in answer.body["error"], (path, answer.body)
    for body, problem in (({}, "read and/or archived"), ({"read": "yes"}, "true or false"),
                          ({"read": True, "pinned": True}, "unknown fields")):
        answer = service.call("PATCH", f"{base}/notifications/{user}:0", token, body)
        assert answer.status == 400 and problem in answer.body["error"], body
    answer = service.call("PATCH", f"{base}/notifications/{user}:0", token, raw=b"[not json")
    assert answer.status == 400
    answer = service.call("POST", f"{base}/notifications/mark-all", token, {"read": True, "until": 5})
    assert answer.status == 400 and "until" in answer.body["error"]
    answer = service.call("PATCH", f"{base}/notifications/missing", token, {"read": True})
    assert answer.status == 404


def test_a_bad_or_expired_token_is_401_and_another_users_is_403(service: InboxInstance, secrets: Secrets,
                                                                pg, user, tmp_path) -> None:
    add_rows(pg, user, [(0, T0)])
    base = f"/v1/users/{user}"
    other = Secrets.make(tmp_path)
    refused = {
        "none": None,
        "garbage": "not.a.token",
        "expired": secrets.token(user, ttl_s=60, now_s=int(datetime.now(UTC).timestamp()) - 3600),
        "another secret": other.token(user),
    }
    requests = [("GET", f"{base}/notifications", None), ("GET", f"{base}/unread-count", None),
                ("GET", f"{base}/notifications/{user}:0", None),
                ("PATCH", f"{base}/notifications/{user}:0", {"read": True}),
                ("POST", f"{base}/notifications/mark-all", {"read": True})]
    for what, token in refused.items():
        for method, path, body in requests:
            answer = service.call(method, path, token, body)
            assert answer.status == 401, (what, method, path, answer.body)
            assert answer.headers.get("WWW-Authenticate", "").startswith("Bearer")
        assert service.feed(user, token).status == 401, what
    intruder = secrets.token(f"{user}-other")
    for method, path, body in requests:
        assert service.call(method, path, intruder, body).status == 403, (method, path)
    assert service.feed(user, intruder).status == 403
    # Nothing was marked by any of them.
    assert pg.execute("SELECT read_at FROM inbox WHERE user_id = %s", (user,)).fetchone() == (None,)


def test_a_token_from_the_cli_opens_the_users_inbox(service: InboxInstance, secrets: Secrets, pg,
                                                    user) -> None:
    add_rows(pg, user, [(0, T0)])
    result = subprocess.run(
        [sys.executable, "-m", "streams.cli", "inbox", "token", "--user", user, "--ttl", "120"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "NOTIPIPE_INBOX_SECRETS_DIR": str(secrets.directory)})
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    answer = service.call("GET", f"/v1/users/{user}/unread-count", token)
    assert (answer.status, answer.body) == (200, {"unread": 1})
    missing = subprocess.run(
        [sys.executable, "-m", "streams.cli", "inbox", "token", "--user", user],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "NOTIPIPE_INBOX_SECRETS_DIR": str(secrets.directory / "nowhere")})
    assert missing.returncode == 2 and "no secret file" in missing.stderr


def test_a_role_with_select_and_update_of_the_marks_only_is_enough(
        settings: StackSettings, pipeline_env: PipelineEnv, secrets: Secrets, pg, user, tmp_path) -> None:
    """What a least-privilege role for the service needs: SELECT on inbox, UPDATE of read_at and
    archived_at. The role can change nothing else."""
    role, password = f"inbox_it_{RUN}", uuid.uuid4().hex
    pg.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    try:
        pg.execute(f"GRANT CONNECT ON DATABASE notipipe TO {role}")
        pg.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        pg.execute(f"GRANT SELECT ON inbox TO {role}")
        pg.execute(f"GRANT UPDATE (read_at, archived_at) ON inbox TO {role}")
        add_rows(pg, user, [(0, T0), (1, T0 + timedelta(seconds=1))])
        dsn = (f"host=127.0.0.1 port={settings.postgres_port} dbname=notipipe user={role} "
               f"password={password}")
        limited = InboxInstance(pipeline_env, secrets, tmp_path, dsn=dsn).start()
        try:
            token = secrets.token(user)
            base = f"/v1/users/{user}"
            assert len(all_pages(limited, user, token, 1)) == 2
            assert limited.call("PATCH", f"{base}/notifications/{user}:0", token,
                                {"read": True, "archived": True}).body["unread"] == 1
            assert limited.call("POST", f"{base}/notifications/mark-all", token,
                                {"read": True}).body == {"updated": 1, "unread": 0}
        finally:
            limited.stop()
        with psycopg.connect(dsn, autocommit=True) as conn, \
                pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE inbox SET title = 'x' WHERE user_id = %s", (user,))
    finally:
        pg.execute(f"DROP OWNED BY {role}")
        pg.execute(f"DROP ROLE {role}")
