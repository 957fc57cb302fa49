package dev.clnorm.backend.opencl;

import dev.clnorm.backend.DeviceBuffer;
import dev.clnorm.backend.ElementType;
import org.jocl.CL;
import org.jocl.Pointer;
import org.jocl.Sizeof;
import org.jocl.cl_kernel;
import org.jocl.cl_mem;

/**
 * One cl_kernel with one owner. Arguments are set through this object and kernels are never
 * shared between layers, so concurrent layers cannot race on clSetKernelArg. Public (through
 * {@link ClProgram#createKernel}) so that tools and tests can run their own kernels; a kernel is not
 * thread-safe, give each thread its own. Every failing CL call throws {@link ClException} naming the
 * call, the CL error, this kernel and the device; use after {@link #close()} throws
 * {@link IllegalStateException}.
 */
public final class ClKernel implements AutoCloseable {
    private final OpenClBackend backend;
    private final String name;
    private final long maxWorkGroupSize;
    private cl_kernel kernel;
    /**
     * What each argument index is bound to now (a cl_mem, a boxed int or float, or a local size),
     * so that a repeated binding skips clSetKernelArg: a training loop that reuses its tensors sets
     * each argument once.
     */
    private Object[] bound = new Object[16];

    ClKernel(OpenClBackend backend, cl_kernel kernel, String name, long maxWorkGroupSize) {
        this.backend = backend;
        this.kernel = kernel;
        this.name = name;
        this.maxWorkGroupSize = maxWorkGroupSize;
    }

    public String name() {
        return name;
    }

    /** min(CL_KERNEL_WORK_GROUP_SIZE, CL_DEVICE_MAX_WORK_GROUP_SIZE) for this kernel on its device. */
    public long maxWorkGroupSize() {
        return maxWorkGroupSize;
    }

    private synchronized cl_kernel handle() {
        if (kernel == null) {
            throw new IllegalStateException("kernel " + name + " has been released");
        }
        return kernel;
    }

    /** A buffer argument; the buffer must be open and belong to this kernel's backend. */
    public ClKernel arg(int index, DeviceBuffer buffer) {
        ClBuffer b = OpenClBackend.cast(backend, buffer, buffer == null ? ElementType.FLOAT32 : buffer.type(),
                "kernel " + name + " argument " + index);
        cl_mem mem = b.mem();
        if (isBound(index, mem)) {
            return this;
        }
        check(CL.clSetKernelArg(handle(), index, Sizeof.cl_mem, Pointer.to(mem)), index, mem);
        return this;
    }

    public ClKernel arg(int index, int value) {
        if (isBound(index, value)) {
            return this;
        }
        check(CL.clSetKernelArg(handle(), index, Sizeof.cl_int, Pointer.to(new int[]{value})), index, value);
        return this;
    }

    public ClKernel arg(int index, float value) {
        if (isBound(index, value)) {
            return this;
        }
        check(CL.clSetKernelArg(handle(), index, Sizeof.cl_float, Pointer.to(new float[]{value})), index, value);
        return this;
    }

    /** A double argument (kernels built for float64). */
    public ClKernel arg(int index, double value) {
        if (isBound(index, value)) {
            return this;
        }
        check(CL.clSetKernelArg(handle(), index, Sizeof.cl_double, Pointer.to(new double[]{value})), index, value);
        return this;
    }

    /** A __local array of {@code bytes} bytes. */
    public ClKernel localArg(int index, long bytes) {
        LocalSize size = new LocalSize(bytes);
        if (isBound(index, size)) {
            return this;
        }
        check(CL.clSetKernelArg(handle(), index, bytes, null), index, size);
        return this;
    }

    private record LocalSize(long bytes) {
    }

    /** True when index already holds this value: the same cl_mem object, or an equal number or size. */
    private boolean isBound(int index, Object value) {
        handle();
        if (index < 0 || index >= bound.length) {
            return false;
        }
        Object now = bound[index];
        return value instanceof cl_mem ? now == value : value.equals(now);
    }

    private void check(int code, int index, Object value) {
        ClException.check(code, "clSetKernelArg(" + index + ")", name, backend.info().name());
        backend.counters().argumentSets.incrementAndGet();
        if (index >= bound.length) {
            bound = java.util.Arrays.copyOf(bound, Math.max(index + 1, bound.length * 2));
        }
        bound[index] = value;
    }

    /** Enqueues without waiting; global sizes must already be multiples of the local sizes. */
    public void launch(long[] global, long[] local) {
        backend.checkOpen();
        int code = CL.clEnqueueNDRangeKernel(backend.queue(), handle(), global.length, null, global, local, 0, null,
                backend.profilingEvent());
        ClException.check(code, "clEnqueueNDRangeKernel", name, backend.info().name());
        backend.counters().launches.incrementAndGet();
    }

    @Override
    public synchronized void close() {
        if (kernel == null) {
            return;
        }
        cl_kernel k = kernel;
        kernel = null;
        bound = new Object[0];
        CL.clReleaseKernel(k);
        backend.counters().liveKernels.decrementAndGet();
    }
}
