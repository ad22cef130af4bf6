package io.notipipe.connect.http;

/**
 * What became of one POST: delivered (2xx), worth retrying (5xx, 408, 429, timeout, connection
 * error) or permanently refused (any other answer). {@code status} is 0 when no answer came.
 */
record Outcome(Kind kind, int status, String detail, long retryAfterMs) {

    enum Kind { DELIVERED, RETRIABLE, PERMANENT }

    static Outcome delivered(int status) {
        return new Outcome(Kind.DELIVERED, status, "", 0);
    }

    static Outcome retriable(int status, String detail, long retryAfterMs) {
        return new Outcome(Kind.RETRIABLE, status, detail, retryAfterMs);
    }

    static Outcome permanent(int status, String detail) {
        return new Outcome(Kind.PERMANENT, status, detail, 0);
    }

    /** The HTTP status classification the connector applies to a gateway's answer. */
    static Kind classify(int status) {
        if (status >= 200 && status < 300) {
            return Kind.DELIVERED;
        }
        if (status >= 500 || status == 408 || status == 429) {
            return Kind.RETRIABLE;
        }
        return Kind.PERMANENT;
    }
}
