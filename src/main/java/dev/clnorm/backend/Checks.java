package dev.clnorm.backend;

/** Argument checks shared by the backends, so every backend words its errors the same way. */
public final class Checks {
    private Checks() {
    }

    /** Fails unless the buffer belongs to this backend, is open and holds the expected type. */
    public static void usable(Backend owner, DeviceBuffer buffer, ElementType type, String what) {
        if (buffer == null) {
            throw new NullPointerException(what + " buffer is null");
        }
        if (buffer.isClosed()) {
            throw new IllegalStateException(what + " buffer has been closed");
        }
        if (buffer.backend() != owner) {
            throw new IllegalArgumentException(what + " buffer lives on " + buffer.backend().info().id()
                    + " but the operation runs on " + owner.info().id());
        }
        if (buffer.type() != type) {
            throw new IllegalArgumentException(what + " buffer holds " + buffer.type() + ", expected " + type);
        }
    }

    /** Fails unless a host array has exactly the buffer's length. */
    public static void sameLength(DeviceBuffer buffer, int hostLength, String direction) {
        if (buffer.elements() != hostLength) {
            throw new IllegalArgumentException(direction + " needs a host array of " + buffer.elements()
                    + " elements, got " + hostLength);
        }
    }

    /** Fails with the requested size and the device limit when an allocation cannot fit. */
    public static void allocationFits(long elements, ElementType type, DeviceInfo info) {
        if (elements < 0) {
            throw new IllegalArgumentException("cannot allocate a negative number of elements: " + elements);
        }
        long bytes = elements * type.bytes();
        if (bytes > info.maxAllocBytes()) {
            throw new IllegalArgumentException("requested " + bytes + " bytes (" + elements + " " + type
                    + " elements) but " + info.name() + " allows at most " + info.maxAllocBytes()
                    + " bytes in one allocation");
        }
    }
}
