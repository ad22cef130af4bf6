package io.notipipe.connect.http;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Deque;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;
import java.util.function.LongSupplier;

import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.connect.errors.ConnectException;
import org.apache.kafka.connect.errors.DataException;
import org.apache.kafka.connect.errors.RetriableException;
import org.apache.kafka.connect.sink.ErrantRecordReporter;
import org.apache.kafka.connect.sink.SinkRecord;
import org.apache.kafka.connect.sink.SinkTask;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Sends each record of a batch to the gateway: partitions in parallel, records of one partition
 * strictly one after the other.
 *
 * <p>Offsets: {@link #put} returns only once every record of the batch was answered 2xx by the
 * gateway or was handed to the dead-letter queue (and the DLQ write was acknowledged). Otherwise
 * it throws {@link RetriableException}; the Connect framework then neither advances nor commits
 * the batch's offsets, pauses consumption and hands the same batch to {@code put} again after
 * {@code context.timeout}. Records already handled in an earlier attempt are skipped, so the
 * committed offsets (the framework's, from the default {@link #preCommit}) only ever cover records
 * that reached the gateway or the DLQ. After a crash, records between the last commit and the
 * crash are sent again; the {@code Idempotency-Key} header lets the provider drop the repeats.
 */
public class HttpSinkTask extends SinkTask {

    private static final Logger LOG = LoggerFactory.getLogger(HttpSinkTask.class);
    private static final long DLQ_WRITE_TIMEOUT_MS = 60_000;

    private final LongSupplier clock;
    private final Function<HttpSinkConfig, Gateway> gatewayFactory;

    private HttpSinkConfig config;
    private Gateway gateway;
    private RecordRenderer renderer;
    private Backoff backoff;
    private ExecutorService pool;
    private ErrantRecordReporter reporter;
    private GatewayMetrics gatewayMetrics = GatewayMetrics.of(null);
    private final Object reporterLock = new Object();

    /** Per partition: the next offset to send; everything below got a 2xx or went to the DLQ. */
    private final Map<TopicPartition, Long> handledUpTo = new ConcurrentHashMap<>();
    /** Per partition: the record being retried (its partition waits behind it). */
    private final Map<TopicPartition, RetryState> retrying = new ConcurrentHashMap<>();

    public HttpSinkTask() {
        this(System::currentTimeMillis, c -> new HttpGateway(c.url(), c.connectTimeout(), c.requestTimeout(),
                c.requestHeaders()));
    }

    HttpSinkTask(LongSupplier clock, Function<HttpSinkConfig, Gateway> gatewayFactory) {
        this.clock = clock;
        this.gatewayFactory = gatewayFactory;
    }

    @Override
    public String version() {
        return Version.get();
    }

    @Override
    public void start(Map<String, String> props) {
        config = new HttpSinkConfig(props);
        gateway = gatewayFactory.apply(config);
        renderer = new RecordRenderer(config.keyField());
        backoff = new Backoff(config.backoffInitial().toMillis(), config.backoffMax().toMillis(),
                bound -> ThreadLocalRandom.current().nextLong(bound));
        pool = Executors.newFixedThreadPool(config.maxConcurrency(), daemonThreads(props.get("name")));
        try {
            reporter = context.errantRecordReporter();
        } catch (NoSuchMethodError | NoClassDefFoundError oldWorker) {
            reporter = null;
        }
        try {
            gatewayMetrics = GatewayMetrics.of(context.pluginMetrics());
        } catch (NoSuchMethodError | NoClassDefFoundError oldWorker) {
            gatewayMetrics = GatewayMetrics.of(null);
        }
        if (reporter == null) {
            LOG.warn("No dead-letter queue configured (errors.tolerance=all and "
                    + "errors.deadletterqueue.topic.name): a record {} refuses for good will fail this task.",
                    gateway.describe());
        }
        LOG.info("HTTP sink task started: {}, idempotency key from field '{}' in header {}, retries up to {} ms",
                gateway.describe(), config.keyField(), config.keyHeader(), config.retryMaxDuration().toMillis());
    }

    @Override
    public void put(Collection<SinkRecord> records) {
        Map<TopicPartition, Deque<SinkRecord>> remaining = new LinkedHashMap<>();
        for (SinkRecord record : records) {
            TopicPartition tp = partitionOf(record);
            Long next = handledUpTo.get(tp);
            if (next != null && RecordRenderer.originalOffset(record) < next) {
                continue; // handled in an earlier attempt of this same batch
            }
            remaining.computeIfAbsent(tp, k -> new ArrayDeque<>()).add(record);
        }
        long deadline = clock.getAsLong() + config.putMaxDuration().toMillis();
        while (!remaining.isEmpty()) {
            Map<TopicPartition, Long> notBefore = sendRound(remaining, deadline);
            remaining.keySet().retainAll(notBefore.keySet());
            if (remaining.isEmpty()) {
                return;
            }
            long now = clock.getAsLong();
            long earliest = notBefore.values().stream().mapToLong(Long::longValue).min().orElse(now);
            long wait = Math.max(0, earliest - now);
            if (now + wait >= deadline) {
                // Hand control back to the framework (it keeps polling, so the group stays alive)
                // and get this batch again after the wait. Offsets of the batch are not committed.
                context.timeout(Math.max(1, wait));
                throw new RetriableException(String.format(
                        "%d partition(s) have records not delivered yet (%s); the batch comes again in %d ms",
                        remaining.size(), describeRetries(remaining.keySet()), wait));
            }
            sleep(wait);
        }
    }

    private String describeRetries(Collection<TopicPartition> partitions) {
        List<String> parts = new ArrayList<>();
        for (TopicPartition tp : partitions) {
            RetryState retry = retrying.get(tp);
            parts.add(retry == null ? tp + ": put time budget used up"
                    : tp + "@" + retry.offset + " attempt " + retry.attempts + ": " + retry.lastDetail);
        }
        return String.join("; ", parts);
    }

    private void sleep(long ms) {
        if (ms <= 0) {
            return;
        }
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new RetriableException("interrupted while backing off", e);
        }
    }

    /**
     * One round over all partitions with records left. Returns, for each partition that still has
     * records, the time (clock ms) from which it can go on: the end of its backoff, or the time
     * the put budget ran out before its next record.
     */
    private Map<TopicPartition, Long> sendRound(Map<TopicPartition, Deque<SinkRecord>> remaining, long deadline) {
        Map<TopicPartition, Long> notBefore = new LinkedHashMap<>();
        if (remaining.size() == 1) {
            Map.Entry<TopicPartition, Deque<SinkRecord>> only = remaining.entrySet().iterator().next();
            Long from;
            try {
                from = drain(only.getKey(), only.getValue(), deadline);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new RetriableException("interrupted while sending", e);
            }
            if (from != null) {
                notBefore.put(only.getKey(), from);
            }
            return notBefore;
        }
        List<TopicPartition> order = new ArrayList<>(remaining.keySet());
        List<Callable<Long>> jobs = new ArrayList<>();
        for (TopicPartition tp : order) {
            Deque<SinkRecord> queue = remaining.get(tp);
            jobs.add(() -> drain(tp, queue, deadline));
        }
        List<Future<Long>> results;
        try {
            results = pool.invokeAll(jobs);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new RetriableException("interrupted while sending", e);
        }
        ConnectException failure = null;
        for (int i = 0; i < order.size(); i++) {
            try {
                Long from = results.get(i).get();
                if (from != null) {
                    notBefore.put(order.get(i), from);
                }
            } catch (ExecutionException e) {
                Throwable cause = e.getCause();
                if (cause instanceof InterruptedException) {
                    // A sender thread was interrupted (shutting down): the batch stays uncommitted.
                    throw new RetriableException("interrupted while sending", cause);
                }
                if (failure == null) {
                    failure = cause instanceof ConnectException ce ? ce
                            : new ConnectException("sending to " + gateway.describe() + " failed", cause);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new RetriableException("interrupted while sending", e);
            }
        }
        if (failure != null) {
            throw failure;
        }
        return notBefore;
    }

    /**
     * Send the partition's records in order until done (returns null), or until one must wait for
     * a retry (returns when, in clock ms) or the put budget is used up (returns now).
     */
    private Long drain(TopicPartition tp, Deque<SinkRecord> queue, long deadline) throws InterruptedException {
        while (!queue.isEmpty()) {
            SinkRecord record = queue.peekFirst();
            long offset = RecordRenderer.originalOffset(record);
            RetryState retry = retrying.get(tp);
            if (retry != null && retry.offset != offset) {
                retrying.remove(tp); // left over from before a rewind; start afresh
                retry = null;
            }
            long now = clock.getAsLong();
            if (retry != null && now < retry.nextAttemptAt) {
                return retry.nextAttemptAt;
            }
            if (now >= deadline) {
                return now;
            }
            Outcome outcome = attempt(record);
            gatewayMetrics.record(outcome);
            now = clock.getAsLong();
            switch (outcome.kind()) {
                case DELIVERED:
                    if (retry != null) {
                        LOG.info("{} delivered to {} after {} failed attempts", position(record),
                                gateway.describe(), retry.attempts);
                    }
                    break;
                case UNAUTHORIZED:
                    throw refusedCredentials(record, outcome);
                case PERMANENT:
                    deadLetter(record, new DeliveryFailedException(gateway.describe() + " " + outcome.detail()
                            + " (permanent failure, not retried)", outcome.status()));
                    break;
                default: // RETRIABLE
                    if (retry == null) {
                        retry = new RetryState(offset, now);
                        retrying.put(tp, retry);
                    }
                    retry.attempts++;
                    retry.lastDetail = outcome.detail();
                    long budgetLeft = retry.firstFailureAt + config.retryMaxDuration().toMillis() - now;
                    if (budgetLeft <= 0) {
                        deadLetter(record, new DeliveryFailedException(String.format(
                                "%s failed %d times over %d ms, giving up (retry.max.duration.ms=%d); last: %s",
                                gateway.describe(), retry.attempts, now - retry.firstFailureAt,
                                config.retryMaxDuration().toMillis(), outcome.detail()), outcome.status()));
                        break;
                    }
                    long delay = Math.min(backoff.delayMs(retry.attempts, outcome.retryAfterMs()), budgetLeft);
                    retry.nextAttemptAt = now + delay;
                    LOG.warn("{} attempt {} to {} failed ({}); retrying in {} ms", position(record), retry.attempts,
                            gateway.describe(), outcome.detail(), delay);
                    return retry.nextAttemptAt;
            }
            retrying.remove(tp);
            handledUpTo.put(tp, offset + 1);
            queue.pollFirst();
        }
        return null;
    }

    /**
     * A 401 or 403: the gateway refuses the connector, not the record, so every record would fail
     * alike. The task fails (nothing dead-lettered, this batch's offsets not committed) with a message
     * naming the setting; once the secret is fixed, a restart of the connector reads it again (config
     * providers are resolved when a task starts) and resumes from the last committed offset.
     */
    private ConnectException refusedCredentials(SinkRecord record, Outcome outcome) {
        String given = config.authorization().isPresent()
                ? "the credential in " + HttpSinkConfig.AUTHORIZATION
                : "no " + HttpSinkConfig.AUTHORIZATION + " is set";
        return new ConnectException(String.format(
                "%s %s: the gateway refused the connector's credentials (%s). Nothing was dead-lettered; "
                        + "fix %s (e.g. the token in the file its config provider reads) and restart the "
                        + "connector: it resumes from its last committed offset (stopped at %s)",
                gateway.describe(), outcome.detail(), given, HttpSinkConfig.AUTHORIZATION, position(record)));
    }

    private Outcome attempt(SinkRecord record) throws InterruptedException {
        if (record.value() == null) {
            return Outcome.permanent(0, "not sent: the record has no value (a tombstone)");
        }
        byte[] body;
        try {
            body = renderer.body(record);
        } catch (DataException e) {
            return Outcome.permanent(0, "not sent: the value cannot be written as JSON: " + e.getMessage());
        }
        return gateway.post(body, Map.of(config.keyHeader(), renderer.idempotencyKey(record)));
    }

    /** Hand a record to Connect's dead-letter queue and wait until it is written, or fail the task. */
    private void deadLetter(SinkRecord record, DeliveryFailedException error) {
        if (reporter == null) {
            throw new ConnectException(position(record) + " cannot be delivered and no dead-letter queue is "
                    + "configured (errors.tolerance=all, errors.deadletterqueue.topic.name), so the task stops "
                    + "rather than drop it: " + error.getMessage(), error);
        }
        Future<Void> written;
        synchronized (reporterLock) {
            written = reporter.report(record, error); // throws when errors.tolerance=none
        }
        try {
            written.get(DLQ_WRITE_TIMEOUT_MS, TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new ConnectException("interrupted while writing " + position(record) + " to the dead-letter queue", e);
        } catch (ExecutionException | TimeoutException e) {
            throw new ConnectException("could not write " + position(record) + " to the dead-letter queue", e);
        }
        LOG.warn("{} sent to the dead-letter queue: {}", position(record), error.getMessage());
    }

    private static TopicPartition partitionOf(SinkRecord record) {
        return new TopicPartition(RecordRenderer.originalTopic(record), RecordRenderer.originalPartition(record));
    }

    private static String position(SinkRecord record) {
        return "record " + RecordRenderer.originalTopic(record) + "-" + RecordRenderer.originalPartition(record)
                + "@" + RecordRenderer.originalOffset(record);
    }

    @Override
    public void open(Collection<TopicPartition> partitions) {
        forget(partitions);
    }

    @Override
    public void close(Collection<TopicPartition> partitions) {
        forget(partitions);
    }

    private void forget(Collection<TopicPartition> partitions) {
        // After a (re)assignment the framework starts from the committed offsets again.
        for (TopicPartition tp : partitions) {
            handledUpTo.remove(tp);
            retrying.remove(tp);
        }
    }

    @Override
    public void stop() {
        if (pool != null) {
            pool.shutdownNow();
        }
        if (gateway != null) {
            gateway.close();
        }
        gatewayMetrics.close();
        handledUpTo.clear();
        retrying.clear();
    }

    private static ThreadFactory daemonThreads(String connector) {
        AtomicInteger n = new AtomicInteger();
        String prefix = "notipipe-http-sink-" + (connector == null ? "task" : connector) + "-";
        return runnable -> {
            Thread thread = new Thread(runnable, prefix + n.incrementAndGet());
            thread.setDaemon(true);
            return thread;
        };
    }

    /** The record of a partition that failed with a retriable error and waits for its next attempt. */
    private static final class RetryState {
        final long offset;
        final long firstFailureAt;
        volatile int attempts;
        volatile long nextAttemptAt;
        volatile String lastDetail = "";

        RetryState(long offset, long firstFailureAt) {
            this.offset = offset;
            this.firstFailureAt = firstFailureAt;
        }
    }
}
