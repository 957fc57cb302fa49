package dev.clnorm.backend.opencl;

import org.jocl.CL;
import org.jocl.Pointer;
import org.jocl.Sizeof;
import org.jocl.cl_device_id;
import org.jocl.cl_platform_id;

import java.nio.charset.StandardCharsets;

/** Typed wrappers over clGetPlatformInfo / clGetDeviceInfo. */
final class ClDeviceQuery {
    private ClDeviceQuery() {
    }

    static String platformString(cl_platform_id platform, int param) {
        long[] size = new long[1];
        ClException.check(CL.clGetPlatformInfo(platform, param, 0, null, size), "clGetPlatformInfo", null, "(platform)");
        byte[] buffer = new byte[(int) size[0]];
        ClException.check(CL.clGetPlatformInfo(platform, param, buffer.length, Pointer.to(buffer), null),
                "clGetPlatformInfo", null, "(platform)");
        return cString(buffer);
    }

    static String deviceString(cl_device_id device, int param) {
        long[] size = new long[1];
        ClException.check(CL.clGetDeviceInfo(device, param, 0, null, size), "clGetDeviceInfo", null, "(device)");
        byte[] buffer = new byte[(int) size[0]];
        ClException.check(CL.clGetDeviceInfo(device, param, buffer.length, Pointer.to(buffer), null),
                "clGetDeviceInfo", null, "(device)");
        return cString(buffer);
    }

    static long deviceLong(cl_device_id device, int param) {
        long[] value = new long[1];
        ClException.check(CL.clGetDeviceInfo(device, param, Sizeof.cl_ulong, Pointer.to(value), null),
                "clGetDeviceInfo", null, "(device)");
        return value[0];
    }

    static int deviceInt(cl_device_id device, int param) {
        int[] value = new int[1];
        ClException.check(CL.clGetDeviceInfo(device, param, Sizeof.cl_uint, Pointer.to(value), null),
                "clGetDeviceInfo", null, "(device)");
        return value[0];
    }

    static long deviceSize(cl_device_id device, int param) {
        long[] value = new long[1];
        ClException.check(CL.clGetDeviceInfo(device, param, Sizeof.size_t, Pointer.to(value), null),
                "clGetDeviceInfo", null, "(device)");
        return value[0];
    }

    /** CL_DEVICE_MAX_WORK_ITEM_SIZES: the per-dimension limits on a work-group's extent. */
    static long[] maxWorkItemSizes(cl_device_id device) {
        int dims = deviceInt(device, CL.CL_DEVICE_MAX_WORK_ITEM_DIMENSIONS);
        long[] sizes = new long[dims];
        ClException.check(CL.clGetDeviceInfo(device, CL.CL_DEVICE_MAX_WORK_ITEM_SIZES,
                (long) Sizeof.size_t * dims, Pointer.to(sizes), null), "clGetDeviceInfo", null, "(device)");
        return sizes;
    }

    private static String cString(byte[] bytes) {
        int end = 0;
        while (end < bytes.length && bytes[end] != 0) {
            end++;
        }
        return new String(bytes, 0, end, StandardCharsets.UTF_8).trim();
    }
}
