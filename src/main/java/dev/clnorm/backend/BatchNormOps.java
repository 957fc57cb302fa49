package dev.clnorm.backend;

import dev.clnorm.Geometry;

/**
 * The batch-norm computation on one device, owned by one layer: it may keep scratch buffers
 * and kernel objects sized for that layer between calls. Callers validate shapes first; these
 * methods assume geometry and buffers agree and that every channel has at least one value.
 * Work is enqueued in order on the device; nothing here waits for the host or copies to it.
 */
public interface BatchNormOps extends AutoCloseable {

    /**
     * Batch statistics, normalisation and (optionally) the running-statistics update.
     *
     * @param momentumFactor weight of the batch statistics in {@code running = (1-f)*running + f*batch}
     * @param updateRunning  whether to update running statistics (trackRunningStats)
     */
    void trainingForward(Geometry g, DeviceBuffer x, DeviceBuffer y, BatchNormBuffers state,
                         float eps, float momentumFactor, boolean updateRunning);

    /** y from the running statistics. */
    void inferenceForward(Geometry g, DeviceBuffer x, DeviceBuffer y, BatchNormBuffers state, float eps);

    /** dx, dgamma and dbeta from the statistics saved by the last training forward. */
    void backward(Geometry g, DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dx, BatchNormBuffers state,
                  DeviceBuffer dgamma, DeviceBuffer dbeta);

    @Override
    void close();
}
