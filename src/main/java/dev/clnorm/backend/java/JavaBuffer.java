package dev.clnorm.backend.java;

import dev.clnorm.backend.Backend;
import dev.clnorm.backend.DeviceBuffer;
import dev.clnorm.backend.ElementType;

/** Heap memory standing in for device memory on the pure-Java backend. */
final class JavaBuffer implements DeviceBuffer {
    private final JavaBackend owner;
    private final ElementType type;
    private final long elements;
    private float[] floats;
    private int[] ints;
    private short[] shorts;
    private double[] doubles;
    private boolean closed;

    JavaBuffer(JavaBackend owner, long elements, ElementType type) {
        this.owner = owner;
        this.type = type;
        this.elements = elements;
        switch (type) {
            case FLOAT32 -> floats = new float[(int) elements];
            case INT32 -> ints = new int[(int) elements];
            case FLOAT16, BFLOAT16 -> shorts = new short[(int) elements];
            case FLOAT64 -> doubles = new double[(int) elements];
        }
    }

    float[] floats() {
        checkOpen();
        return floats;
    }

    int[] ints() {
        checkOpen();
        return ints;
    }

    short[] shorts() {
        checkOpen();
        return shorts;
    }

    double[] doubles() {
        checkOpen();
        return doubles;
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("buffer has been closed");
        }
    }

    @Override
    public Backend backend() {
        return owner;
    }

    @Override
    public long elements() {
        return elements;
    }

    @Override
    public ElementType type() {
        return type;
    }

    @Override
    public synchronized boolean isClosed() {
        return closed;
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        floats = null;
        ints = null;
        shorts = null;
        doubles = null;
        owner.counters().liveBuffers.decrementAndGet();
    }
}
