package dev.clnorm.backend.opencl;

import dev.clnorm.backend.Backend;
import dev.clnorm.backend.DeviceBuffer;
import dev.clnorm.backend.ElementType;
import org.jocl.CL;
import org.jocl.cl_mem;

/** A cl_mem owned by exactly one Java object and released exactly once. */
final class ClBuffer implements DeviceBuffer {
    private final OpenClBackend owner;
    private final long elements;
    private final ElementType type;
    private cl_mem mem;

    ClBuffer(OpenClBackend owner, cl_mem mem, long elements, ElementType type) {
        this.owner = owner;
        this.mem = mem;
        this.elements = elements;
        this.type = type;
    }

    /** The live handle; throws if this buffer or its backend was closed. */
    synchronized cl_mem mem() {
        if (mem == null) {
            throw new IllegalStateException("buffer has been closed");
        }
        owner.checkOpen();
        return mem;
    }

    long bytes() {
        return elements * type.bytes();
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
        return mem == null;
    }

    @Override
    public synchronized void close() {
        if (mem == null) {
            return;
        }
        cl_mem m = mem;
        mem = null;
        // Release never throws: the handle is dropped either way, and a failure here would only
        // hide the exception that may have led to this close.
        CL.clReleaseMemObject(m);
        owner.counters().liveBuffers.decrementAndGet();
    }
}
