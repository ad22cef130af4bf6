package io.notipipe.connect.http;

import java.net.URI;
import java.net.URISyntaxException;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

import org.apache.kafka.common.config.AbstractConfig;
import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.common.config.ConfigDef.Importance;
import org.apache.kafka.common.config.ConfigDef.Range;
import org.apache.kafka.common.config.ConfigDef.Type;
import org.apache.kafka.common.config.ConfigException;
import org.apache.kafka.common.config.types.Password;

/**
 * Settings of the HTTP sink. Besides the keys defined here, every {@code http.header.<Name>} key
 * adds a static request header {@code <Name>: <value>}. Credentials go in {@code http.authorization}
 * (a password-type setting, never logged), given through a Connect config provider such as
 * {@code ${file:/path/connector-secrets.properties:gateway.email.token}} so they are not in the
 * connector's stored config either.
 */
public final class HttpSinkConfig extends AbstractConfig {

    public static final String URL = "http.url";
    public static final String AUTHORIZATION = "http.authorization";
    public static final String HEADER_PREFIX = "http.header.";
    public static final String CONNECT_TIMEOUT_MS = "http.connect.timeout.ms";
    public static final String REQUEST_TIMEOUT_MS = "http.request.timeout.ms";
    public static final String MAX_CONCURRENCY = "http.max.concurrency";
    public static final String KEY_FIELD = "idempotency.key.field";
    public static final String KEY_HEADER = "idempotency.key.header";
    public static final String BACKOFF_INITIAL_MS = "retry.backoff.initial.ms";
    public static final String BACKOFF_MAX_MS = "retry.backoff.max.ms";
    public static final String RETRY_MAX_DURATION_MS = "retry.max.duration.ms";
    public static final String PUT_MAX_DURATION_MS = "put.max.duration.ms";

    /** Headers the connector sets itself; a static header may not override them. */
    private static final Set<String> RESERVED_HEADERS = Set.of("content-type", "content-length", "host",
            "connection", "expect", "upgrade");

    public static final ConfigDef CONFIG_DEF = new ConfigDef()
            .define(URL, Type.STRING, ConfigDef.NO_DEFAULT_VALUE, new HttpUrlValidator(), Importance.HIGH,
                    "Gateway URL every record is POSTed to (http or https). One connector per channel.")
            .define(AUTHORIZATION, Type.PASSWORD, null, Importance.HIGH,
                    "Authorization header of every request, sent as is, e.g. 'Bearer <token>'. Give the "
                            + "secret through a config provider, e.g. 'Bearer ${file:<path>:<key>}'. A 401 or "
                            + "403 answer is a refused credential: the task fails with a message naming this "
                            + "setting, nothing is dead-lettered, and after the fix a restart resumes from the "
                            + "last committed offset.")
            .define(CONNECT_TIMEOUT_MS, Type.LONG, 5_000L, Range.atLeast(1), Importance.MEDIUM,
                    "TCP/TLS connect timeout; a timeout is retried like a 5xx.")
            .define(REQUEST_TIMEOUT_MS, Type.LONG, 10_000L, Range.atLeast(1), Importance.MEDIUM,
                    "Time allowed for the gateway's answer; a timeout is retried like a 5xx.")
            .define(MAX_CONCURRENCY, Type.INT, 8, Range.between(1, 256), Importance.MEDIUM,
                    "Partitions a task sends to in parallel. Within one partition there is never more "
                            + "than one request in flight, so records of one key stay in order.")
            .define(KEY_FIELD, Type.STRING, "delivery_id", Importance.MEDIUM,
                    "Field of the record value whose value is sent as the idempotency key. A record "
                            + "without it gets '<topic>-<partition>-<offset>'.")
            .define(KEY_HEADER, Type.STRING, "Idempotency-Key", Importance.LOW,
                    "Request header carrying the idempotency key (providers dedupe retried requests on it).")
            .define(BACKOFF_INITIAL_MS, Type.LONG, 500L, Range.atLeast(1), Importance.MEDIUM,
                    "Backoff after the first failed attempt; doubles per attempt, with jitter.")
            .define(BACKOFF_MAX_MS, Type.LONG, 10_000L, Range.atLeast(1), Importance.MEDIUM,
                    "Upper bound of one backoff (a Retry-After answer is honoured up to this).")
            .define(RETRY_MAX_DURATION_MS, Type.LONG, 300_000L, Range.atLeast(0), Importance.HIGH,
                    "How long one record is retried (5xx, 408, 429, timeouts, connection errors) before "
                            + "it goes to the dead-letter queue. Later records of its partition wait meanwhile.")
            .define(PUT_MAX_DURATION_MS, Type.LONG, 60_000L, Range.atLeast(1), Importance.LOW,
                    "Longest time one put() call sends before handing control back to the Connect "
                            + "framework (the rest of the batch is redelivered). Keep it well below the "
                            + "consumer's max.poll.interval.ms.");

    private final URI url;
    private final Map<String, String> staticHeaders;
    private final Optional<String> authorization;

    public HttpSinkConfig(Map<?, ?> props) {
        super(CONFIG_DEF, props);
        this.url = URI.create(getString(URL).trim());
        this.staticHeaders = parseHeaders(originalsWithPrefix(HEADER_PREFIX));
        Password secret = getPassword(AUTHORIZATION);
        this.authorization = secret == null ? Optional.empty() : Optional.of(secret.value().strip());
        if (authorization.isPresent()) {
            if (authorization.get().isEmpty() || authorization.get().chars().anyMatch(c -> c == '\r' || c == '\n')) {
                throw new ConfigException(AUTHORIZATION, "(hidden)", "must be one non-empty line");
            }
            if (staticHeaders.keySet().stream().anyMatch(h -> h.equalsIgnoreCase("Authorization"))) {
                throw new ConfigException(HEADER_PREFIX + "Authorization", "(hidden)",
                        "give the credential in " + AUTHORIZATION + " only");
            }
        }
        if (backoffInitial().compareTo(backoffMax()) > 0) {
            throw new ConfigException(BACKOFF_INITIAL_MS, backoffInitial().toMillis(),
                    "must not be larger than " + BACKOFF_MAX_MS);
        }
        if (getString(KEY_HEADER).isBlank()) {
            throw new ConfigException(KEY_HEADER, getString(KEY_HEADER), "must not be blank");
        }
    }

    private static Map<String, String> parseHeaders(Map<String, Object> raw) {
        Map<String, String> headers = new LinkedHashMap<>();
        for (Map.Entry<String, Object> entry : raw.entrySet()) {
            String name = entry.getKey().trim();
            if (name.isEmpty() || !name.chars().allMatch(HttpSinkConfig::isTokenChar)) {
                throw new ConfigException(HEADER_PREFIX + entry.getKey(), "(hidden)",
                        "not a valid HTTP header name");
            }
            if (RESERVED_HEADERS.contains(name.toLowerCase(Locale.ROOT))) {
                throw new ConfigException(HEADER_PREFIX + name, "(hidden)",
                        "the connector sets this header itself");
            }
            String value = String.valueOf(entry.getValue());
            if (value.chars().anyMatch(c -> c == '\r' || c == '\n')) {
                throw new ConfigException(HEADER_PREFIX + name, "(hidden)", "header values cannot span lines");
            }
            headers.put(name, value);
        }
        return Map.copyOf(headers);
    }

    private static boolean isTokenChar(int c) {
        return c > 32 && c < 127 && "()<>@,;:\\\"/[]?={}".indexOf(c) < 0;
    }

    public URI url() {
        return url;
    }

    public Map<String, String> staticHeaders() {
        return staticHeaders;
    }

    public Optional<String> authorization() {
        return authorization;
    }

    /** Every header the connector sends besides its own: the static ones and the Authorization. */
    public Map<String, String> requestHeaders() {
        if (authorization.isEmpty()) {
            return staticHeaders;
        }
        Map<String, String> headers = new LinkedHashMap<>(staticHeaders);
        headers.put("Authorization", authorization.get());
        return Map.copyOf(headers);
    }

    public Duration connectTimeout() {
        return Duration.ofMillis(getLong(CONNECT_TIMEOUT_MS));
    }

    public Duration requestTimeout() {
        return Duration.ofMillis(getLong(REQUEST_TIMEOUT_MS));
    }

    public int maxConcurrency() {
        return getInt(MAX_CONCURRENCY);
    }

    public String keyField() {
        return getString(KEY_FIELD);
    }

    public String keyHeader() {
        return getString(KEY_HEADER).trim();
    }

    public Duration backoffInitial() {
        return Duration.ofMillis(getLong(BACKOFF_INITIAL_MS));
    }

    public Duration backoffMax() {
        return Duration.ofMillis(getLong(BACKOFF_MAX_MS));
    }

    public Duration retryMaxDuration() {
        return Duration.ofMillis(getLong(RETRY_MAX_DURATION_MS));
    }

    public Duration putMaxDuration() {
        return Duration.ofMillis(getLong(PUT_MAX_DURATION_MS));
    }

    /** Accepts absolute http:// and https:// URLs with a host. */
    static final class HttpUrlValidator implements ConfigDef.Validator {
        @Override
        public void ensureValid(String name, Object value) {
            if (value == null || value.toString().isBlank()) {
                throw new ConfigException(name, value, "a gateway URL is required");
            }
            try {
                URI uri = new URI(value.toString().trim());
                String scheme = uri.getScheme() == null ? "" : uri.getScheme().toLowerCase(Locale.ROOT);
                if (!scheme.equals("http") && !scheme.equals("https") || uri.getHost() == null) {
                    throw new ConfigException(name, value, "must be an absolute http:// or https:// URL");
                }
            } catch (URISyntaxException e) {
                throw new ConfigException(name, value, "not a URL: " + e.getMessage());
            }
        }

        @Override
        public String toString() {
            return "an absolute http:// or https:// URL";
        }
    }
}
