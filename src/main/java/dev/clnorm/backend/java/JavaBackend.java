package dev.clnorm.backend.java;

import dev.clnorm.backend.Backend;
import dev.clnorm.backend.BatchNormOps;
import dev.clnorm.backend.Checks;
import dev.clnorm.backend.DeviceBuffer;
import dev.clnorm.backend.DeviceInfo;
import dev.clnorm.backend.ElementType;
import dev.clnorm.backend.ResourceCounters;

import java.util.Arrays;
import java.util.concurrent.ForkJoinPool;

/**
 * The pure-Java backend: heap arrays as device memory and a fork-join pool using every core.
 * Always available; chosen automatically when no OpenCL device exists.
 */
public final class JavaBackend implements Backend {
    /** Java arrays are int-indexed; leave headroom the VM reserves for array headers. */
    private static final long MAX_ARRAY_ELEMENTS = Integer.MAX_VALUE - 8L;

    private final ResourceCounters counters = new ResourceCounters();
    private final ForkJoinPool pool;
    private final DeviceInfo info;
    private volatile boolean closed;

    public JavaBackend() {
        this(Runtime.getRuntime().availableProcessors());
    }

    public JavaBackend(int threads) {
        this.pool = new ForkJoinPool(threads);
        long maxMemory = Runtime.getRuntime().maxMemory();
        this.info = new DeviceInfo("java", DeviceInfo.Kind.JAVA, "Java", System.getProperty("java.vendor"),
                "Java backend (" + threads + " threads)", "Java " + Runtime.version(), threads,
                maxMemory, Math.min(maxMemory, MAX_ARRAY_ELEMENTS * 4), 1, true, false, 0);
    }

    ResourceCounters counters() {
        return counters;
    }

    /**
     * The heap array behind a FLOAT32 buffer of this backend, for code that runs its own Java
     * operations on "device" memory (e.g. {@code dev.clnorm.train}). Owned by the buffer.
     */
    public float[] floatArray(DeviceBuffer buffer) {
        checkOpen();
        return cast(this, buffer, ElementType.FLOAT32, "buffer").floats();
    }

    /** The heap array behind an INT32 buffer of this backend. Owned by the buffer. */
    public int[] intArray(DeviceBuffer buffer) {
        checkOpen();
        return cast(this, buffer, ElementType.INT32, "buffer").ints();
    }

    /** Counts an operation run by code outside this package as a launch (kernelLaunches() stays truthful). */
    public void countLaunch() {
        counters.launches.incrementAndGet();
    }

    ForkJoinPool pool() {
        return pool;
    }

    void checkOpen() {
        if (closed) {
            throw new IllegalStateException("the Java backend has been closed");
        }
    }

    static JavaBuffer cast(Backend owner, DeviceBuffer buffer, ElementType type, String what) {
        Checks.usable(owner, buffer, type, what);
        return (JavaBuffer) buffer;
    }

    @Override
    public DeviceInfo info() {
        return info;
    }

    @Override
    public DeviceBuffer allocate(long elements, ElementType type) {
        checkOpen();
        Checks.allocationFits(elements, type, info);
        JavaBuffer buffer = new JavaBuffer(this, elements, type);
        counters.liveBuffers.incrementAndGet();
        return buffer;
    }

    @Override
    public void upload(DeviceBuffer dst, float[] src) {
        checkOpen();
        JavaBuffer b = cast(this, dst, ElementType.FLOAT32, "destination");
        Checks.sameLength(b, src.length, "upload");
        System.arraycopy(src, 0, b.floats(), 0, src.length);
        counters.transfers.incrementAndGet();
    }

    @Override
    public void download(DeviceBuffer src, float[] dst) {
        checkOpen();
        JavaBuffer b = cast(this, src, ElementType.FLOAT32, "source");
        Checks.sameLength(b, dst.length, "download");
        System.arraycopy(b.floats(), 0, dst, 0, dst.length);
        counters.transfers.incrementAndGet();
    }

    @Override
    public void uploadInts(DeviceBuffer dst, int[] src) {
        checkOpen();
        JavaBuffer b = cast(this, dst, ElementType.INT32, "destination");
        Checks.sameLength(b, src.length, "upload");
        System.arraycopy(src, 0, b.ints(), 0, src.length);
        counters.transfers.incrementAndGet();
    }

    @Override
    public void downloadInts(DeviceBuffer src, int[] dst) {
        checkOpen();
        JavaBuffer b = cast(this, src, ElementType.INT32, "source");
        Checks.sameLength(b, dst.length, "download");
        System.arraycopy(b.ints(), 0, dst, 0, dst.length);
        counters.transfers.incrementAndGet();
    }

    @Override
    public void uploadDoubles(DeviceBuffer dst, double[] src) {
        checkOpen();
        JavaBuffer b = cast(this, dst, ElementType.FLOAT64, "destination");
        Checks.sameLength(b, src.length, "upload");
        System.arraycopy(src, 0, b.doubles(), 0, src.length);
        counters.transfers.incrementAndGet();
    }

    @Override
    public void downloadDoubles(DeviceBuffer src, double[] dst) {
        checkOpen();
        JavaBuffer b = cast(this, src, ElementType.FLOAT64, "source");
        Checks.sameLength(b, dst.length, "download");
        System.arraycopy(b.doubles(), 0, dst, 0, dst.length);
        counters.transfers.incrementAndGet();
    }

    @Override
    public void uploadShorts(DeviceBuffer dst, short[] src) {
        checkOpen();
        JavaBuffer b = shortBuffer(dst, "destination");
        Checks.sameLength(b, src.length, "upload");
        System.arraycopy(src, 0, b.shorts(), 0, src.length);
        counters.transfers.incrementAndGet();
    }

    @Override
    public void downloadShorts(DeviceBuffer src, short[] dst) {
        checkOpen();
        JavaBuffer b = shortBuffer(src, "source");
        Checks.sameLength(b, dst.length, "download");
        System.arraycopy(b.shorts(), 0, dst, 0, dst.length);
        counters.transfers.incrementAndGet();
    }

    private JavaBuffer shortBuffer(DeviceBuffer b, String what) {
        if (b != null && b.type() != ElementType.FLOAT16 && b.type() != ElementType.BFLOAT16) {
            throw new IllegalArgumentException(what + " buffer holds " + b.type() + ", expected FLOAT16 or BFLOAT16");
        }
        return cast(this, b, b == null ? ElementType.FLOAT16 : b.type(), what);
    }

    @Override
    public void fill(DeviceBuffer dst, float value) {
        checkOpen();
        if (dst != null && dst.type() == ElementType.FLOAT64) {
            Arrays.fill(cast(this, dst, ElementType.FLOAT64, "destination").doubles(), value);
            return;
        }
        Arrays.fill(cast(this, dst, ElementType.FLOAT32, "destination").floats(), value);
    }

    @Override
    public void copy(DeviceBuffer src, DeviceBuffer dst, long elements) {
        checkOpen();
        float[] from = cast(this, src, ElementType.FLOAT32, "source").floats();
        float[] to = cast(this, dst, ElementType.FLOAT32, "destination").floats();
        if (elements > from.length || elements > to.length) {
            throw new IllegalArgumentException("copy of " + elements + " elements between buffers of "
                    + from.length + " and " + to.length);
        }
        // Parallel over contiguous chunks: this is the bench's bandwidth yardstick for the Java
        // backend, so it uses every core the way the batch-norm code does.
        int n = (int) elements;
        int chunks = copyChunks(n);
        if (chunks <= 1) {
            System.arraycopy(from, 0, to, 0, n);
            return;
        }
        long size = ((long) n + chunks - 1) / chunks;
        pool.submit(() -> java.util.stream.IntStream.range(0, chunks).parallel().forEach(k -> {
            int start = (int) (k * size);
            int end = (int) Math.min(n, start + size);
            System.arraycopy(from, start, to, start, end - start);
        })).join();
    }

    /**
     * Two parallel passes over the same contiguous chunks as {@link #copy}: the chunks' sums, then
     * dx = x + dy - mean, the loops of {@link RowKernels#best()} as the batch-norm code uses them.
     */
    @Override
    public void backwardFloor(DeviceBuffer xb, DeviceBuffer dyb, DeviceBuffer dxb, long elements) {
        checkOpen();
        float[] x = cast(this, xb, ElementType.FLOAT32, "x").floats();
        float[] dy = cast(this, dyb, ElementType.FLOAT32, "dy").floats();
        float[] dx = cast(this, dxb, ElementType.FLOAT32, "dx").floats();
        if (elements > Math.min(x.length, Math.min(dy.length, dx.length))) {
            throw new IllegalArgumentException("backward floor over " + elements + " elements with buffers of "
                    + x.length + ", " + dy.length + " and " + dx.length);
        }
        twoPasses((int) elements, (from, to) -> FLOOR_KERNELS.sumPair(x, dy, from, to),
                (from, to, mean) -> FLOOR_KERNELS.addPair(x, dy, dx, from, to, mean));
    }

    /** As {@link #backwardFloor}, for training forward: the chunks' sums of x, then y = x - mean. */
    @Override
    public void forwardFloor(DeviceBuffer xb, DeviceBuffer yb, long elements) {
        checkOpen();
        float[] x = cast(this, xb, ElementType.FLOAT32, "x").floats();
        float[] y = cast(this, yb, ElementType.FLOAT32, "y").floats();
        if (elements > Math.min(x.length, y.length)) {
            throw new IllegalArgumentException("forward floor over " + elements + " elements with buffers of "
                    + x.length + " and " + y.length);
        }
        twoPasses((int) elements, (from, to) -> FLOOR_KERNELS.sum(x, from, to),
                (from, to, mean) -> FLOOR_KERNELS.centre(x, y, from, to, mean));
    }

    /** A floor's first pass over [from, to): its sum. */
    @FunctionalInterface
    private interface ChunkSum {
        double sum(int from, int to);
    }

    /** A floor's second pass over [from, to), given the mean of the first. */
    @FunctionalInterface
    private interface ChunkApply {
        void apply(int from, int to, float mean);
    }

    /** The floors' two parallel passes over copy's chunks of n elements, the sums added in chunk order. */
    private void twoPasses(int n, ChunkSum first, ChunkApply second) {
        if (n == 0) {
            return;
        }
        int chunks = copyChunks(n);
        long size = ((long) n + chunks - 1) / chunks;
        double[] sums = new double[chunks];
        pool.submit(() -> java.util.stream.IntStream.range(0, chunks).parallel().forEach(k -> {
            int start = (int) Math.min(n, k * size);
            sums[k] = first.sum(start, (int) Math.min(n, start + size));
        })).join();
        double total = 0;
        for (double s : sums) {
            total += s;
        }
        float mean = (float) (total / n);
        pool.submit(() -> java.util.stream.IntStream.range(0, chunks).parallel().forEach(k -> {
            int start = (int) Math.min(n, k * size);
            second.apply(start, (int) Math.min(n, start + size), mean);
        })).join();
    }

    private static final RowKernels FLOOR_KERNELS = RowKernels.best();

    /** Contiguous chunks a copy-like pass over n elements is split into: 4 per thread, none too small. */
    private int copyChunks(int n) {
        return (int) Math.min(pool.getParallelism() * 4L, Math.max(1, n / COPY_CHUNK_MIN));
    }

    /** Below this many elements per chunk a parallel copy costs more than it saves. */
    private static final int COPY_CHUNK_MIN = 1 << 16;

    @Override
    public BatchNormOps createBatchNormOps(int channels) {
        checkOpen();
        return new JavaBatchNormOps(this, channels);
    }

    @Override
    public void finish() {
        checkOpen();
        // Every Java operation completes before it returns.
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
        closed = true;
        pool.shutdown();
    }

    @Override
    public String toString() {
        return info.describe();
    }
}
