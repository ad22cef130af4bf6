package io.notipipe.connect.http;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.time.format.DateTimeParseException;
import java.util.Map;
import java.util.Optional;

/** POSTs JSON bodies to one URL with the JDK's HTTP client (HTTP/1.1, no redirects followed). */
final class HttpGateway implements Gateway {

    private static final int MAX_DETAIL_CHARS = 512;

    private final URI url;
    private final Duration requestTimeout;
    private final Map<String, String> staticHeaders;
    private final HttpClient client;

    HttpGateway(URI url, Duration connectTimeout, Duration requestTimeout, Map<String, String> staticHeaders) {
        this.url = url;
        this.requestTimeout = requestTimeout;
        this.staticHeaders = staticHeaders;
        this.client = HttpClient.newBuilder()
                .version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(connectTimeout)
                .followRedirects(HttpClient.Redirect.NEVER)
                .build();
    }

    @Override
    public Outcome post(byte[] body, Map<String, String> headers) throws InterruptedException {
        HttpRequest.Builder request = HttpRequest.newBuilder(url)
                .timeout(requestTimeout)
                .header("Content-Type", "application/json")
                .header("User-Agent", "notipipe-http-sink/" + Version.get())
                .POST(HttpRequest.BodyPublishers.ofByteArray(body));
        staticHeaders.forEach(request::header);
        headers.forEach(request::setHeader);
        HttpResponse<byte[]> response;
        try {
            response = client.send(request.build(), HttpResponse.BodyHandlers.ofByteArray());
        } catch (HttpTimeoutException e) {
            return Outcome.retriable(0, "timed out: " + e.getMessage(), 0);
        } catch (IOException e) {
            return Outcome.retriable(0, e.getClass().getSimpleName() + ": " + e.getMessage(), 0);
        }
        int status = response.statusCode();
        String detail = "answered " + status + ": " + excerpt(response.body());
        switch (Outcome.classify(status)) {
            case DELIVERED:
                return Outcome.delivered(status);
            case RETRIABLE:
                return Outcome.retriable(status, detail,
                        retryAfterMs(response.headers().firstValue("Retry-After")));
            default:
                return Outcome.permanent(status, detail);
        }
    }

    static String excerpt(byte[] body) {
        if (body == null || body.length == 0) {
            return "(empty body)";
        }
        String text = new String(body, StandardCharsets.UTF_8).strip();
        return text.length() <= MAX_DETAIL_CHARS ? text : text.substring(0, MAX_DETAIL_CHARS) + "...";
    }

    /** Retry-After as delay-seconds or an HTTP date; 0 when absent or unreadable. */
    static long retryAfterMs(Optional<String> header) {
        if (header.isEmpty()) {
            return 0;
        }
        String value = header.get().trim();
        try {
            return Math.max(0, Long.parseLong(value) * 1000);
        } catch (NumberFormatException notSeconds) {
            try {
                ZonedDateTime at = ZonedDateTime.parse(value, DateTimeFormatter.RFC_1123_DATE_TIME);
                return Math.max(0, at.toInstant().toEpochMilli() - System.currentTimeMillis());
            } catch (DateTimeParseException notADate) {
                return 0;
            }
        }
    }

    @Override
    public String describe() {
        return "POST " + url;
    }

    @Override
    public void close() {
        // The JDK client of Java 17 has no close(); its threads die with it once unreferenced.
    }
}
