package dev.clnorm.bench;

/** What the bench times, with the minimum memory traffic of REFERENCE.md §3 in bytes per element. */
public enum Op {
    TRAIN_FORWARD("train_forward", 12),
    /**
     * A second yardstick, for training forward: {@code Backend.forwardFloor}, its memory traffic when
     * x leaves the cache between the statistics and the normalize pass, without its arithmetic.
     * Counted as training forward is.
     */
    FORWARD_FLOOR("forward_floor", 12),
    INFERENCE("inference", 8),
    BACKWARD("backward", 12),
    /**
     * A second yardstick, for backward: {@code Backend.backwardFloor}, backward's memory traffic when x
     * and dy leave the cache between its two passes, without its arithmetic. Counted as backward is.
     */
    BACKWARD_FLOOR("backward_floor", 12),
    TRAIN_STEP("train_step", 24),
    /** The yardstick: read and write each element once. */
    COPY("copy", 8);

    private final String id;
    private final int bytesPerElement;

    Op(String id, int bytesPerElement) {
        this.id = id;
        this.bytesPerElement = bytesPerElement;
    }

    public String id() {
        return id;
    }

    public int bytesPerElement() {
        return bytesPerElement;
    }

    /** Whether this is a reference the bench measures batch norm against rather than batch norm. */
    public boolean isYardstick() {
        return this == COPY || this == FORWARD_FLOOR || this == BACKWARD_FLOOR;
    }

    public static Op parse(String s) {
        for (Op op : values()) {
            if (op.id.equalsIgnoreCase(s) || op.name().equalsIgnoreCase(s)) {
                return op;
            }
        }
        throw new IllegalArgumentException("unknown operation '" + s + "'; use train_forward, inference, backward, "
                + "train_step, copy, forward_floor or backward_floor");
    }
}
