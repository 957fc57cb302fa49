package dev.clnorm.backend.opencl;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;

/** Loads the .cl files packaged from opencl-kernels/ into the jar. */
public final class KernelSources {
    /** Class-path folder the build copies opencl-kernels/*.cl into. */
    static final String RESOURCE_DIR = "/dev/clnorm/kernels/";

    /** Shared helpers first, then the kernel files, in the order the kernels depend on them. */
    static final String[] BATCH_NORM_FILES = {"bn_common.cl", "bn_stats.cl", "bn_forward.cl", "bn_backward.cl",
            "bn_fused.cl"};

    private KernelSources() {
    }

    public static String load(String file) {
        try (InputStream in = KernelSources.class.getResourceAsStream(RESOURCE_DIR + file)) {
            if (in == null) {
                throw new IllegalStateException("kernel source " + file + " is missing from the class path ("
                        + RESOURCE_DIR + file + "); the jar was built without opencl-kernels/");
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read kernel source " + file, e);
        }
    }

    private static volatile String batchNormProgram;

    /** The full batch-norm program: every file concatenated, each marked with its name for build logs. */
    public static String batchNormProgram() {
        String s = batchNormProgram;
        if (s == null) {
            s = concatenate(BATCH_NORM_FILES);
            batchNormProgram = s;
        }
        return s;
    }

    /**
     * One program source from the given opencl-kernels/ files, in order, each marked with its name
     * for build logs (as the batch-norm program is). For programs other than batch norm, e.g. the
     * training kernels of {@code dev.clnorm.train}.
     */
    public static String program(String... files) {
        return concatenate(files);
    }

    private static String concatenate(String[] files) {
        StringBuilder sb = new StringBuilder();
        for (String file : files) {
            sb.append("// ---- ").append(file).append(" ----\n").append(load(file)).append('\n');
        }
        return sb.toString();
    }
}
