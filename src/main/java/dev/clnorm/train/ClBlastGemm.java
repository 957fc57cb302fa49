package dev.clnorm.train;

import dev.clnorm.backend.DeviceBuffer;
import dev.clnorm.backend.opencl.OpenClBackend;
import org.jocl.blast.CLBlast;
import org.jocl.blast.CLBlastLayout;
import org.jocl.blast.CLBlastStatusCode;
import org.jocl.blast.CLBlastTranspose;

/**
 * SGEMM through CLBlast (JOCLBlast, {@code org.jocl:jocl-blast}), enqueued on the backend's own
 * queue so it orders with the training kernels without any host synchronisation.
 */
final class ClBlastGemm implements AutoCloseable {
    private static volatile String loadProblem;
    private static volatile boolean loaded;

    /**
     * CLBlast's tuning database has no entry for POCL's CPU device, and its fallback parameters run
     * at 1 to 8 GFLOPS there; for small products it also picks XgemmDirect, which is slower still on
     * POCL. These Xgemm parameters (64 x 64 tiles of 4 x 4 work-items, 8-wide vectors, k-blocks of 32)
     * and always taking the indirect path came out best in a small search on the 2-core AVX-512
     * development machine: 15 to 25 GFLOPS for the trainer's shapes. Set
     * {@code -Dclnorm.clblast.noPoclDefaults=true} to keep CLBlast's own choice.
     */
    static final String POCL_XGEMM = "GEMMK=0,KREG=1,KWG=32,KWI=2,MDIMA=4,MDIMC=4,MWG=64,NDIMB=4,NDIMC=4,NWG=64,"
            + "SA=0,SB=0,STRM=0,STRN=0,VWM=8,VWN=8";
    static final String POCL_GEMM_ROUTINE = "XGEMM_MIN_INDIRECT_SIZE=1";

    private final OpenClBackend backend;
    private boolean tuned;

    ClBlastGemm(OpenClBackend backend) {
        String problem = loadProblem();
        if (problem != null) {
            throw new IllegalStateException("CLBlast (JOCLBlast) is not usable here: " + problem);
        }
        this.backend = backend;
        applyOverrides(backend);
    }

    /**
     * Optional CLBlast kernel parameters from system properties, for tuning experiments:
     * {@code -Dclnorm.clblast.Xgemm=GEMMK=0,KREG=1,...} (every parameter of that kernel, CLBlast's
     * names) overrides CLBlast's database for this device via CLBlastOverrideParameters.
     */
    private void applyOverrides(OpenClBackend backend) {
        boolean pocl = isPoclCpu(backend);
        for (String kernel : new String[]{"Xgemm", "XgemmDirect", "GemmRoutine", "Copy", "Pad", "Transpose",
                "Padtranspose"}) {
            String spec = System.getProperty("clnorm.clblast." + kernel);
            if ((spec == null || spec.isBlank()) && pocl && !Boolean.getBoolean("clnorm.clblast.noPoclDefaults")) {
                spec = kernel.equals("Xgemm") ? POCL_XGEMM : kernel.equals("GemmRoutine") ? POCL_GEMM_ROUTINE : null;
            }
            if (spec == null || spec.isBlank()) {
                continue;
            }
            tuned = true;
            String[] parts = spec.split(",");
            String[] names = new String[parts.length];
            long[] values = new long[parts.length];
            for (int i = 0; i < parts.length; i++) {
                String[] kv = parts[i].trim().split("=");
                if (kv.length != 2) {
                    throw new IllegalArgumentException("clnorm.clblast." + kernel + ": expected NAME=VALUE pairs, got '"
                            + parts[i] + "'");
                }
                names[i] = kv[0].trim();
                values[i] = Long.parseLong(kv[1].trim());
            }
            int status = CLBlast.CLBlastOverrideParameters(backend.deviceId(), kernel, 32, names.length, names, values);
            if (status != CLBlastStatusCode.CLBlastSuccess) {
                throw new IllegalArgumentException("CLBlast rejected the " + kernel + " parameters '" + spec + "': "
                        + CLBlastStatusCode.stringFor(status) + " (" + status + ")");
            }
        }
    }

    /** Null when JOCLBlast's native libraries load on this machine, else why not. */
    static synchronized String loadProblem() {
        if (loaded) {
            return null;
        }
        if (loadProblem != null) {
            return loadProblem;
        }
        try {
            CLBlast.setExceptionsEnabled(false);  // runs the class initialiser: loads libclblast and the binding
            loaded = true;
            return null;
        } catch (LinkageError e) {
            loadProblem = "loading the JOCLBlast native library failed (" + e + "); JOCLBlast 1.5.2 bundles it "
                    + "for linux/windows/macOS x86_64 only";
            return loadProblem;
        }
    }

    static boolean isPoclCpu(OpenClBackend backend) {
        return backend.info().platform().contains("Portable Computing Language")
                && backend.info().kind() == dev.clnorm.backend.DeviceInfo.Kind.CPU;
    }

    String description() {
        return "CLBlast SGEMM via JOCLBlast" + (tuned ? (isPoclCpu(backend)
                && System.getProperty("clnorm.clblast.Xgemm") == null ? " (parameters tuned for POCL)"
                : " (parameters overridden)") : "");
    }

    void sgemm(boolean transA, boolean transB, int m, int n, int k, DeviceBuffer a, DeviceBuffer b, float beta,
               DeviceBuffer c) {
        if (m == 0 || n == 0) {
            return;
        }
        long lda = transA ? m : k;
        long ldb = transB ? k : n;
        int status = CLBlast.CLBlastSgemm(CLBlastLayout.CLBlastLayoutRowMajor,
                transA ? CLBlastTranspose.CLBlastTransposeYes : CLBlastTranspose.CLBlastTransposeNo,
                transB ? CLBlastTranspose.CLBlastTransposeYes : CLBlastTranspose.CLBlastTransposeNo,
                m, n, k, 1.0f, backend.memOf(a), 0, lda, backend.memOf(b), 0, ldb, beta, backend.memOf(c), 0, n,
                backend.commandQueue(), null);
        if (status != CLBlastStatusCode.CLBlastSuccess) {
            throw new IllegalStateException("CLBlast SGEMM (" + m + "x" + n + "x" + k + ", transA " + transA
                    + ", transB " + transB + ") failed on " + backend.info().name() + ": "
                    + CLBlastStatusCode.stringFor(status) + " (" + status + ")");
        }
        backend.countLaunch();
    }

    @Override
    public void close() {
        // CLBlast keeps its compiled programs in a process-wide cache; nothing per instance to free.
    }
}
