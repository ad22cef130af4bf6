package io.notipipe.connect.http;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.connect.connector.Task;
import org.apache.kafka.connect.sink.SinkConnector;

/**
 * Kafka Connect sink that POSTs each record value, as JSON, to one HTTP gateway.
 *
 * <p>Guarantees: records of one partition are sent strictly in order, one request in flight; a
 * record is only committed once the gateway answered 2xx or the record went to the dead-letter
 * queue (errant record reporter). Retriable failures (5xx, 408, 429, timeouts, connection errors)
 * are retried with exponential backoff and jitter for up to {@code retry.max.duration.ms}; 401 and
 * 403 (the gateway refuses the connector's {@code http.authorization}) fail the task without
 * dead-lettering anything; other answers, and records whose retries ran out, go to the dead-letter
 * queue with the error. Without a dead-letter queue configured such a record fails the task:
 * nothing is dropped silently. Errors and logs name records by topic, partition and offset and
 * gateways by URL without query; they never carry a record's content or a gateway's answer body.
 */
public class HttpSinkConnector extends SinkConnector {

    private Map<String, String> props;

    @Override
    public String version() {
        return Version.get();
    }

    @Override
    public void start(Map<String, String> props) {
        new HttpSinkConfig(props); // fail fast on a bad config
        this.props = Map.copyOf(props);
    }

    @Override
    public Class<? extends Task> taskClass() {
        return HttpSinkTask.class;
    }

    @Override
    public List<Map<String, String>> taskConfigs(int maxTasks) {
        List<Map<String, String>> configs = new ArrayList<>(maxTasks);
        for (int i = 0; i < maxTasks; i++) {
            configs.add(props);
        }
        return configs;
    }

    @Override
    public void stop() {
        // Nothing to release: tasks own their HTTP clients.
    }

    @Override
    public ConfigDef config() {
        return HttpSinkConfig.CONFIG_DEF;
    }
}
