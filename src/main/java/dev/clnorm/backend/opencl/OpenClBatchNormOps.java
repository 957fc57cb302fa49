package dev.clnorm.backend.opencl;

import dev.clnorm.Geometry;
import dev.clnorm.backend.BatchNormBuffers;
import dev.clnorm.backend.BatchNormOps;
import dev.clnorm.backend.DeviceBuffer;
import dev.clnorm.backend.ElementType;

/**
 * Batch norm on one OpenCL device for one layer. Owns its kernel objects (so no other layer can
 * race on their arguments) and its scratch buffers for the per-work-group partials. Every call
 * only enqueues: no host transfer, no clFinish.
 *
 * <p>Launches: training forward = stats partials + finalize + normalize; backward = partials +
 * finalize + dx; inference = one elementwise kernel.
 */
final class OpenClBatchNormOps implements BatchNormOps {
    /** Reduction work-groups are capped here: enough to hide latency, small enough for local memory. */
    private static final int MAX_REDUCE_GROUP = 256;
    /** Each reduction work-item should see at least this many values before merging. */
    private static final int MIN_VALUES_PER_ITEM = 8;
    /** Upper bound on partial results per channel. */
    private static final int MAX_GROUPS_PER_CHANNEL = 1024;

    private final OpenClBackend backend;
    private final int channels;
    private final ClKernel statsPartials;
    private final ClKernel statsFinalize;
    private final ClKernel normalize;
    private final ClKernel inference;
    private final ClKernel backwardPartials;
    private final ClKernel backwardFinalize;
    private final ClKernel backwardDx;
    private ClBuffer partA;
    private ClBuffer partB;
    private ClBuffer partC;
    private boolean closed;

    OpenClBatchNormOps(OpenClBackend backend, int channels) {
        this.backend = backend;
        this.channels = channels;
        ClProgram program = backend.batchNormProgram();
        ClKernel[] made = new ClKernel[7];
        String[] names = {"bn_stats_partials", "bn_stats_finalize", "bn_normalize", "bn_inference",
                "bn_backward_partials", "bn_backward_finalize", "bn_backward_dx"};
        try {
            for (int k = 0; k < names.length; k++) {
                made[k] = program.createKernel(names[k]);
            }
        } catch (RuntimeException e) {
            for (ClKernel k : made) {
                if (k != null) {
                    k.close();
                }
            }
            throw e;
        }
        statsPartials = made[0];
        statsFinalize = made[1];
        normalize = made[2];
        inference = made[3];
        backwardPartials = made[4];
        backwardFinalize = made[5];
        backwardDx = made[6];
    }

    /** How a channel's m values are split across work-groups for a reduction. */
    private record ReducePlan(int local, int groups, int chunk) {
    }

    private ReducePlan reducePlan(Geometry g, ClKernel kernel) {
        int local = floorPow2((int) Math.min(MAX_REDUCE_GROUP, Math.min(kernel.maxWorkGroupSize(),
                backend.device().maxWorkItemSizes()[0])));
        long m = g.valuesPerChannel();
        // Enough work-groups in total to fill every compute unit a few times over.
        long target = Math.max(1, (long) backend.info().computeUnits() * 8 / Math.max(1, g.channels()));
        long byWork = Math.max(1, m / ((long) local * MIN_VALUES_PER_ITEM));
        int groups = (int) Math.min(MAX_GROUPS_PER_CHANNEL, Math.min(target, byWork));
        int chunk = (int) ((m + groups - 1) / groups);
        groups = (int) ((m + chunk - 1) / chunk);
        return new ReducePlan(local, groups, chunk);
    }

    private static int floorPow2(int v) {
        return Integer.highestOneBit(Math.max(1, v));
    }

    /** Global and local sizes for the 2-D elementwise kernels: (inner, rows). */
    private long[][] elementwiseRange(Geometry g, ClKernel kernel) {
        long[] maxItems = backend.device().maxWorkItemSizes();
        int budget = floorPow2((int) Math.min(256, kernel.maxWorkGroupSize()));
        int lx = (int) Math.min(Math.min(budget, Integer.highestOneBit(Math.max(1, g.inner() * 2 - 1))), maxItems[0]);
        lx = floorPow2(lx);
        int ly = (int) Math.max(1, Math.min(budget / lx, maxItems[1]));
        long rows = g.rows();
        long[] global = {roundUp(g.inner(), lx), roundUp(rows, ly)};
        return new long[][]{global, {lx, ly}};
    }

    private static long roundUp(long v, long multiple) {
        return (v + multiple - 1) / multiple * multiple;
    }

    /** Scratch for per-channel partials, grown (never shrunk) as shapes need. */
    private void ensurePartials(long perBuffer) {
        if (partA != null && partA.elements() >= perBuffer) {
            return;
        }
        releasePartials();
        partA = (ClBuffer) backend.allocate(perBuffer, ElementType.FLOAT32);
        partB = (ClBuffer) backend.allocate(perBuffer, ElementType.FLOAT32);
        partC = (ClBuffer) backend.allocate(perBuffer, ElementType.FLOAT32);
    }

    private void releasePartials() {
        for (ClBuffer b : new ClBuffer[]{partA, partB, partC}) {
            if (b != null) {
                b.close();
            }
        }
        partA = partB = partC = null;
    }

    private void check() {
        if (closed) {
            throw new IllegalStateException("batch-norm operations have been closed");
        }
        backend.checkOpen();
    }

    private ClBuffer f(DeviceBuffer b, String what) {
        return OpenClBackend.cast(backend, b, ElementType.FLOAT32, what);
    }

    @Override
    public synchronized void trainingForward(Geometry g, DeviceBuffer x, DeviceBuffer y, BatchNormBuffers s,
                                             float eps, float factor, boolean updateRunning) {
        check();
        ClBuffer xb = f(x, "x");
        ClBuffer yb = f(y, "y");
        ReducePlan plan = reducePlan(g, statsPartials);
        ensurePartials((long) plan.groups() * g.channels());

        statsPartials.arg(0, xb).arg(1, g.channels()).arg(2, g.inner()).arg(3, (int) g.valuesPerChannel())
                .arg(4, plan.chunk()).arg(5, partA).arg(6, partB).arg(7, partC)
                .localArg(8, 4L * plan.local()).localArg(9, 4L * plan.local()).localArg(10, 4L * plan.local());
        statsPartials.launch(new long[]{(long) plan.groups() * plan.local(), g.channels()},
                new long[]{plan.local(), 1});

        int local = floorPow2((int) Math.min(64, statsFinalize.maxWorkGroupSize()));
        statsFinalize.arg(0, xb).arg(1, g.channels()).arg(2, g.inner()).arg(3, plan.groups())
                .arg(4, partA).arg(5, partB).arg(6, partC).arg(7, eps).arg(8, factor).arg(9, updateRunning ? 1 : 0)
                .arg(10, f(s.saveMean(), "save_mean")).arg(11, f(s.saveMeanLo(), "save_mean_lo"))
                .arg(12, f(s.saveInvstd(), "save_invstd")).arg(13, f(s.runningMean(), "running_mean"))
                .arg(14, f(s.runningVar(), "running_var"))
                .arg(15, OpenClBackend.cast(backend, s.skippedUpdates(), ElementType.INT32, "skipped"));
        statsFinalize.launch(new long[]{roundUp(g.channels(), local)}, new long[]{local});

        long[][] range = elementwiseRange(g, normalize);
        normalize.arg(0, xb).arg(1, yb).arg(2, g.channels()).arg(3, g.inner()).arg(4, (int) g.rows())
                .arg(5, f(s.saveMean(), "save_mean")).arg(6, f(s.saveMeanLo(), "save_mean_lo"))
                .arg(7, f(s.saveInvstd(), "save_invstd")).arg(8, f(s.gamma(), "gamma")).arg(9, f(s.beta(), "beta"));
        normalize.launch(range[0], range[1]);
    }

    @Override
    public synchronized void inferenceForward(Geometry g, DeviceBuffer x, DeviceBuffer y, BatchNormBuffers s,
                                              float eps) {
        check();
        long[][] range = elementwiseRange(g, inference);
        inference.arg(0, f(x, "x")).arg(1, f(y, "y")).arg(2, g.channels()).arg(3, g.inner()).arg(4, (int) g.rows())
                .arg(5, f(s.runningMean(), "running_mean")).arg(6, f(s.runningVar(), "running_var")).arg(7, eps)
                .arg(8, f(s.gamma(), "gamma")).arg(9, f(s.beta(), "beta"));
        inference.launch(range[0], range[1]);
    }

    @Override
    public synchronized void backward(Geometry g, DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dx,
                                      BatchNormBuffers s, DeviceBuffer dgamma, DeviceBuffer dbeta) {
        check();
        ClBuffer xb = f(x, "x");
        ClBuffer dyb = f(dy, "dy");
        ClBuffer mean = f(s.saveMean(), "save_mean");
        ClBuffer meanLo = f(s.saveMeanLo(), "save_mean_lo");
        ClBuffer invstd = f(s.saveInvstd(), "save_invstd");
        ClBuffer dg = f(dgamma, "dgamma");
        ClBuffer db = f(dbeta, "dbeta");
        ReducePlan plan = reducePlan(g, backwardPartials);
        ensurePartials((long) plan.groups() * g.channels());

        backwardPartials.arg(0, xb).arg(1, dyb).arg(2, g.channels()).arg(3, g.inner())
                .arg(4, (int) g.valuesPerChannel()).arg(5, plan.chunk()).arg(6, mean).arg(7, meanLo).arg(8, invstd)
                .arg(9, partA).arg(10, partB).localArg(11, 4L * plan.local()).localArg(12, 4L * plan.local());
        backwardPartials.launch(new long[]{(long) plan.groups() * plan.local(), g.channels()},
                new long[]{plan.local(), 1});

        int local = floorPow2((int) Math.min(64, backwardFinalize.maxWorkGroupSize()));
        backwardFinalize.arg(0, g.channels()).arg(1, plan.groups()).arg(2, partA).arg(3, partB).arg(4, db).arg(5, dg);
        backwardFinalize.launch(new long[]{roundUp(g.channels(), local)}, new long[]{local});

        long[][] range = elementwiseRange(g, backwardDx);
        backwardDx.arg(0, xb).arg(1, dyb).arg(2, f(dx, "dx")).arg(3, g.channels()).arg(4, g.inner())
                .arg(5, (int) g.rows()).arg(6, (float) (1.0 / g.valuesPerChannel())).arg(7, mean).arg(8, meanLo)
                .arg(9, invstd).arg(10, f(s.gamma(), "gamma")).arg(11, db).arg(12, dg);
        backwardDx.launch(range[0], range[1]);
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        releasePartials();
        for (ClKernel k : new ClKernel[]{statsPartials, statsFinalize, normalize, inference, backwardPartials,
                backwardFinalize, backwardDx}) {
            k.close();
        }
    }

    int channels() {
        return channels;
    }
}
