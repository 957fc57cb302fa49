package dev.clnorm.backend;

/** What a device buffer holds. Tensors are float32; counters are int32. */
public enum ElementType {
    FLOAT32(4),
    INT32(4);

    private final int bytes;

    ElementType(int bytes) {
        this.bytes = bytes;
    }

    public int bytes() {
        return bytes;
    }
}
