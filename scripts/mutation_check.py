#!/usr/bin/env python3
"""Does the unit suite notice when a behaviour the worker relies on is removed?

Each mutant below removes one behaviour, mostly one of the worker's overrides of faust-streaming,
aiokafka or mode internals: in a fresh copy of the repository (the files git tracks, plus new
ones it does not ignore) one exact snippet of a file is replaced, and the unit tests that must
notice are run there with the repository's own virtualenv. A mutant whose tests still pass
SURVIVED: that behaviour has no test. A snippet that is not found exactly once makes the list
stale, which is an error too (tests/unit/test_mutation_check.py checks that on every unit run).

Usage:
    .venv/bin/python scripts/mutation_check.py            # every mutant; exits 1 unless all caught
    .venv/bin/python scripts/mutation_check.py NAME ...   # only these
    .venv/bin/python scripts/mutation_check.py --list | --validate
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str  # relative to the repository root
    original: str  # must occur exactly once in the file
    replacement: str  # the same code without the behaviour
    tests: str  # the pytest selection that must fail (paths relative to the root, space-separated)


U = "tests/unit/"
WIRING = U + "test_worker_wiring.py"

# The table. Paths and snippets follow the code: when a module moves, update its rows.
MUTANTS: list[Mutant] = [
    Mutant("rebalance hold: stream records pass during a rebalance",
           "streams/faust_ext/consumer.py",
           "        if rebalancing or self._held_back:\n            self._held_back = True\n"
           "            return False\n",
           "",
           U + "test_lean_consumer.py"),
    Mutant("rebalance hold: no seek back to the committed offsets after it",
           "streams/faust_ext/consumer.py",
           "            if hold.seek_due(app.rebalancing):\n                await self.perform_seek()\n",
           "            hold.seek_due(app.rebalancing)\n",
           U + "test_lean_consumer.py"),
    Mutant("lean consumer: gaps not counted as acked (_add_gap)",
           "streams/faust_ext/consumer.py",
           "                    await self._add_gap(tp, last + 1, offset)\n",
           "                    pass\n",
           U + "test_lean_consumer.py"),
    Mutant("lean consumer: records read before delivered again",
           "streams/faust_ext/consumer.py",
           "                    continue  # read before (a seek went back): the stream has it already\n",
           "                    pass\n",
           U + "test_lean_consumer.py"),
    Mutant("lean consumer: no commit every broker_commit_every acks",
           "streams/faust_ext/consumer.py",
           "                    self._n_acked = 0\n                    await self.commit()\n",
           "                    self._n_acked = 0\n",
           U + "test_lean_consumer.py"),
    Mutant("lean consumer: a flow suspension cannot interrupt a delivery",
           "streams/faust_ext/consumer.py",
           "                if flow_control.is_active() and not suspend_flow.is_set():\n",
           "                if True:\n",
           U + "test_lean_consumer.py"),
    Mutant("lean consumer: no turn of the event loop within a large fetch",
           "streams/faust_ext/consumer.py",
           "                    since_yield = 0\n                    await asyncio.sleep(0)\n",
           "                    since_yield = 0\n",
           U + "test_lean_consumer.py"),
    Mutant("lean consumer: a turn of the event loop per record",
           "streams/faust_ext/consumer.py",
           "                if since_yield > self.yield_every:\n",
           "                if True:\n",
           U + "test_lean_consumer.py"),
    Mutant("lean consumer: shutting down raises ConsumerStoppedError",
           "streams/faust_ext/consumer.py",
           "            if self.app.should_stop:  # the worker is shutting down: not an error\n",
           "            if False:\n",
           U + "test_lean_consumer.py"),
    Mutant("lean consumer: a consumer stopped under a running worker goes unnoticed",
           "streams/faust_ext/consumer.py",
           "                return\n            raise\n",
           "                return\n            return\n",
           U + "test_lean_consumer.py"),
    Mutant("commit hook: Faust's commit does not wait for the delivery producer",
           "streams/faust_ext/commit_hook.py",
           "        await flush_first()\n",
           "",
           U + "test_delivery_producer.py"),
    Mutant("commit hook: the worker's flush started but not awaited before the commit",
           "streams/faust_ext/commit_hook.py",
           "        await flush_first()\n",
           "        __import__('asyncio').ensure_future(flush_first())\n",
           U + "test_delivery_producer.py"),
    Mutant("commit hook: after-flush hooks (changelog offsets) not run",
           "streams/worker/delivery_producer.py",
           "        for hook in self._after_flush:\n            hook()\n",
           "",
           U + "test_delivery_producer.py"),
    Mutant("fresh partition seek: never-committed partitions stay where fetches left them",
           "streams/faust_ext/partition_seek.py",
           "        if uncommitted:\n",
           "        if False:\n",
           U + "test_fresh_partition_seek.py"),
    Mutant("fresh partition seek: changelogs moved to their beginning too",
           "streams/faust_ext/partition_seek.py",
           "if not offset and tp.topic in topics]",
           "if not offset]",
           U + "test_fresh_partition_seek.py"),
    Mutant("changelog table: offsets not persisted after a flush (persist_offsets)",
           "streams/faust_ext/changelog_table.py",
           "            self.data.set_persisted_offset(TP(topic, partition), offset)\n",
           "            pass\n",
           U + "test_changelog_table.py"),
    Mutant("changelog table: persist_offsets not hooked to the producer's flush",
           "streams/faust_ext/changelog_table.py",
           "        producer.after_flush(self.persist_offsets)\n",
           "",
           U + "test_changelog_table.py"),
    Mutant("changelog table: changelog records sent through Faust's producer",
           "streams/faust_ext/changelog_table.py",
           "        if self._producer is None:\n            return super().send_changelog(",
           "        if True:\n            return super().send_changelog(",
           U + "test_changelog_table.py"),
    Mutant("changelog table: changelog writes that are not raw accepted",
           "streams/faust_ext/changelog_table.py",
           "        if partition is None or not isinstance(key, bytes) or not isinstance(value, bytes"
           " | None):\n",
           "        if False:\n",
           U + "test_changelog_table.py"),
    Mutant("changelog table: the send's result lacks the partition Faust reads",
           "streams/faust_ext/changelog_table.py",
           "        return _Sent(_SentMessage(partition))\n",
           "        return None\n",
           U + "test_changelog_table.py"),
    Mutant("rocksdb memory: the budget accepted after the store opened",
           "streams/faust_ext/rocksdb_memory.py",
           "        if self._data is not None:\n",
           "        if False:\n",
           U + "test_rocksdb_memory.py"),
    Mutant("rocksdb memory: stores open without the shared budget (options_for)",
           "streams/faust_ext/rocksdb_memory.py",
           "            store.rocksdb_options = self._rocksdb_memory.options_for(store.rocksdb_options)\n",
           "            pass\n",
           U + "test_rocksdb_memory.py"),
    Mutant("rocksdb memory: get_raw reads nothing",
           "streams/faust_ext/rocksdb_memory.py",
           "        return self.data._db_for_partition(partition).get(key)\n",
           "        return None\n",
           U + "test_changelog_table.py"),
    Mutant("rocksdb memory: databases written with the write-ahead log",
           "streams/faust_ext/rocksdb_memory.py",
           "        writes.disable_wal = True\n",
           "        writes.disable_wal = False\n",
           U + "test_rocksdb_memory.py"),
    Mutant("rocksdb memory: each database its own block cache",
           "streams/faust_ext/rocksdb_memory.py",
           "        table.set_block_cache(self._memory.cache)\n",
           "",
           U + "test_rocksdb_memory.py"),
    Mutant("rocksdb memory: memtables outside the budget",
           "streams/faust_ext/rocksdb_memory.py",
           "        options.set_write_buffer_manager(self._memory.write_buffers)\n",
           "",
           U + "test_rocksdb_memory.py"),
    Mutant("take_queued: takes past the batch limit",
           "streams/faust_ext/queued_events.py",
           "    while len(batch) < limit and not queue.empty():\n",
           "    while not queue.empty():\n",
           U + "test_queued_events.py"),
    Mutant("take_queued: events fetched before a rebalance taken",
           "streams/faust_ext/queued_events.py",
           "        if skip_all or message.generation_id != generation:\n",
           "        if skip_all:\n",
           U + "test_queued_events.py"),
    Mutant("take_queued: events taken while the flow is suspended",
           "streams/faust_ext/queued_events.py",
           "        if skip_all or message.generation_id != generation:\n",
           "        if message.generation_id != generation:\n",
           U + "test_queued_events.py"),
    Mutant("take_queued: taken events not tracked (track_message)",
           "streams/faust_ext/queued_events.py",
           "            consumer.track_message(message)\n",
           "",
           U + "test_queued_events.py"),
    Mutant("take_queued: events of topics without acks tracked",
           "streams/faust_ext/queued_events.py",
           "        if message.topic in acking_topics and not message.tracked:\n",
           "        if not message.tracked:\n",
           U + "test_queued_events.py"),
    Mutant("RawSchema: keys and values sent with the app's serializers",
           "streams/faust_ext/raw_schema.py",
           "        super().__init__(key_serializer=RAW, value_serializer=RAW)\n",
           "        super().__init__()\n",
           U + "test_raw_schema.py"),
    Mutant("RawSchema: events built without the record's headers",
           "streams/faust_ext/raw_schema.py",
           "event_class(app, message.key, message.value, message.headers, message)",
           "event_class(app, message.key, message.value, [], message)",
           U + "test_raw_schema.py"),
    Mutant("fetch tuning: aiokafka keeps its own fetch sizes (_FetchTunedThread)",
           "streams/faust_ext/consumer.py",
           "        consumer._fetch_min_bytes = self.consumer.fetch_min_bytes\n",
           "",
           U + "test_fetch_tuning.py"),
    Mutant("internals: a worker starts on a framework version it was not written for",
           "streams/faust_ext/internals.py",
           "    if problems:\n        raise IncompatibleFramework(",
           "    if False:\n        raise IncompatibleFramework(",
           U + "test_faust_internals.py"),
    Mutant("current event: table writes go to the stream's partition, not the router's",
           "streams/faust_ext/current_event.py",
           "    _current_event.set(weakref.ref(event))\n",
           "    pass\n",
           U + "test_pipeline_partitions.py"),
    Mutant("router: a batch routed with the stream's current event (its first partition)",
           "streams/worker/event_router.py",
           "        current_event.point_at(events[-1])\n",
           "",
           U + "test_pipeline_partitions.py"),
    Mutant("router: the caller's current event not restored after parked events",
           "streams/worker/event_router.py",
           "        with current_event.kept():",
           "        with __import__('contextlib').nullcontext():",
           U + "test_pipeline_partitions.py"),
    Mutant("receipts: a flushing user's receipts joined while its digests travel",
           "streams/worker/receipt_router.py",
           "                if not router.parking.flushing_any(users):\n",
           "                if True:\n",
           U + "test_receipt_router.py"),
    Mutant("receipts: the receipts' replay not reported to the flushes' gate",
           "streams/worker/receipt_router.py",
           "        self.gate.routed(partition, events[-1].message.offset + 1)\n",
           "",
           U + "test_receipt_router.py"),
    Mutant("store: users with nothing but pending fallbacks left out of the rebuilt due index",
           "streams/worker/user_store.py",
           'if value.get("holds") or value.get("fallbacks"):',
           'if value.get("holds"):',
           U + "test_receipt_router.py"),
    Mutant("app: Faust's commits not hooked to the delivery producer",
           "streams/worker/app.py",
           "        flush_before_commits(app.producer,",
           "        (lambda *args: None)(app.producer,",
           WIRING),
    Mutant("app: the users changelog through Faust's producer",
           "streams/worker/app.py",
           "        self.users.use_producer(deliveries)\n",
           "",
           WIRING),
    Mutant("app: the worker's tables outside the shared RocksDB budget",
           "streams/worker/app.py",
           "            each.use_memory(self.rocksdb_memory)\n",
           "            pass\n",
           WIRING),
    Mutant("app: Faust's own consumer and producer",
           "streams/worker/app.py",
           "        use_worker_transport(app, settings.fetch_min_bytes, settings.fetch_max_wait_ms)\n",
           "",
           WIRING),
    Mutant("transport: Faust's own producer (not idempotent outside transactions)",
           "streams/faust_ext/transport.py",
           "    app.transport.Producer = IdempotentProducer\n",
           "",
           WIRING),
    Mutant("producer: Faust's producer without acks=all and idempotence",
           "streams/faust_ext/producer.py",
           '        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}\n',
           "        return super()._settings_extra()\n",
           WIRING),
    Mutant("transport: the lean consumer class not installed",
           "streams/faust_ext/transport.py",
           "    app.transport.Consumer = LeanDrainConsumer.with_fetch(fetch_min_bytes, fetch_max_wait_ms)\n",
           "    pass\n",
           WIRING),
    Mutant("bounded stop: a stopping worker waits for every taken event",
           "streams/faust_ext/bounded_stop.py",
           "            if time.monotonic() >= deadline:\n",
           "            if False:\n",
           U + "test_bounded_stop.py"),
    Mutant("bounded stop: the wait of a rebalance bounded too",
           "streams/faust_ext/bounded_stop.py",
           "        if not self.app.should_stop:\n",
           "        if False:\n",
           U + "test_bounded_stop.py"),
    Mutant("bounded stop: the safe offsets not committed once the bound is reached",
           "streams/faust_ext/bounded_stop.py",
           "        await self.commit_and_end_transactions()\n",
           "",
           U + "test_bounded_stop.py"),
    Mutant("app: a stopping worker's wait unbounded",
           "streams/worker/app.py",
           "        bound_stop_wait(app, settings.stop_wait_s)\n",
           "",
           WIRING),
    Mutant("app: never-committed partitions not sought to their beginning",
           "streams/worker/app.py",
           "        seek_uncommitted_to_beginning(app.consumer,",
           "        (lambda *args: None)(app.consumer,",
           WIRING),
]


def check_snippets(root: Path, mutants: list[Mutant]) -> list[str]:
    """What is stale in the list: snippets not found exactly once, test files that are gone."""
    problems = []
    for mutant in mutants:
        path = root / mutant.path
        if not path.is_file():
            problems.append(f"{mutant.name}: {mutant.path} does not exist")
            continue
        count = path.read_text().count(mutant.original)
        if count != 1:
            problems.append(f"{mutant.name}: its snippet occurs {count} times in {mutant.path}, "
                            "not once: update the mutant to the code")
        if mutant.replacement == mutant.original:
            problems.append(f"{mutant.name}: the replacement changes nothing")
        for selection in mutant.tests.split():
            if not (root / selection.split("::")[0]).exists():
                problems.append(f"{mutant.name}: test selection {selection} does not exist")
    names = [m.name for m in mutants]
    problems += [f"two mutants are named {name!r}" for name in set(names) if names.count(name) > 1]
    return problems


def repository_files(root: Path) -> list[str]:
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=root, capture_output=True, text=True, check=True).stdout
    return [name for name in listed.split("\0") if name and (root / name).is_file()]


def copy_repository(root: Path, files: list[str], target: Path) -> None:
    for name in files:
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, destination)


def apply(copy: Path, mutant: Mutant) -> None:
    path = copy / mutant.path
    text = path.read_text()
    count = text.count(mutant.original)
    if count != 1:
        raise SystemExit(f"stale mutant {mutant.name!r}: snippet found {count} times in {mutant.path}")
    path.write_text(text.replace(mutant.original, mutant.replacement))


def run_tests(python: str, copy: Path, selection: list[str], timeout_s: float) -> tuple[int, str]:
    """pytest's exit code (-1 if it timed out) and the tail of its output."""
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        result = subprocess.run([python, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                                 *selection], cwd=copy, env=env, capture_output=True, text=True,
                                timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {timeout_s:.0f}s"
    return result.returncode, "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])


def imports_from(python: str, copy: Path) -> str:
    """Where the copy's ``streams`` package is imported from (it must be the copy's own)."""
    env = {**os.environ, "PYTHONPATH": str(copy)}
    return subprocess.run([python, "-c", "import streams; print(streams.__file__)"], cwd=copy,
                          env=env, capture_output=True, text=True, check=True).stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Remove, one at a time, behaviours the worker relies on (the MUTANTS table in "
                    "this script) from copies of the repository and check that the unit tests "
                    "notice. Exits 1 if a mutant survived or the table is stale.")
    parser.add_argument("names", nargs="*", help="run only the mutants with these names")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--validate", action="store_true",
                        help="only check that every snippet occurs exactly once")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds one mutant's tests may take (default: %(default)s)")
    args = parser.parse_args(argv)

    mutants = MUTANTS
    if args.names:
        unknown = set(args.names) - {m.name for m in MUTANTS}
        if unknown:
            parser.error(f"no mutants named {sorted(unknown)}; see --list")
        mutants = [m for m in MUTANTS if m.name in args.names]
    if args.list:
        for mutant in mutants:
            print(f"{mutant.name}\n    {mutant.path} -> {mutant.tests}")
        return 0
    problems = check_snippets(ROOT, mutants)
    if problems:
        print("the mutant list is stale:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    if args.validate:
        print(f"{len(mutants)} mutants, every snippet found once")
        return 0

    venv_python = ROOT / ".venv" / "bin" / "python"
    python = str(venv_python) if venv_python.exists() else sys.executable
    files = repository_files(ROOT)
    started = time.monotonic()
    selections = sorted({s for m in mutants for s in m.tests.split()})
    with tempfile.TemporaryDirectory(prefix="notipipe-mutant-") as temp:
        pristine = Path(temp)
        copy_repository(ROOT, files, pristine)
        where = imports_from(python, pristine)
        if not where.startswith(str(pristine)):
            print(f"the copy imports streams from {where}, not from itself", file=sys.stderr)
            return 1
        code, output = run_tests(python, pristine, selections, args.timeout)
        if code != 0:
            print(f"the selected tests fail without any mutant:\n{output}", file=sys.stderr)
            return 1
    print(f"baseline: the selected tests pass unmutated ({time.monotonic() - started:.0f}s)")

    outcomes: dict[str, list[str]] = {"caught": [], "SURVIVED": [], "ERROR": []}
    for mutant in mutants:
        mutant_started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="notipipe-mutant-") as temp:
            copy = Path(temp)
            copy_repository(ROOT, files, copy)
            apply(copy, mutant)
            code, output = run_tests(python, copy, mutant.tests.split(), args.timeout)
        # 1: tests failed (caught); 0: all passed (survived); other codes: collection errors,
        # no tests, timeouts, which say nothing about the behaviour.
        outcome = {1: "caught", 0: "SURVIVED"}.get(code, "ERROR")
        outcomes[outcome].append(mutant.name)
        print(f"{outcome:8} {time.monotonic() - mutant_started:5.1f}s  {mutant.name}", flush=True)
        if outcome == "ERROR":
            print("    " + output.replace("\n", "\n    "))
    total = time.monotonic() - started
    print(f"\n{len(outcomes['caught'])} of {len(mutants)} mutants caught, "
          f"{len(outcomes['SURVIVED'])} survived, {len(outcomes['ERROR'])} errors; "
          f"wall time {total:.0f}s")
    return 0 if len(outcomes["caught"]) == len(mutants) else 1


if __name__ == "__main__":
    sys.exit(main())
