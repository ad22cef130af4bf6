package io.notipipe.connect.http;

import java.util.Map;

/** Where a rendered record is sent. The production implementation is {@link HttpGateway}. */
interface Gateway extends AutoCloseable {

    /**
     * Send one record. Never throws for gateway trouble: every failure is an {@link Outcome}.
     *
     * @throws InterruptedException when the sending thread is interrupted (task shutting down)
     */
    Outcome post(byte[] body, Map<String, String> headers) throws InterruptedException;

    /** A short description for messages, e.g. {@code POST https://gateway/send}. */
    String describe();

    @Override
    void close();
}
