package io.notipipe.connect.http;

/**
 * What became of one POST: delivered (2xx), worth retrying (5xx, 408, 429, timeout, connection
 * error), the credentials refused (401, 403: no record could get through, so none is dead-lettered)
 * or permanently refused (any other answer). {@code status} is 0 when no answer came.
 */
record Outcome(Kind kind, int status, String detail, long retryAfterMs) {

    enum Kind { DELIVERED, RETRIABLE, UNAUTHORIZED, PERMANENT }

    static Outcome delivered(int status) {
        return new Outcome(Kind.DELIVERED, status, "", 0);
    }

    static Outcome retriable(int status, String detail, long retryAfterMs) {
        return new Outcome(Kind.RETRIABLE, status, detail, retryAfterMs);
    }

    static Outcome unauthorized(int status, String detail) {
        return new Outcome(Kind.UNAUTHORIZED, status, detail, 0);
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
        if (status == 401 || status == 403) {
            return Kind.UNAUTHORIZED;
        }
        return Kind.PERMANENT;
    }
}
