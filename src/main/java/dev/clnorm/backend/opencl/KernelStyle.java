package dev.clnorm.backend.opencl;

/**
 * Which family of launch plans an OpenCL backend uses. AUTO picks by device type: CPU devices get
 * one-work-item work-groups streaming contiguous ranges (and single-launch fused passes), GPUs and
 * accelerators get 256-wide work-groups with coalesced vector loads. Forcing GPU on a CPU device
 * runs the GPU plans (local-memory merges, many work-items per group) where no GPU is available:
 * the test suite does this on POCL so the GPU code paths are exercised in CI.
 */
public enum KernelStyle {
    AUTO,
    CPU,
    GPU;

    /** Whether this style runs the CPU launch plans on a device of the given kind. */
    public boolean cpuPlans(dev.clnorm.backend.DeviceInfo.Kind kind) {
        return this == CPU || (this == AUTO && kind == dev.clnorm.backend.DeviceInfo.Kind.CPU);
    }
}
