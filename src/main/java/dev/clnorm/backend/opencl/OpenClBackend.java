package dev.clnorm.backend.opencl;

import dev.clnorm.backend.Backend;
import dev.clnorm.backend.BatchNormOps;
import dev.clnorm.backend.Checks;
import dev.clnorm.backend.DeviceBuffer;
import dev.clnorm.backend.DeviceInfo;
import dev.clnorm.backend.ElementType;
import dev.clnorm.backend.ResourceCounters;
import org.jocl.CL;
import org.jocl.Pointer;
import org.jocl.Sizeof;
import org.jocl.cl_command_queue;
import org.jocl.cl_context;
import org.jocl.cl_context_properties;
import org.jocl.cl_event;
import org.jocl.cl_mem;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * One OpenCL device: its context, one in-order command queue, and the programs built for it
 * (built once per option set and cached). Closing releases the queue, programs and context once.
 */
public final class OpenClBackend implements Backend {
    private final ClDevice device;
    private final ResourceCounters counters = new ResourceCounters();
    private final Map<String, ClProgram> programs = new HashMap<>();
    /** Profiling events of launches since {@link #startProfiling()}; null when not profiling. */
    private List<cl_event> profiled;
    private ClKernel copyKernel;
    /** The bench floors' kernels and partials, created on first use. */
    private Floors floors;
    private cl_context context;
    private cl_command_queue queue;
    private volatile boolean closed;

    private final KernelStyle kernelStyle;

    public OpenClBackend(ClDevice device) {
        this(device, KernelStyle.AUTO);
    }

    /** A backend whose batch-norm kernels use the given launch-plan family (see {@link KernelStyle}). */
    public OpenClBackend(ClDevice device, KernelStyle kernelStyle) {
        this.device = device;
        this.kernelStyle = kernelStyle;
        String name = device.info().name();
        int[] err = new int[1];
        cl_context_properties props = new cl_context_properties();
        props.addProperty(CL.CL_CONTEXT_PLATFORM, device.platform());
        context = CL.clCreateContext(props, 1, new org.jocl.cl_device_id[]{device.device()}, null, null, err);
        ClException.check(err[0], "clCreateContext", null, name);
        @SuppressWarnings("deprecation")
        cl_command_queue q = CL.clCreateCommandQueue(context, device.device(), CL.CL_QUEUE_PROFILING_ENABLE, err);
        if (err[0] != CL.CL_SUCCESS) {
            CL.clReleaseContext(context);
            ClException.check(err[0], "clCreateCommandQueue", null, name);
        }
        queue = q;
    }

    ClDevice device() {
        return device;
    }

    ResourceCounters counters() {
        return counters;
    }

    cl_context context() {
        checkOpen();
        return context;
    }

    cl_command_queue queue() {
        checkOpen();
        return queue;
    }

    /**
     * The in-order command queue, for code that enqueues its own work on this device (e.g. CLBlast
     * in {@code dev.clnorm.train}). Owned by this backend: never release it.
     */
    public cl_command_queue commandQueue() {
        return queue();
    }

    /** The cl_device_id of this backend's device (owned by the platform; never release it). */
    public org.jocl.cl_device_id deviceId() {
        return device.device();
    }

    /** The cl_mem behind a FLOAT32 or INT32 buffer of this backend; owned by the buffer, never release it. */
    public cl_mem memOf(DeviceBuffer buffer) {
        Checks.usable(this, buffer, buffer == null ? ElementType.FLOAT32 : buffer.type(), "buffer");
        return ((ClBuffer) buffer).mem();
    }

    /** Counts a kernel launch enqueued by code outside this package (kernelLaunches() stays truthful). */
    public void countLaunch() {
        counters.launches.incrementAndGet();
    }

    void checkOpen() {
        if (closed) {
            throw new IllegalStateException("OpenCL backend for " + device.info().name() + " has been closed");
        }
    }

    /**
     * The clnorm batch-norm program for this device with vector width {@code vec} (ROWS kernels),
     * {@code cw} columns per work-item (COLS kernels) and tensor storage type {@code storage}
     * (0 float32, 1 float16, 2 bfloat16, 3 float64), built on first use and cached.
     */
    ClProgram batchNormProgram(int vec, int cw, int storage) {
        return program(KernelSources.batchNormProgram(),
                "-cl-std=CL1.2 -DVEC=" + vec + " -DCW=" + cw + " -DSTORAGE=" + storage);
    }

    /**
     * Builds (or returns the cached build of) a program from source. Public so that tools and
     * tests can check that a broken source reports its build log.
     */
    public synchronized ClProgram program(String source, String options) {
        checkOpen();
        String key = options + '\u0000' + source;
        ClProgram p = programs.get(key);
        if (p == null || p.isClosed()) {  // a caller may have closed the cached program
            p = ClProgram.build(this, source, options);
            programs.put(key, p);
        }
        return p;
    }

    static ClBuffer cast(Backend owner, DeviceBuffer buffer, ElementType type, String what) {
        Checks.usable(owner, buffer, type, what);
        return (ClBuffer) buffer;
    }

    @Override
    public DeviceInfo info() {
        return device.info();
    }

    @Override
    public DeviceBuffer allocate(long elements, ElementType type) {
        checkOpen();
        Checks.allocationFits(elements, type, info());
        int[] err = new int[1];
        // OpenCL forbids zero-sized buffers; an empty tensor still gets a handle.
        long bytes = Math.max(elements * type.bytes(), type.bytes());
        cl_mem mem = CL.clCreateBuffer(context, CL.CL_MEM_READ_WRITE, bytes, null, err);
        ClException.check(err[0], "clCreateBuffer(" + bytes + " bytes)", null, info().name());
        counters.liveBuffers.incrementAndGet();
        ClBuffer buffer = new ClBuffer(this, mem, elements, type);
        try {
            zero(buffer, bytes);
        } catch (RuntimeException e) {
            buffer.close();
            throw e;
        }
        return buffer;
    }

    private void zero(ClBuffer buffer, long bytes) {
        // A one-byte pattern divides every size, including 2-byte types with an odd element count.
        int code = CL.clEnqueueFillBuffer(queue, buffer.mem(), Pointer.to(new byte[]{0}), 1, 0, bytes, 0, null, null);
        ClException.check(code, "clEnqueueFillBuffer", null, info().name());
    }

    @Override
    public void upload(DeviceBuffer dst, float[] src) {
        transfer(cast(this, dst, ElementType.FLOAT32, "destination"), Pointer.to(src), src.length, true);
    }

    @Override
    public void download(DeviceBuffer src, float[] dst) {
        transfer(cast(this, src, ElementType.FLOAT32, "source"), Pointer.to(dst), dst.length, false);
    }

    @Override
    public void uploadInts(DeviceBuffer dst, int[] src) {
        transfer(cast(this, dst, ElementType.INT32, "destination"), Pointer.to(src), src.length, true);
    }

    @Override
    public void downloadInts(DeviceBuffer src, int[] dst) {
        transfer(cast(this, src, ElementType.INT32, "source"), Pointer.to(dst), dst.length, false);
    }

    @Override
    public void uploadDoubles(DeviceBuffer dst, double[] src) {
        transfer(cast(this, dst, ElementType.FLOAT64, "destination"), Pointer.to(src), src.length, true);
    }

    @Override
    public void downloadDoubles(DeviceBuffer src, double[] dst) {
        transfer(cast(this, src, ElementType.FLOAT64, "source"), Pointer.to(dst), dst.length, false);
    }

    @Override
    public void uploadShorts(DeviceBuffer dst, short[] src) {
        transfer(shortBuffer(dst, "destination"), Pointer.to(src), src.length, true);
    }

    @Override
    public void downloadShorts(DeviceBuffer src, short[] dst) {
        transfer(shortBuffer(src, "source"), Pointer.to(dst), dst.length, false);
    }

    /** One blocking host-device copy of a whole buffer, counted; the host array must match its length. */
    private void transfer(ClBuffer b, Pointer host, int hostLength, boolean toDevice) {
        checkOpen();
        Checks.sameLength(b, hostLength, toDevice ? "upload" : "download");
        if (hostLength == 0) {
            return;
        }
        int code = toDevice
                ? CL.clEnqueueWriteBuffer(queue, b.mem(), CL.CL_TRUE, 0, b.bytes(), host, 0, null, null)
                : CL.clEnqueueReadBuffer(queue, b.mem(), CL.CL_TRUE, 0, b.bytes(), host, 0, null, null);
        ClException.check(code, toDevice ? "clEnqueueWriteBuffer" : "clEnqueueReadBuffer", null, info().name());
        counters.transfers.incrementAndGet();
    }

    private ClBuffer shortBuffer(DeviceBuffer b, String what) {
        if (b != null && b.type() != ElementType.FLOAT16 && b.type() != ElementType.BFLOAT16) {
            throw new IllegalArgumentException(what + " buffer holds " + b.type() + ", expected FLOAT16 or BFLOAT16");
        }
        return cast(this, b, b == null ? ElementType.FLOAT16 : b.type(), what);
    }

    @Override
    public void fill(DeviceBuffer dst, float value) {
        checkOpen();
        boolean wide = dst != null && dst.type() == ElementType.FLOAT64;
        ClBuffer b = cast(this, dst, wide ? ElementType.FLOAT64 : ElementType.FLOAT32, "destination");
        if (b.elements() == 0) {
            return;
        }
        Pointer pattern = wide ? Pointer.to(new double[]{value}) : Pointer.to(new float[]{value});
        int code = CL.clEnqueueFillBuffer(queue, b.mem(), pattern, wide ? Sizeof.cl_double : Sizeof.cl_float, 0,
                b.bytes(), 0, null, null);
        ClException.check(code, "clEnqueueFillBuffer", null, info().name());
    }

    /**
     * Copies with the copy kernel of opencl-kernels/copy.cl rather than clEnqueueCopyBuffer, so the
     * bench's bandwidth yardstick is ordinary kernel code like the batch-norm kernels.
     */
    @Override
    public void copy(DeviceBuffer src, DeviceBuffer dst, long elements) {
        checkOpen();
        ClBuffer from = cast(this, src, ElementType.FLOAT32, "source");
        ClBuffer to = cast(this, dst, ElementType.FLOAT32, "destination");
        if (elements > from.elements() || elements > to.elements()) {
            throw new IllegalArgumentException("copy of " + elements + " elements between buffers of "
                    + from.elements() + " and " + to.elements());
        }
        if (elements == 0) {
            return;
        }
        synchronized (this) {
            if (copyKernel == null) {
                copyKernel = program(KernelSources.load("copy.cl"), "-cl-std=CL1.2").createKernel("copy_floats");
            }
            long items = Math.max(elements / 4, elements % 4);
            long local = Math.min(256, Integer.highestOneBit((int) Math.max(1, copyKernel.maxWorkGroupSize())));
            copyKernel.arg(0, from).arg(1, to).arg(2, (int) elements);
            copyKernel.launch(new long[]{(items + local - 1) / local * local}, new long[]{local});
        }
    }

    /**
     * The floor kernels of opencl-kernels/bench_floor.cl, launched as the batch-norm kernels are on
     * this kind of device: on CPUs (POCL) 4 contiguous ranges per compute unit, one work-item each;
     * on GPUs 8 work-groups of up to 256 work-items per compute unit, striding by the grid.
     */
    @Override
    public void backwardFloor(DeviceBuffer xb, DeviceBuffer dyb, DeviceBuffer dxb, long elements) {
        checkOpen();
        ClBuffer x = cast(this, xb, ElementType.FLOAT32, "x");
        ClBuffer dy = cast(this, dyb, ElementType.FLOAT32, "dy");
        ClBuffer dx = cast(this, dxb, ElementType.FLOAT32, "dx");
        if (elements > Math.min(x.elements(), Math.min(dy.elements(), dx.elements()))) {
            throw new IllegalArgumentException("backward floor over " + elements + " elements with buffers of "
                    + x.elements() + ", " + dy.elements() + " and " + dx.elements());
        }
        if (elements == 0) {
            return;
        }
        synchronized (this) {
            Floors f = floors();
            f.backwardSums.arg(0, x).arg(1, dy).arg(2, (int) elements).arg(3, f.chunked).arg(4, f.partials)
                    .localArg(5, f.local * Sizeof.cl_float);
            f.backwardSums.launch(f.global(), f.localRange());
            f.backwardApply.arg(0, x).arg(1, dy).arg(2, dx).arg(3, (int) elements).arg(4, f.chunked)
                    .arg(5, f.partials).arg(6, f.groups).localArg(7, f.local * Sizeof.cl_float);
            f.backwardApply.launch(f.global(), f.localRange());
        }
    }

    /** As {@link #backwardFloor}, with x alone: y = x - mean(x). */
    @Override
    public void forwardFloor(DeviceBuffer xb, DeviceBuffer yb, long elements) {
        checkOpen();
        ClBuffer x = cast(this, xb, ElementType.FLOAT32, "x");
        ClBuffer y = cast(this, yb, ElementType.FLOAT32, "y");
        if (elements > Math.min(x.elements(), y.elements())) {
            throw new IllegalArgumentException("forward floor over " + elements + " elements with buffers of "
                    + x.elements() + " and " + y.elements());
        }
        if (elements == 0) {
            return;
        }
        synchronized (this) {
            Floors f = floors();
            f.forwardSums.arg(0, x).arg(1, (int) elements).arg(2, f.chunked).arg(3, f.partials)
                    .localArg(4, f.local * Sizeof.cl_float);
            f.forwardSums.launch(f.global(), f.localRange());
            f.forwardApply.arg(0, x).arg(1, y).arg(2, (int) elements).arg(3, f.chunked).arg(4, f.partials)
                    .arg(5, f.groups).localArg(6, f.local * Sizeof.cl_float);
            f.forwardApply.launch(f.global(), f.localRange());
        }
    }

    private Floors floors() {
        if (floors == null) {
            floors = new Floors();
        }
        return floors;
    }

    /** The four floor kernels and their partial sums (one per work-group), with the launch shape. */
    private final class Floors implements AutoCloseable {
        final ClKernel backwardSums;
        final ClKernel backwardApply;
        final ClKernel forwardSums;
        final ClKernel forwardApply;
        final ClBuffer partials;
        final long local;
        final int groups;
        final int chunked;

        Floors() {
            boolean cpu = kernelStyle.cpuPlans(info().kind());
            int cus = Math.max(1, info().computeUnits());
            ClProgram p = program(KernelSources.load("bench_floor.cl"), "-cl-std=CL1.2");
            List<AutoCloseable> made = new ArrayList<>();
            try {
                backwardSums = made(made, p.createKernel("floor_sums"));
                backwardApply = made(made, p.createKernel("floor_apply"));
                forwardSums = made(made, p.createKernel("forward_floor_sums"));
                forwardApply = made(made, p.createKernel("forward_floor_apply"));
                long most = Math.min(Math.min(backwardSums.maxWorkGroupSize(), backwardApply.maxWorkGroupSize()),
                        Math.min(forwardSums.maxWorkGroupSize(), forwardApply.maxWorkGroupSize()));
                local = cpu ? 1 : Math.min(256, Integer.highestOneBit((int) Math.max(1, most)));
                groups = cpu ? 4 * cus : 8 * cus;
                chunked = cpu ? 1 : 0;
                partials = made(made, (ClBuffer) allocate(groups, ElementType.FLOAT32));
            } catch (RuntimeException e) {
                for (AutoCloseable c : made) {
                    try {
                        c.close();
                    } catch (Exception suppressed) {
                        e.addSuppressed(suppressed);
                    }
                }
                throw e;
            }
        }

        private static <T extends AutoCloseable> T made(List<AutoCloseable> made, T thing) {
            made.add(thing);
            return thing;
        }

        long[] global() {
            return new long[]{groups * local};
        }

        long[] localRange() {
            return new long[]{local};
        }

        @Override
        public void close() {
            backwardSums.close();
            backwardApply.close();
            forwardSums.close();
            forwardApply.close();
            partials.close();
        }
    }

    @Override
    public BatchNormOps createBatchNormOps(int channels) {
        checkOpen();
        return new OpenClBatchNormOps(this, channels);
    }

    @Override
    public void finish() {
        checkOpen();
        ClException.check(CL.clFinish(queue), "clFinish", null, info().name());
    }

    /**
     * From now on every kernel launch records a profiling event, until {@link #stopProfiling()}.
     * For the bench: profiling adds a little host work per launch, so it stays off otherwise.
     */
    public synchronized void startProfiling() {
        checkOpen();
        if (profiled != null) {
            profiled.forEach(CL::clReleaseEvent);
        }
        profiled = new ArrayList<>();
    }

    /**
     * Waits for the recorded launches and returns their summed device execution time in
     * nanoseconds (CL_PROFILING_COMMAND_START to _END, per launch); stops profiling.
     */
    public synchronized long stopProfiling() {
        checkOpen();
        if (profiled == null) {
            throw new IllegalStateException("profiling was not started");
        }
        List<cl_event> events = profiled;
        profiled = null;
        long total = 0;
        try {
            if (!events.isEmpty()) {
                ClException.check(CL.clWaitForEvents(events.size(), events.toArray(new cl_event[0])),
                        "clWaitForEvents", null, info().name());
            }
            long[] start = new long[1];
            long[] end = new long[1];
            for (cl_event e : events) {
                ClException.check(CL.clGetEventProfilingInfo(e, CL.CL_PROFILING_COMMAND_START, Sizeof.cl_ulong,
                        Pointer.to(start), null), "clGetEventProfilingInfo", null, info().name());
                ClException.check(CL.clGetEventProfilingInfo(e, CL.CL_PROFILING_COMMAND_END, Sizeof.cl_ulong,
                        Pointer.to(end), null), "clGetEventProfilingInfo", null, info().name());
                total += end[0] - start[0];
            }
        } finally {
            events.forEach(CL::clReleaseEvent);
        }
        return total;
    }

    /** An event for the next launch when profiling, else null (no event is created). */
    synchronized cl_event profilingEvent() {
        if (profiled == null) {
            return null;
        }
        cl_event e = new cl_event();
        profiled.add(e);
        return e;
    }

    @Override
    public long transferCount() {
        return counters.transfers.get();
    }

    @Override
    public long liveBuffers() {
        return counters.liveBuffers.get();
    }

    @Override
    public long liveKernels() {
        return counters.liveKernels.get();
    }

    /** clSetKernelArg calls so far; a training loop reusing its tensors adds none after its first step. */
    public long kernelArgumentSets() {
        return counters.argumentSets.get();
    }

    @Override
    public long kernelLaunches() {
        return counters.launches.get();
    }

    @Override
    public boolean isClosed() {
        return closed;
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        CL.clFinish(queue);
        closed = true;
        if (copyKernel != null) {
            copyKernel.close();
        }
        if (floors != null) {
            floors.close();
            floors = null;
        }
        if (profiled != null) {
            profiled.forEach(CL::clReleaseEvent);
            profiled = null;
        }
        for (ClProgram p : programs.values()) {
            p.close();
        }
        programs.clear();
        // Objects still alive (buffers, kernels) hold their own references, so the context
        // survives until they are released too: releasing in any order is safe.
        CL.clReleaseCommandQueue(queue);
        CL.clReleaseContext(context);
        queue = null;
        context = null;
    }

    @Override
    public String toString() {
        return info().describe() + (kernelStyle == KernelStyle.AUTO ? "" : " [" + kernelStyle + "-style kernels]");
    }

    public KernelStyle kernelStyle() {
        return kernelStyle;
    }
}
