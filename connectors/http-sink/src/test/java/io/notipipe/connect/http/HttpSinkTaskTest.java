package io.notipipe.connect.http;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Date;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Future;
import java.util.stream.Collectors;
import java.util.stream.IntStream;

import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigException;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.metrics.KafkaMetric;
import org.apache.kafka.common.metrics.Metrics;
import org.apache.kafka.common.metrics.PluginMetrics;
import org.apache.kafka.common.metrics.internals.PluginMetricsImpl;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.SchemaBuilder;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.data.Timestamp;
import org.apache.kafka.connect.errors.ConnectException;
import org.apache.kafka.connect.errors.RetriableException;
import org.apache.kafka.connect.sink.ErrantRecordReporter;
import org.apache.kafka.connect.sink.SinkRecord;
import org.apache.kafka.connect.sink.SinkTaskContext;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import com.sun.net.httpserver.HttpServer;

class HttpSinkTaskTest {

    private static final Schema ITEM = SchemaBuilder.struct().name("DigestItem")
            .field("event_id", Schema.STRING_SCHEMA)
            .field("occurred_at", Timestamp.SCHEMA)
            .build();
    private static final Schema DELIVERY = SchemaBuilder.struct().name("Delivery")
            .field("delivery_id", Schema.STRING_SCHEMA)
            .field("user_id", Schema.STRING_SCHEMA)
            .field("channel", Schema.STRING_SCHEMA)
            .field("address", Schema.OPTIONAL_STRING_SCHEMA)
            .field("event_ids", SchemaBuilder.array(Schema.STRING_SCHEMA).build())
            .field("items", SchemaBuilder.array(ITEM).build())
            .field("created_at", Timestamp.SCHEMA)
            .build();

    /** A gateway stand-in: answers each request with the next scripted status (then 200). */
    private HttpServer server;
    private final ArrayDeque<Integer> script = new ArrayDeque<>();
    private final List<Received> received = Collections.synchronizedList(new ArrayList<>());
    private HttpSinkTask task;
    private final FakeContext context = new FakeContext();

    record Received(String body, Map<String, String> headers, int status) {
    }

    @BeforeEach
    void startServer() throws IOException {
        server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        server.createContext("/send", exchange -> {
            byte[] body = exchange.getRequestBody().readAllBytes();
            int status;
            synchronized (script) {
                status = script.isEmpty() ? 200 : script.pollFirst();
            }
            Map<String, String> headers = new HashMap<>();
            exchange.getRequestHeaders().forEach((k, v) -> headers.put(k.toLowerCase(), v.get(0)));
            received.add(new Received(new String(body, StandardCharsets.UTF_8), headers, status));
            // Like some real gateways, the answer echoes the request (and so the recipient).
            byte[] answer = ("{\"status\":" + status + ",\"request\":" + new String(body, StandardCharsets.UTF_8)
                    + "}").getBytes(StandardCharsets.UTF_8);
            exchange.sendResponseHeaders(status, answer.length);
            exchange.getResponseBody().write(answer);
            exchange.close();
        });
        server.start();
    }

    @AfterEach
    void stop() {
        if (task != null) {
            task.stop();
        }
        server.stop(0);
    }

    private String url() {
        return "http://127.0.0.1:" + server.getAddress().getPort() + "/send";
    }

    private Map<String, String> props(String... extra) {
        Map<String, String> props = new HashMap<>();
        props.put("name", "test-http");
        props.put(HttpSinkConfig.URL, url());
        props.put(HttpSinkConfig.BACKOFF_INITIAL_MS, "10");
        props.put(HttpSinkConfig.BACKOFF_MAX_MS, "40");
        for (int i = 0; i < extra.length; i += 2) {
            props.put(extra[i], extra[i + 1]);
        }
        return props;
    }

    private void start(Map<String, String> props) {
        task = new HttpSinkTask();
        task.initialize(context);
        task.start(props);
    }

    private static SinkRecord record(int partition, long offset, String deliveryId, String userId) {
        return record(partition, offset, deliveryId, userId, null);
    }

    private static SinkRecord record(int partition, long offset, String deliveryId, String userId, String address) {
        Struct item = new Struct(ITEM).put("event_id", "e-" + deliveryId).put("occurred_at", new Date(1_000L));
        Struct value = new Struct(DELIVERY)
                .put("delivery_id", deliveryId)
                .put("user_id", userId)
                .put("channel", "EMAIL")
                .put("address", address)
                .put("event_ids", List.of("e-" + deliveryId))
                .put("items", List.of(item))
                .put("created_at", new Date(1_700_000_000_123L));
        return new SinkRecord("notifications.deliveries.email", partition, Schema.STRING_SCHEMA, userId,
                DELIVERY, value, offset);
    }

    private List<String> deliveredIds() {
        synchronized (received) {
            return received.stream().filter(r -> r.status() == 200)
                    .map(r -> r.headers().get("idempotency-key")).collect(Collectors.toList());
        }
    }

    @Test
    void postsEachValueAsPlainJsonWithTheIdempotencyKeyAndStaticHeaders() {
        start(props("http.header.Authorization", "Bearer t0ken", "http.header.X-Channel", "email"));
        task.put(List.of(record(0, 5, "d-1", "u-1")));

        assertEquals(1, received.size());
        Received request = received.get(0);
        assertEquals("{\"delivery_id\":\"d-1\",\"user_id\":\"u-1\",\"channel\":\"EMAIL\",\"address\":null,"
                + "\"event_ids\":[\"e-d-1\"],\"items\":[{\"event_id\":\"e-d-1\",\"occurred_at\":1000}],"
                + "\"created_at\":1700000000123}", request.body());
        assertEquals("d-1", request.headers().get("idempotency-key"));
        assertEquals("application/json", request.headers().get("content-type"));
        assertEquals("Bearer t0ken", request.headers().get("authorization"));
        assertEquals("email", request.headers().get("x-channel"));
    }

    @Test
    void sendsTheAuthorizationSettingAsIsAndNeverShowsIt() {
        HttpSinkConfig config = new HttpSinkConfig(props(HttpSinkConfig.AUTHORIZATION, "Bearer s3cr3t"));
        assertEquals("[hidden]", config.values().get(HttpSinkConfig.AUTHORIZATION).toString());
        assertFalse(config.toString().contains("s3cr3t"));
        start(props(HttpSinkConfig.AUTHORIZATION, "Bearer s3cr3t", "http.header.X-Channel", "email"));
        task.put(List.of(record(0, 0, "d-1", "u-1")));

        assertEquals("Bearer s3cr3t", received.get(0).headers().get("authorization"));
        assertEquals("email", received.get(0).headers().get("x-channel"));
    }

    @Test
    void failsTheTaskOnRefusedCredentialsWithoutDeadLetteringAndResumesAfterARestart() {
        for (int refused : new int[] {401, 403}) {
            received.clear();
            script.addAll(List.of(200, refused));
            start(props(HttpSinkConfig.AUTHORIZATION, "Bearer wrong"));
            List<SinkRecord> batch = List.of(record(0, 0, "d-1", "u"), record(0, 1, "d-2", "u"), record(0, 2, "d-3", "u"));

            ConnectException failure = assertThrows(ConnectException.class, () -> task.put(batch));
            assertFalse(failure instanceof RetriableException, "a refused credential is not retried");
            assertTrue(failure.getMessage().contains(HttpSinkConfig.AUTHORIZATION), failure.getMessage());
            assertTrue(failure.getMessage().contains("answered " + refused), failure.getMessage());
            assertTrue(failure.getMessage().contains("@1"), failure.getMessage());
            assertFalse(failure.getMessage().contains("wrong"), "the credential itself is never shown");
            assertTrue(context.reported.isEmpty(), "nothing dead-lettered");
            assertEquals(List.of("d-1"), deliveredIds());
            // The framework fails the task without committing the batch; a restarted task gets it
            // again from the committed offset and the gateway drops the repeat by its key.
            task.stop();
            start(props(HttpSinkConfig.AUTHORIZATION, "Bearer fixed"));
            task.put(batch);
            assertEquals(List.of("d-1", "d-1", "d-2", "d-3"), deliveredIds());
            assertEquals("Bearer fixed", received.get(received.size() - 1).headers().get("authorization"));
        }
    }

    @Test
    void aRefusalWithoutAnyAuthorizationSaysSo() {
        script.add(401);
        start(props());
        ConnectException failure = assertThrows(ConnectException.class, () -> task.put(List.of(record(0, 0, "d", "u"))));
        assertTrue(failure.getMessage().contains("no " + HttpSinkConfig.AUTHORIZATION + " is set"), failure.getMessage());
    }

    @Test
    void neverCopiesTheGatewaysAnswerIntoErrors() {
        script.add(422);
        start(props());
        task.put(List.of(record(0, 0, "d-bad", "u", "alice@example.com")));

        assertTrue(received.get(0).body().contains("alice@example.com"));
        String message = context.reported.get(0).error().getMessage();
        assertTrue(message.contains("answered 422"), message);
        assertFalse(message.contains("alice@example.com"), message);
    }

    @Test
    void describesTheGatewayWithoutUserInfoOrQuery() {
        HttpGateway gateway = new HttpGateway(java.net.URI.create("https://user:pw@gw.example:8443/v1/send?key=k3y"),
                java.time.Duration.ofSeconds(1), java.time.Duration.ofSeconds(1), Map.of());
        assertEquals("POST https://gw.example:8443/v1/send?...", gateway.describe());
    }

    @Test
    void keepsOrderPerPartitionAcrossManyPartitions() {
        start(props());
        List<SinkRecord> batch = new ArrayList<>();
        for (int offset = 0; offset < 20; offset++) {
            for (int partition = 0; partition < 4; partition++) {
                batch.add(record(partition, offset, "p" + partition + "-" + offset, "u" + partition));
            }
        }
        task.put(batch);

        assertEquals(80, deliveredIds().size());
        for (int partition = 0; partition < 4; partition++) {
            String prefix = "p" + partition + "-";
            List<String> seen = deliveredIds().stream().filter(id -> id.startsWith(prefix)).collect(Collectors.toList());
            List<String> expected = IntStream.range(0, 20).mapToObj(o -> prefix + o).collect(Collectors.toList());
            assertEquals(expected, seen);
        }
    }

    @Test
    void retriesServerErrorsInOrderThenDelivers() {
        script.addAll(List.of(503, 500, 429));
        start(props());
        task.put(List.of(record(0, 0, "d-a", "u"), record(0, 1, "d-b", "u")));

        List<String> attempts = received.stream().map(r -> r.headers().get("idempotency-key") + ":" + r.status())
                .collect(Collectors.toList());
        assertEquals(List.of("d-a:503", "d-a:500", "d-a:429", "d-a:200", "d-b:200"), attempts);
        assertTrue(context.reported.isEmpty());
    }

    @Test
    void sendsPermanentRejectsToTheDeadLetterQueueAndGoesOn() {
        script.add(400);
        start(props());
        task.put(List.of(record(0, 0, "d-bad", "u"), record(0, 1, "d-good", "u")));

        assertEquals(List.of("d-good"), deliveredIds());
        assertEquals(1, context.reported.size());
        assertEquals(0L, context.reported.get(0).record().kafkaOffset());
        DeliveryFailedException error = assertInstanceOf(DeliveryFailedException.class, context.reported.get(0).error());
        assertEquals(400, error.status());
        assertTrue(error.getMessage().contains("answered 400"), error.getMessage());
        assertTrue(error.getMessage().contains("permanent"), error.getMessage());
    }

    @Test
    void countsTheGatewaysAnswersByOutcome() {
        Metrics registry = new Metrics();
        context.pluginMetrics = new PluginMetricsImpl(registry, Map.of("connector", "test-http", "task", "0"));
        script.addAll(List.of(503, 200, 400));
        start(props());
        task.put(List.of(record(0, 0, "d-a", "u"), record(0, 1, "d-b", "u"), record(0, 2, "d-c", "u")));

        Map<String, Double> counts = new HashMap<>();
        for (Map.Entry<MetricName, KafkaMetric> metric : registry.metrics().entrySet()) {
            MetricName name = metric.getKey();
            if (name.group().equals("plugins") && name.name().equals(GatewayMetrics.NAME)) {
                assertEquals("test-http", name.tags().get("connector"));
                counts.put(name.tags().get("outcome"), (Double) metric.getValue().metricValue());
            }
        }
        // d-a: 503 then 200; d-b: 400 (to the DLQ); d-c: 200.
        assertEquals(Map.of("delivered", 2.0, "retried", 1.0, "rejected", 1.0), counts);
        task.stop();
        task = null;
        assertTrue(registry.metrics().keySet().stream().noneMatch(n -> n.name().equals(GatewayMetrics.NAME)));
        registry.close();
    }

    @Test
    void failsTheTaskRatherThanDropWhenNoDeadLetterQueueIsConfigured() {
        script.add(422);
        context.reporter = null;
        start(props());
        ConnectException failure = assertThrows(ConnectException.class,
                () -> task.put(List.of(record(0, 0, "d-bad", "u"))));
        assertTrue(failure.getMessage().contains("no dead-letter queue"), failure.getMessage());
    }

    @Test
    void givesUpAfterTheRetryBudgetAndDeadLettersTheRecord() {
        for (int i = 0; i < 1000; i++) {
            script.add(503);
        }
        start(props(HttpSinkConfig.RETRY_MAX_DURATION_MS, "150"));
        task.put(List.of(record(0, 0, "d-x", "u")));

        assertEquals(1, context.reported.size());
        String message = context.reported.get(0).error().getMessage();
        assertTrue(message.contains("giving up") && message.contains("503"), message);
        assertTrue(received.size() >= 3, "retried a few times: " + received.size());
    }

    @Test
    void redeliveredBatchSkipsHandledRecords() {
        script.addAll(List.of(200, 503));
        long[] now = {0};
        task = new HttpSinkTask(() -> now[0], c -> new HttpGateway(c.url(), c.connectTimeout(), c.requestTimeout(),
                c.staticHeaders()));
        task.initialize(context);
        task.start(props(HttpSinkConfig.BACKOFF_INITIAL_MS, "5000", HttpSinkConfig.BACKOFF_MAX_MS, "5000",
                HttpSinkConfig.PUT_MAX_DURATION_MS, "1000"));
        List<SinkRecord> batch = List.of(record(0, 0, "d-1", "u"), record(0, 1, "d-2", "u"), record(0, 2, "d-3", "u"));

        RetriableException retry = assertThrows(RetriableException.class, () -> task.put(batch));
        assertTrue(retry.getMessage().contains("503"), retry.getMessage());
        assertTrue(context.timeoutMs >= 2500 && context.timeoutMs <= 5000, "timeout " + context.timeoutMs);
        assertEquals(List.of("d-1"), deliveredIds());
        // Redelivered too early: nothing is sent, the framework is asked to wait the rest.
        now[0] = 1000;
        assertThrows(RetriableException.class, () -> task.put(batch));
        assertEquals(2, received.size());
        // After the backoff the same batch goes through, and d-1 is not sent a second time.
        now[0] = 10_000;
        task.put(batch);
        assertEquals(List.of("d-1", "d-2", "d-3"), deliveredIds());
        assertEquals(4, received.size());
    }

    @Test
    void retriesConnectionErrors() throws IOException {
        int closedPort;
        try (ServerSocket socket = new ServerSocket(0)) {
            closedPort = socket.getLocalPort();
        }
        start(props(HttpSinkConfig.URL, "http://127.0.0.1:" + closedPort + "/send",
                HttpSinkConfig.RETRY_MAX_DURATION_MS, "100"));
        task.put(List.of(record(0, 0, "d-1", "u")));
        assertEquals(1, context.reported.size());
        assertTrue(context.reported.get(0).error().getMessage().contains("ConnectException"),
                context.reported.get(0).error().getMessage());
    }

    @Test
    void deadLettersTombstones() {
        start(props());
        task.put(List.of(new SinkRecord("t", 0, Schema.STRING_SCHEMA, "u", null, null, 3)));
        assertEquals(0, received.size());
        assertEquals(1, context.reported.size());
        assertTrue(context.reported.get(0).error().getMessage().contains("tombstone"));
    }

    @Test
    void rejectsBadConfigs() {
        assertThrows(ConfigException.class, () -> new HttpSinkConfig(Map.of(HttpSinkConfig.URL, "ftp://x/y")));
        assertThrows(ConfigException.class, () -> new HttpSinkConfig(Map.of(HttpSinkConfig.URL, "/relative")));
        assertThrows(ConfigException.class, () -> new HttpSinkConfig(Map.of(HttpSinkConfig.URL, "http://h/",
                "http.header.Content-Type", "text/plain")));
        assertThrows(ConfigException.class, () -> new HttpSinkConfig(Map.of(HttpSinkConfig.URL, "http://h/",
                "http.header.Bad Name", "x")));
        assertThrows(ConfigException.class, () -> new HttpSinkConfig(Map.of(HttpSinkConfig.URL, "http://h/",
                HttpSinkConfig.BACKOFF_INITIAL_MS, "20000")));
        assertThrows(ConfigException.class, () -> new HttpSinkConfig(Map.of(HttpSinkConfig.URL, "http://h/",
                HttpSinkConfig.AUTHORIZATION, "Bearer a", "http.header.Authorization", "Bearer b")));
        ConfigException multiline = assertThrows(ConfigException.class, () -> new HttpSinkConfig(Map.of(
                HttpSinkConfig.URL, "http://h/", HttpSinkConfig.AUTHORIZATION, "Bearer a\r\nX-Evil: 1")));
        assertFalse(multiline.getMessage().contains("Bearer a"), multiline.getMessage());
        HttpSinkConfig ok = new HttpSinkConfig(Map.of(HttpSinkConfig.URL, "https://gw.example/send",
                "http.header.X-Api-Key", "k"));
        assertEquals(Map.of("X-Api-Key", "k"), ok.staticHeaders());
    }

    @Test
    void backoffGrowsWithJitterAndHonoursRetryAfter() {
        Backoff low = new Backoff(100, 1000, bound -> 0);
        Backoff high = new Backoff(100, 1000, bound -> bound - 1);
        assertEquals(50, low.delayMs(1, 0));
        assertEquals(100, high.delayMs(1, 0));
        assertEquals(200, low.delayMs(3, 0));
        assertEquals(400, high.delayMs(3, 0));
        assertEquals(1000, high.delayMs(40, 0));
        assertEquals(700, low.delayMs(1, 700));
        assertEquals(1000, low.delayMs(1, 60_000));
        assertEquals(Outcome.Kind.RETRIABLE, Outcome.classify(408));
        assertEquals(Outcome.Kind.PERMANENT, Outcome.classify(404));
        assertEquals(Outcome.Kind.PERMANENT, Outcome.classify(301));
        assertEquals(Outcome.Kind.DELIVERED, Outcome.classify(204));
        assertEquals(Outcome.Kind.UNAUTHORIZED, Outcome.classify(401));
        assertEquals(Outcome.Kind.UNAUTHORIZED, Outcome.classify(403));
    }

    record Report(SinkRecord record, Throwable error) {
    }

    private static final class FakeContext implements SinkTaskContext {
        final List<Report> reported = Collections.synchronizedList(new ArrayList<>());
        ErrantRecordReporter reporter = this::report;
        PluginMetrics pluginMetrics;
        long timeoutMs = -1;

        private Future<Void> report(SinkRecord record, Throwable error) {
            reported.add(new Report(record, error));
            return CompletableFuture.completedFuture(null);
        }

        @Override
        public Map<String, String> configs() {
            return Map.of();
        }

        @Override
        public void offset(Map<TopicPartition, Long> offsets) {
        }

        @Override
        public void offset(TopicPartition tp, long offset) {
        }

        @Override
        public void timeout(long timeoutMs) {
            this.timeoutMs = timeoutMs;
        }

        @Override
        public Set<TopicPartition> assignment() {
            return Set.of();
        }

        @Override
        public void pause(TopicPartition... partitions) {
        }

        @Override
        public void resume(TopicPartition... partitions) {
        }

        @Override
        public void requestCommit() {
        }

        @Override
        public ErrantRecordReporter errantRecordReporter() {
            return reporter;
        }

        @Override
        public PluginMetrics pluginMetrics() {
            return pluginMetrics;
        }
    }
}
