"""Reading back what a scenario's ledger turned into: the delivery topics, the DLQ topics, the
PostgreSQL tables of the pipeline's database schema, and the provider stub's requests. Only what
came after the scenario's mark, and only the ledger's users."""

from __future__ import annotations

import json
import threading
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field

import psycopg
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from psycopg import sql

from chaos.ledger import Ledger
from chaos.pipeline import ChaosPipeline
from chaos.verdict import GATEWAY_CHANNELS, Observed, Seen
from streams.contracts.pipeline_codec import pipeline_codec
from streams.contracts.topics import SINK_FAMILIES
from streams.core.model import Delivery


@dataclass
class Mark:
    """Where the scenario began: topic end offsets; and the stub's requests of the ledger's users
    since then, collected as the run goes (the stub keeps a bounded number of requests)."""

    offsets: dict[str, dict[int, int]]
    stub_seq: int
    gateway: list[Seen] = field(default_factory=list)
    attempts: int = 0


class Observer:
    def __init__(self, pipeline: ChaosPipeline) -> None:
        self.pipeline = pipeline
        topics = pipeline.topics
        self.delivery_topics = list(topics.all_deliveries().values())
        self.dlq_topics = [topics.dlq, *(topics.sink_dlq(f) for f in SINK_FAMILIES)]
        self.codec = pipeline_codec(SchemaRegistryClient({"url": pipeline.stack.registry_url,
                                                          "timeout": 10}), topics)
        self._collecting = threading.Lock()

    def mark(self) -> Mark:
        with self.pipeline.offsets() as reader:
            offsets = {t: reader.end_offsets(t) for t in self.delivery_topics + self.dlq_topics}
        return Mark(offsets, self._stub_last_seq())

    def read(self, ledger: Ledger, mark: Mark) -> Observed:
        topics, dead = self._read_topics(ledger, mark)
        self.collect_gateway(ledger, mark)
        return Observed(topics=topics, delivery_log=self._read_table(ledger, "delivery_log"),
                        inbox=self._read_table(ledger, "inbox"), gateway=list(mark.gateway),
                        gateway_attempts=mark.attempts, dead_letters=dead)

    def tap_gateway(self, ledger: Ledger, mark: Mark, every_s: float = 5.0) -> threading.Event:
        """Collect the stub's requests every ``every_s`` in a thread, before the stub's bounded
        record lets go of them; set the returned event to stop."""
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(every_s):
                self.collect_gateway(ledger, mark)

        threading.Thread(target=run, name="chaos-gateway-tap", daemon=True).start()
        return stop

    # -- Kafka ---------------------------------------------------------------------------------
    def _read_topics(self, ledger: Ledger, mark: Mark) -> tuple[list[Seen], dict[str, int]]:
        """Deliveries of the ledger's users, and the records of every DLQ, from the mark up to
        the ends as they are now."""
        consumer = Consumer({**self.pipeline.admin_config,
                             "group.id": f"chaos-reader-{uuid.uuid4().hex[:8]}",
                             "enable.auto.commit": False})
        reader = self.pipeline.offsets()
        try:
            seen: list[Seen] = []
            dead: dict[str, int] = {}
            for topic in self.delivery_topics + self.dlq_topics:
                ends = reader.end_offsets(topic)
                starts = mark.offsets.get(topic, {})
                wanted = {p: (starts.get(p, 0), end) for p, end in ends.items() if end > starts.get(p, 0)}
                if topic in self.dlq_topics:
                    dead[topic] = sum(end - start for start, end in wanted.values())
                    continue
                for message in _read_range(consumer, topic, wanted):
                    delivery = Delivery.from_avro(self.codec.decode(message.value())[1])
                    if ledger.owns(delivery.user_id):
                        # One user is one partition of a channel's topic: the offset orders them.
                        seen.append(Seen(delivery.delivery_id, delivery.user_id, delivery.channel.key,
                                         tuple(delivery.event_ids), message.offset(),
                                         delivery.kind.value, delivery.body))
            return seen, dead
        finally:
            consumer.close()
            reader.close()

    # -- PostgreSQL ------------------------------------------------------------------------------
    def _read_table(self, ledger: Ledger, table: str) -> list[Seen]:
        channel = sql.SQL("channel") if table == "delivery_log" else sql.SQL("'IN_APP'")
        query = sql.SQL("SELECT delivery_id, user_id, {}, event_ids FROM {}.{} "
                        "WHERE user_id LIKE %s").format(channel, sql.Identifier(self.pipeline.db_schema),
                                                        sql.Identifier(table))
        with psycopg.connect(self.pipeline.stack.postgres_dsn, autocommit=True) as conn:
            rows = conn.execute(query, (ledger.user_prefix + "%",)).fetchall()
        return [Seen(delivery_id, user, ch.lower(), tuple(event_ids))
                for delivery_id, user, ch, event_ids in rows]

    # -- the gateway (the provider stub) -------------------------------------------------------------
    def _requests(self, **query: str) -> list[dict]:
        url = f"{self.pipeline.stack.stub_url}/requests?{urllib.parse.urlencode(query)}"
        with urllib.request.urlopen(url, timeout=120) as answer:
            return json.load(answer)["requests"]

    def _stub_last_seq(self) -> int:
        last = self._requests(limit="1")
        return last[0]["seq"] if last else 0

    def collect_gateway(self, ledger: Ledger, mark: Mark) -> None:
        """Add the requests recorded since the last collection to ``mark``; fails if the stub
        let some go first (its record is bounded: --max-requests)."""
        with self._collecting:
            requests = self._requests(since=str(mark.stub_seq))
            if requests and requests[0]["seq"] != mark.stub_seq + 1:
                raise RuntimeError(
                    f"the provider stub no longer has requests {mark.stub_seq + 1}.."
                    f"{requests[0]['seq'] - 1}: it keeps a bounded number (--max-requests); "
                    "lower the rate or collect more often")
            for request in requests:
                mark.stub_seq = request["seq"]
                body = request.get("body")
                if (request["channel"] not in GATEWAY_CHANNELS or not isinstance(body, dict)
                        or not ledger.owns(str(body.get("user_id", "")))):
                    continue
                mark.attempts += 1
                if request["outcome"] == "accepted":
                    key = request["headers"].get("Idempotency-Key", "")
                    mark.gateway.append(Seen(key, body["user_id"], request["channel"],
                                             tuple(body.get("event_ids", ())), request["seq"]))


def _read_range(consumer: Consumer, topic: str, ranges: dict[int, tuple[int, int]]):
    """Messages of ``topic`` in [start, end) per partition."""
    if not ranges:
        return
    consumer.assign([TopicPartition(topic, p, start) for p, (start, _) in ranges.items()])
    left = {p: end for p, (_, end) in ranges.items()}
    idle = 0
    while left and idle < 40:  # 40 empty polls of 0.5 s: the data is gone (retention), stop
        message = consumer.poll(0.5)
        if message is None or message.error() is not None:
            idle += 1
            continue
        idle = 0
        partition = message.partition()
        if partition in left and message.offset() < left[partition]:
            yield message
            if message.offset() + 1 >= left[partition]:
                del left[partition]
    consumer.unassign()
