package dev.clnorm.backend;

/**
 * What the library knows about one compute device.
 *
 * @param id            selector that picks this device again, e.g. {@code java} or {@code opencl:0:1}
 * @param kind          GPU, ACCELERATOR, CPU (an OpenCL CPU device) or JAVA (the pure-Java backend)
 * @param platform      OpenCL platform name, or "Java" for the pure-Java backend
 * @param vendor        device vendor
 * @param name          device name
 * @param version       OpenCL version string, or the Java runtime version
 * @param computeUnits  compute units (OpenCL) or worker threads (Java)
 * @param globalMemBytes global memory size
 * @param maxAllocBytes  largest single allocation
 * @param maxWorkGroupSize largest work-group the device accepts (1 for Java)
 * @param fp64          whether double precision is supported
 * @param fp16          whether half precision arithmetic is supported
 * @param cacheBytes    the device's global memory cache (OpenCL CL_DEVICE_GLOBAL_MEM_CACHE_SIZE; on CPU
 *                      devices the last-level cache), 0 where unknown (Java)
 */
public record DeviceInfo(String id, Kind kind, String platform, String vendor, String name, String version,
                         int computeUnits, long globalMemBytes, long maxAllocBytes, long maxWorkGroupSize,
                         boolean fp64, boolean fp16, long cacheBytes) {

    public enum Kind { GPU, ACCELERATOR, CPU, JAVA }

    /** One line naming the device, for logs and tables. */
    public String describe() {
        return id + " [" + kind + "] " + name + " (" + platform + ")";
    }
}
