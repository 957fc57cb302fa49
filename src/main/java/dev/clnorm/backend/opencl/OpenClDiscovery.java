package dev.clnorm.backend.opencl;

import dev.clnorm.backend.DeviceInfo;
import org.jocl.CL;
import org.jocl.cl_device_id;
import org.jocl.cl_platform_id;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * Enumerates every OpenCL platform and device without ever letting a broken installation take
 * the JVM down: a missing native library, no platforms (CL_PLATFORM_NOT_FOUND_KHR, -1001) and
 * platforms without devices all become a {@link Result} with an explanation instead.
 */
public final class OpenClDiscovery {
    /** Reported by the ICD loader when no platform is installed. */
    static final int CL_PLATFORM_NOT_FOUND_KHR = -1001;

    private static volatile Result cached;

    private OpenClDiscovery() {
    }

    /**
     * The devices found, and a human-readable note on anything that went wrong (null if nothing).
     * Platforms that failed are named in {@code problems}; the devices of healthy ones are kept.
     */
    public record Result(List<ClDevice> devices, List<String> problems) {
        public Result {
            devices = Collections.unmodifiableList(devices);
            problems = Collections.unmodifiableList(problems);
        }
    }

    /** Scans once per JVM; later calls return the same result. */
    public static Result scan() {
        Result r = cached;
        if (r == null) {
            synchronized (OpenClDiscovery.class) {
                r = cached;
                if (r == null) {
                    r = scanNow();
                    cached = r;
                }
            }
        }
        return r;
    }

    private static Result scanNow() {
        List<ClDevice> devices = new ArrayList<>();
        List<String> problems = new ArrayList<>();
        cl_platform_id[] platforms;
        try {
            CL.setExceptionsEnabled(false);
            int[] count = new int[1];
            int code = CL.clGetPlatformIDs(0, null, count);
            if (code == CL_PLATFORM_NOT_FOUND_KHR || (code == CL.CL_SUCCESS && count[0] == 0)) {
                problems.add("no OpenCL platform is installed (CL_PLATFORM_NOT_FOUND_KHR); "
                        + "on Debian/Ubuntu install one with: apt-get install pocl-opencl-icd ocl-icd-libopencl1");
                return new Result(devices, problems);
            }
            ClException.check(code, "clGetPlatformIDs", null, "(none)");
            platforms = new cl_platform_id[count[0]];
            ClException.check(CL.clGetPlatformIDs(platforms.length, platforms, null), "clGetPlatformIDs", null, "(none)");
        } catch (LinkageError e) {
            problems.add("the OpenCL library could not be loaded (" + e.getMessage() + "); "
                    + "on Debian/Ubuntu install it with: apt-get install ocl-icd-libopencl1 pocl-opencl-icd");
            return new Result(devices, problems);
        } catch (ClException e) {
            problems.add(e.getMessage());
            return new Result(devices, problems);
        }

        for (int p = 0; p < platforms.length; p++) {
            try {
                String platformName = ClDeviceQuery.platformString(platforms[p], CL.CL_PLATFORM_NAME);
                int[] count = new int[1];
                int code = CL.clGetDeviceIDs(platforms[p], CL.CL_DEVICE_TYPE_ALL, 0, null, count);
                if (code == CL.CL_DEVICE_NOT_FOUND || (code == CL.CL_SUCCESS && count[0] == 0)) {
                    problems.add("OpenCL platform " + p + " (" + platformName + ") has no devices");
                    continue;
                }
                ClException.check(code, "clGetDeviceIDs", null, "platform " + platformName);
                cl_device_id[] ids = new cl_device_id[count[0]];
                ClException.check(CL.clGetDeviceIDs(platforms[p], CL.CL_DEVICE_TYPE_ALL, ids.length, ids, null),
                        "clGetDeviceIDs", null, "platform " + platformName);
                for (int d = 0; d < ids.length; d++) {
                    devices.add(describe(p, d, platforms[p], platformName, ids[d]));
                }
            } catch (ClException | LinkageError e) {
                problems.add("OpenCL platform " + p + " could not be queried: " + e.getMessage());
            }
        }
        if (devices.isEmpty() && problems.isEmpty()) {
            problems.add("no OpenCL device found");
        }
        return new Result(devices, problems);
    }

    private static ClDevice describe(int p, int d, cl_platform_id platform, String platformName, cl_device_id id) {
        long type = ClDeviceQuery.deviceLong(id, CL.CL_DEVICE_TYPE);
        DeviceInfo.Kind kind;
        if ((type & CL.CL_DEVICE_TYPE_GPU) != 0) {
            kind = DeviceInfo.Kind.GPU;
        } else if ((type & CL.CL_DEVICE_TYPE_ACCELERATOR) != 0) {
            kind = DeviceInfo.Kind.ACCELERATOR;
        } else {
            kind = DeviceInfo.Kind.CPU;
        }
        String extensions = ClDeviceQuery.deviceString(id, CL.CL_DEVICE_EXTENSIONS);
        DeviceInfo info = new DeviceInfo("opencl:" + p + ":" + d, kind, platformName,
                ClDeviceQuery.deviceString(id, CL.CL_DEVICE_VENDOR),
                ClDeviceQuery.deviceString(id, CL.CL_DEVICE_NAME),
                ClDeviceQuery.deviceString(id, CL.CL_DEVICE_VERSION),
                ClDeviceQuery.deviceInt(id, CL.CL_DEVICE_MAX_COMPUTE_UNITS),
                ClDeviceQuery.deviceLong(id, CL.CL_DEVICE_GLOBAL_MEM_SIZE),
                ClDeviceQuery.deviceLong(id, CL.CL_DEVICE_MAX_MEM_ALLOC_SIZE),
                ClDeviceQuery.deviceSize(id, CL.CL_DEVICE_MAX_WORK_GROUP_SIZE),
                extensions.contains("cl_khr_fp64"),
                extensions.contains("cl_khr_fp16"),
                ClDeviceQuery.deviceLong(id, CL.CL_DEVICE_GLOBAL_MEM_CACHE_SIZE));
        return new ClDevice(p, d, platform, id, info, ClDeviceQuery.maxWorkItemSizes(id));
    }
}
