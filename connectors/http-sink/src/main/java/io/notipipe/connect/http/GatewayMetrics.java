package io.notipipe.connect.http;

import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.Map;

import org.apache.kafka.common.metrics.PluginMetrics;
import org.apache.kafka.common.metrics.Sensor;
import org.apache.kafka.common.metrics.stats.CumulativeCount;

/**
 * Counts the gateway's answers by outcome, as the task's plugin metrics (KIP-877): Connect
 * registers them as {@code kafka.connect:type=plugins,connector=...,task=...,outcome=...}, attribute
 * {@code gateway-responses-total}, which the JMX exporter agent serves to Prometheus. Outcomes:
 * {@code delivered} (2xx), {@code retried} (5xx, 408, 429, a timeout or connection error) and
 * {@code rejected} (any other answer; the record goes to the DLQ). Records never sent (a tombstone,
 * a value that cannot be JSON) are not gateway answers and are not counted.
 */
final class GatewayMetrics {

    static final String NAME = "gateway-responses-total";

    enum Answer { DELIVERED, RETRIED, REJECTED }

    private final Map<Answer, Sensor> sensors = new EnumMap<>(Answer.class);
    private final PluginMetrics metrics;

    private GatewayMetrics(PluginMetrics metrics) {
        this.metrics = metrics;
        if (metrics == null) {
            return;
        }
        for (Answer answer : Answer.values()) {
            String outcome = answer.name().toLowerCase();
            LinkedHashMap<String, String> tags = new LinkedHashMap<>();
            tags.put("outcome", outcome);
            Sensor sensor = metrics.addSensor("gateway-responses-" + outcome);
            sensor.add(metrics.metricName(NAME, "Gateway answers that were " + outcome, tags), new CumulativeCount());
            sensors.put(answer, sensor);
        }
    }

    /** The task's metrics, or none where the worker offers no plugin metrics (Connect before 4.1). */
    static GatewayMetrics of(PluginMetrics metrics) {
        return new GatewayMetrics(metrics);
    }

    void record(Outcome outcome) {
        Answer answer = switch (outcome.kind()) {
            case DELIVERED -> Answer.DELIVERED;
            case RETRIABLE -> Answer.RETRIED;
            // A refused credential is the gateway rejecting every request until it is fixed.
            case PERMANENT, UNAUTHORIZED -> outcome.status() == 0 ? null : Answer.REJECTED;
        };
        Sensor sensor = answer == null ? null : sensors.get(answer);
        if (sensor != null) {
            sensor.record();
        }
    }

    void close() {
        if (metrics == null) {
            return;
        }
        for (Answer answer : Answer.values()) {
            metrics.removeSensor("gateway-responses-" + answer.name().toLowerCase());
        }
        sensors.clear();
    }
}
