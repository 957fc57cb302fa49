package dev.clnorm.bench;

/**
 * One measured (device, shape, op): wall time per call (enqueue to completion, host included) and,
 * on OpenCL, device time from profiling events. GB/s uses the minimum-traffic model of {@link Op}.
 *
 * @param kernel   device-side time per call from profiling events, or null where there is none (Java)
 * @param copyGbps copy bandwidth of this device on the same element count: for an operation, the median of
 *                 copies timed between its own timed calls (see BenchRunner#measure); for the copy, its own
 * @param launchesPerCall kernel launches (OpenCL) or pool submissions (Java) per timed call, from the
 *                 backend's launch counter
 */
public record BenchResult(String deviceId, String deviceName, int[] shape, String layout, Op op, long elements,
                          Samples wall, Samples kernel, double copyGbps, double launchesPerCall) {

    public double gbps() {
        return op.bytesPerElement() * (double) elements / (wall.median() * 1e6);
    }

    /** GB/s over device time alone: what the kernels achieve without host overhead. */
    public Double kernelGbps() {
        return kernel == null ? null : op.bytesPerElement() * (double) elements / (kernel.median() * 1e6);
    }

    public double percentOfCopy() {
        return 100.0 * gbps() / copyGbps;
    }
}
