package io.notipipe.connect.http;

import java.util.Map;

import org.apache.kafka.connect.data.Field;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.json.JsonConverter;
import org.apache.kafka.connect.json.JsonConverterConfig;
import org.apache.kafka.connect.sink.SinkRecord;

/**
 * Turns a record value into the JSON body that is POSTed: a Struct (e.g. from the Avro converter)
 * becomes a plain JSON object (no schema envelope; timestamps as epoch milliseconds, enums as
 * their symbol, arrays and nested records as JSON), a Map or primitive as itself.
 */
final class RecordRenderer {

    private final JsonConverter json = new JsonConverter();
    private final String keyField;

    RecordRenderer(String keyField) {
        this.keyField = keyField;
        json.configure(Map.of(
                JsonConverterConfig.SCHEMAS_ENABLE_CONFIG, "false",
                JsonConverterConfig.DECIMAL_FORMAT_CONFIG, "NUMERIC",
                JsonConverterConfig.TYPE_CONFIG, "value"));
    }

    /** The body; throws {@link org.apache.kafka.connect.errors.DataException} for values JSON cannot hold. */
    byte[] body(SinkRecord record) {
        return json.fromConnectData(record.topic(), record.valueSchema(), record.value());
    }

    /** The idempotency key: the key field's value, else a stable id of the record's position. */
    String idempotencyKey(SinkRecord record) {
        Object value = record.value();
        Object key = null;
        if (value instanceof Struct struct) {
            Schema schema = struct.schema();
            Field field = schema.field(keyField);
            if (field != null) {
                key = struct.get(field);
            }
        } else if (value instanceof Map<?, ?> map) {
            key = map.get(keyField);
        }
        if (key != null && !key.toString().isBlank()) {
            return key.toString();
        }
        return originalTopic(record) + "-" + originalPartition(record) + "-" + originalOffset(record);
    }

    static String originalTopic(SinkRecord record) {
        return record.originalTopic();
    }

    static int originalPartition(SinkRecord record) {
        Integer partition = record.originalKafkaPartition();
        return partition == null ? -1 : partition;
    }

    static long originalOffset(SinkRecord record) {
        return record.originalKafkaOffset();
    }
}
