package dev.clnorm.backend.opencl;

import dev.clnorm.backend.DeviceInfo;
import org.jocl.cl_device_id;
import org.jocl.cl_platform_id;

/** One OpenCL device found by {@link OpenClDiscovery}, with the indices that select it. */
public record ClDevice(int platformIndex, int deviceIndex, cl_platform_id platform, cl_device_id device,
                       DeviceInfo info, long[] maxWorkItemSizes) {
}
