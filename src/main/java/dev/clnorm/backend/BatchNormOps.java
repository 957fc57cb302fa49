package dev.clnorm.backend;

import dev.clnorm.Geometry;

/**
 * The batch-norm computation on one device, owned by one layer: it may keep scratch buffers and
 * kernel objects sized for that layer between calls. The tensor type picks the arithmetic: float32
 * for FLOAT32/FLOAT16/BFLOAT16 tensors, with FLOAT32 parameter and statistics buffers; float64 for
 * FLOAT64 tensors, with FLOAT64 ones (eps and the update weights are rounded to the arithmetic
 * type). Callers validate shapes first; these methods assume geometry and buffers agree and that
 * every channel has at least one value.
 * Work is enqueued in order on the device; nothing here waits for the host or copies to it.
 */
public interface BatchNormOps extends AutoCloseable {

    /** Batch statistics, normalisation and (optionally) the running-statistics update. */
    void trainingForward(Geometry g, DeviceBuffer x, DeviceBuffer y, BatchNormBuffers state, double eps,
                         RunningUpdate update, Epilogue epilogue);

    /**
     * Makes the running statistics the saved ones (mean = running mean, invstd = 1/sqrt(running
     * var + eps)): the training forward of a frozen layer (useGlobalStats) normalises with them and
     * its backward treats them as constants.
     */
    void savedStatsFromRunning(BatchNormBuffers state, double eps);

    /** y from the running statistics. */
    void inferenceForward(Geometry g, DeviceBuffer x, DeviceBuffer y, BatchNormBuffers state, double eps,
                          Epilogue epilogue);

    /**
     * dx, dgamma and dbeta from the statistics saved by the last training forward. With
     * {@code statsConstant} (a frozen layer) the statistics did not depend on x, so
     * dx = gamma * invstd * dy.
     */
    void backward(Geometry g, DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dx, BatchNormBuffers state,
                  DeviceBuffer dgamma, DeviceBuffer dbeta, boolean statsConstant, Epilogue epilogue);

    @Override
    void close();
}
