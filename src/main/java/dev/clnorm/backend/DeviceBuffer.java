package dev.clnorm.backend;

/**
 * Memory owned by one backend's device. Closing releases it once; a closed buffer refuses every
 * use with {@link IllegalStateException}.
 */
public interface DeviceBuffer extends AutoCloseable {
    /** The backend whose device holds this buffer. */
    Backend backend();

    long elements();

    ElementType type();

    boolean isClosed();

    /** Idempotent. */
    @Override
    void close();
}
