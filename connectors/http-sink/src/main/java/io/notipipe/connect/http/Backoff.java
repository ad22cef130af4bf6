package io.notipipe.connect.http;

import java.util.function.LongUnaryOperator;

/**
 * Exponential backoff with "equal jitter": attempt n waits between half and all of
 * min(max, initial * 2^(n-1)), so retries of many tasks do not hit a recovering gateway together.
 */
final class Backoff {

    private final long initialMs;
    private final long maxMs;
    private final LongUnaryOperator random; // bound -> value in [0, bound)

    Backoff(long initialMs, long maxMs, LongUnaryOperator random) {
        this.initialMs = initialMs;
        this.maxMs = maxMs;
        this.random = random;
    }

    /** Delay before attempt {@code failedAttempts + 1}; honours a server's Retry-After up to max. */
    long delayMs(int failedAttempts, long retryAfterMs) {
        int shift = Math.min(Math.max(failedAttempts - 1, 0), 30);
        long ceiling = Math.min(maxMs, initialMs << shift);
        long half = ceiling / 2;
        long delay = half + (ceiling - half > 0 ? random.applyAsLong(ceiling - half + 1) : 0);
        return Math.max(delay, Math.min(retryAfterMs, maxMs));
    }
}
