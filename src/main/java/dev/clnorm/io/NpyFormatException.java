package dev.clnorm.io;

import java.io.IOException;

/**
 * A {@code .npy} / {@code .npz} file that cannot be read: truncated, garbled, or holding
 * something clnorm does not support (Fortran order, an unsupported dtype). The message names the
 * file and says what was expected and what was found, in one line.
 */
public class NpyFormatException extends IOException {
    private static final long serialVersionUID = 1L;

    public NpyFormatException(String message) {
        super(message);
    }

    public NpyFormatException(String message, Throwable cause) {
        super(message, cause);
    }
}
