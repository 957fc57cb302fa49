package dev.clnorm.backend.opencl;

import org.jocl.CL;
import org.jocl.Pointer;
import org.jocl.Sizeof;
import org.jocl.cl_device_id;
import org.jocl.cl_kernel;
import org.jocl.cl_program;

import java.nio.charset.StandardCharsets;

/** A built cl_program. Building failures carry the full build log. */
public final class ClProgram implements AutoCloseable {
    private final OpenClBackend backend;
    private cl_program program;

    private ClProgram(OpenClBackend backend, cl_program program) {
        this.backend = backend;
        this.program = program;
    }

    static ClProgram build(OpenClBackend backend, String source, String options) {
        String device = backend.info().name();
        int[] err = new int[1];
        cl_program program = CL.clCreateProgramWithSource(backend.context(), 1, new String[]{source}, null, err);
        ClException.check(err[0], "clCreateProgramWithSource", null, device);
        cl_device_id[] devices = {backend.device().device()};
        int code = CL.clBuildProgram(program, 1, devices, options, null, null);
        if (code != CL.CL_SUCCESS) {
            String log = buildLog(program, backend.device().device());
            CL.clReleaseProgram(program);
            throw new ClException(code, "clBuildProgram (options: \"" + options + "\")", null, device, log);
        }
        return new ClProgram(backend, program);
    }

    private static String buildLog(cl_program program, cl_device_id device) {
        long[] size = new long[1];
        if (CL.clGetProgramBuildInfo(program, device, CL.CL_PROGRAM_BUILD_LOG, 0, null, size) != CL.CL_SUCCESS) {
            return "(build log unavailable)";
        }
        byte[] bytes = new byte[(int) size[0]];
        if (CL.clGetProgramBuildInfo(program, device, CL.CL_PROGRAM_BUILD_LOG, bytes.length, Pointer.to(bytes), null)
                != CL.CL_SUCCESS) {
            return "(build log unavailable)";
        }
        int end = bytes.length;
        while (end > 0 && bytes[end - 1] == 0) {
            end--;
        }
        return new String(bytes, 0, end, StandardCharsets.UTF_8);
    }

    /**
     * A new kernel object owned by the caller (close it); an unknown name throws {@link ClException}
     * (CL_INVALID_KERNEL_NAME) naming the kernel and the device.
     */
    public ClKernel createKernel(String name) {
        String device = backend.info().name();
        int[] err = new int[1];
        cl_kernel kernel;
        synchronized (this) {
            if (program == null) {
                throw new IllegalStateException("program has been released");
            }
            kernel = CL.clCreateKernel(program, name, err);
        }
        ClException.check(err[0], "clCreateKernel", name, device);
        long[] wg = new long[1];
        int code = CL.clGetKernelWorkGroupInfo(kernel, backend.device().device(), CL.CL_KERNEL_WORK_GROUP_SIZE,
                Sizeof.size_t, Pointer.to(wg), null);
        if (code != CL.CL_SUCCESS) {
            CL.clReleaseKernel(kernel);
            ClException.check(code, "clGetKernelWorkGroupInfo", name, device);
        }
        backend.counters().liveKernels.incrementAndGet();
        return new ClKernel(backend, kernel, name, Math.min(wg[0], backend.info().maxWorkGroupSize()));
    }

    public synchronized boolean isClosed() {
        return program == null;
    }

    /**
     * Releases the program; kernels already created keep working. Programs from
     * {@link OpenClBackend#program} are cached by the backend, which builds a fresh one if a closed
     * program is asked for again. Idempotent.
     */
    @Override
    public synchronized void close() {
        if (program == null) {
            return;
        }
        CL.clReleaseProgram(program);
        program = null;
    }
}
