package io.notipipe.connect.http;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.time.Duration;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.time.format.DateTimeParseException;
import java.util.Map;
import java.util.Optional;

/**
 * POSTs JSON bodies to one URL with the JDK's HTTP client (HTTP/1.1, no redirects followed).
 *
 * <p>An answer's body is never put in an outcome's detail: those end up in logs and dead-letter
 * headers, and a gateway's error text may echo the recipient's address or the message.
 */
final class HttpGateway implements Gateway {

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
        String detail = "answered " + status;
        switch (Outcome.classify(status)) {
            case DELIVERED:
                return Outcome.delivered(status);
            case RETRIABLE:
                return Outcome.retriable(status, detail,
                        retryAfterMs(response.headers().firstValue("Retry-After")));
            case UNAUTHORIZED:
                return Outcome.unauthorized(status, detail);
            default:
                return Outcome.permanent(status, detail);
        }
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

    /** Without user info or query (a gateway may take a key there): this goes into logs. */
    @Override
    public String describe() {
        String port = url.getPort() == -1 ? "" : ":" + url.getPort();
        String path = url.getRawPath() == null ? "" : url.getRawPath();
        return "POST " + url.getScheme() + "://" + url.getHost() + port + path
                + (url.getRawQuery() == null ? "" : "?...");
    }

    @Override
    public void close() {
        // The JDK client of Java 17 has no close(); its threads die with it once unreferenced.
    }
}
