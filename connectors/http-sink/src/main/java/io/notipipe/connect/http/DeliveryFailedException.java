package io.notipipe.connect.http;

import org.apache.kafka.connect.errors.ConnectException;

/**
 * Why a record could not be delivered; handed to the errant record reporter, so its message ends
 * up in the dead-letter record's {@code __connect.errors.exception.message} header.
 */
public class DeliveryFailedException extends ConnectException {

    private static final long serialVersionUID = 1L;

    private final int status;

    public DeliveryFailedException(String message, int status) {
        super(message);
        this.status = status;
    }

    public DeliveryFailedException(String message, Throwable cause) {
        super(message, cause);
        this.status = 0;
    }

    /** The gateway's last HTTP status, or 0 when there was none (no answer, or not sent). */
    public int status() {
        return status;
    }
}
