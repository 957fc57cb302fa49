package dev.clnorm.backend;

/**
 * One compute device behind the narrow interface the layer needs: memory, transfers, a fill and
 * the batch-norm operations. Implementations count their transfers and live objects so tests can
 * prove a training step never crosses to the host and that nothing leaks.
 */
public interface Backend extends AutoCloseable {

    DeviceInfo info();

    /** A new buffer of {@code elements} zeroed values; fails with a message naming bytes and the device limit when too large. */
    DeviceBuffer allocate(long elements, ElementType type);

    void upload(DeviceBuffer dst, float[] src);

    void download(DeviceBuffer src, float[] dst);

    void uploadInts(DeviceBuffer dst, int[] src);

    /** FLOAT64 buffers. */
    void uploadDoubles(DeviceBuffer dst, double[] src);

    void downloadDoubles(DeviceBuffer src, double[] dst);

    /** Raw 16-bit values (FLOAT16 or BFLOAT16 buffers). */
    void uploadShorts(DeviceBuffer dst, short[] src);

    void downloadShorts(DeviceBuffer src, short[] dst);

    void downloadInts(DeviceBuffer src, int[] dst);

    /** Device-side fill of a FLOAT32 or FLOAT64 buffer: no host transfer. */
    void fill(DeviceBuffer dst, float value);

    /** Device-side copy of {@code elements} values: no host transfer. */
    void copy(DeviceBuffer src, DeviceBuffer dst, long elements);

    /**
     * The bench's reference for backward, not a batch-norm operation: the memory traffic of a
     * backward whose x and dy do not stay in cache between its two passes (dx needs sums over the
     * whole channel first), with no arithmetic to speak of. One pass reads x and dy, summing them; a
     * second reads both again and writes dx = x + dy - mean(x + dy). FLOAT32 buffers of at least
     * {@code elements} values; no host transfer, no blocking wait.
     */
    void backwardFloor(DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dx, long elements);

    /**
     * The same reference for training forward: the traffic of a forward whose x does not stay in
     * cache between its statistics pass and its normalize pass. One pass reads x, summing it; a
     * second reads x again and writes y = x - mean(x). FLOAT32 buffers of at least {@code elements}
     * values; no host transfer, no blocking wait.
     */
    void forwardFloor(DeviceBuffer x, DeviceBuffer y, long elements);

    /** Operations for one layer of {@code channels} channels. */
    BatchNormOps createBatchNormOps(int channels);

    /** Waits until all enqueued work on this device is done. */
    void finish();

    /** Host-to-device plus device-to-host transfers so far. */
    long transferCount();

    /** Device buffers allocated and not yet closed. */
    long liveBuffers();

    /** Kernel objects (or their Java equivalents) created and not yet released. */
    long liveKernels();

    /** Kernel launches so far: proof that device code actually ran. */
    long kernelLaunches();

    boolean isClosed();

    /** Idempotent. Buffers still open become unusable. */
    @Override
    void close();
}
