package dev.clnorm.backend.opencl;

import org.jocl.CL;

/**
 * An OpenCL call failed. Carries the CL error name, the operation, the kernel (if any), the
 * device, and for build failures the full build log, so a user's bug report says everything.
 */
public final class ClException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final int code;
    private final String operation;
    private final String kernel;
    private final String device;
    private final String buildLog;

    ClException(int code, String operation, String kernel, String device, String buildLog) {
        super(message(code, operation, kernel, device, buildLog));
        this.code = code;
        this.operation = operation;
        this.kernel = kernel;
        this.device = device;
        this.buildLog = buildLog;
    }

    private static String message(int code, String operation, String kernel, String device, String buildLog) {
        StringBuilder sb = new StringBuilder();
        sb.append(operation).append(" failed with ").append(errorName(code)).append(" (").append(code).append(')');
        if (kernel != null) {
            sb.append(" for kernel ").append(kernel);
        }
        sb.append(" on device ").append(device);
        if (buildLog != null) {
            sb.append("\n--- build log ---\n").append(buildLog.strip()).append("\n--- end of build log ---");
        }
        return sb.toString();
    }

    /** JOCL's name for a CL error code, e.g. CL_INVALID_WORK_GROUP_SIZE. */
    public static String errorName(int code) {
        try {
            return CL.stringFor_errorCode(code);
        } catch (LinkageError e) {
            return "CL error " + code;
        }
    }

    /** Throws unless {@code code} is CL_SUCCESS. */
    static void check(int code, String operation, String kernel, String device) {
        if (code != CL.CL_SUCCESS) {
            throw new ClException(code, operation, kernel, device, null);
        }
    }

    public int code() {
        return code;
    }

    public String errorName() {
        return errorName(code);
    }

    public String operation() {
        return operation;
    }

    /** The kernel involved, or null. */
    public String kernel() {
        return kernel;
    }

    public String device() {
        return device;
    }

    /** The compiler's output for build failures, otherwise null. */
    public String buildLog() {
        return buildLog;
    }
}
