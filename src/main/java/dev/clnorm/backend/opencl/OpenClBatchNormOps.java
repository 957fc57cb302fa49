package dev.clnorm.backend.opencl;

import dev.clnorm.Geometry;
import dev.clnorm.backend.BatchNormBuffers;
import dev.clnorm.backend.BatchNormOps;
import dev.clnorm.backend.DeviceBuffer;
import dev.clnorm.backend.DeviceInfo;
import dev.clnorm.backend.ElementType;
import dev.clnorm.backend.Epilogue;
import dev.clnorm.backend.RunningUpdate;

import java.util.HashMap;
import java.util.Map;

/**
 * Batch norm on one OpenCL device for one layer. Owns its kernel objects (no other layer can race
 * on their arguments), its partial-result scratch and its last-work-group counters. Every call
 * only enqueues: no host transfer, no clFinish.
 *
 * <p>Launches: training forward = statistics (with the per-channel merge and running-statistics
 * update done by the last work-group) + normalize; backward = gradient sums (merge likewise) + dx;
 * inference = one elementwise kernel.
 *
 * <p>Per shape the host picks the ROWS traversal (long contiguous rows, NCHW-like) or the COLS
 * traversal (short rows: channels-last, (N,C), small spatial extents) and per device the vector
 * width and work-group shape (see {@link Tuning}); kernels are compiled once per option set. On CPU
 * devices the passes of a channels-last / (N,C) shape are FLAT: each work-item streams its own
 * range of whole rows rather than a column strip.
 */
final class OpenClBatchNormOps implements BatchNormOps {
    private static final String[] KERNELS = {"bn_stats_rows", "bn_stats_cols", "bn_affine_rows", "bn_affine_cols",
            "bn_grad_rows", "bn_grad_cols", "bn_dx_rows", "bn_dx_cols", "bn_train_fused_rows",
            "bn_backward_fused_rows", "bn_saved_from_running", "bn_affine_flat", "bn_dx_flat", "bn_stats_flat", "bn_grad_flat", "bn_affine_flat_rows", "bn_stats_flat_rows",
            "bn_grad_flat_rows", "bn_dx_flat_rows", "bn_backward_blocks_rows"};

    /**
     * Largest per-channel working set for the fused per-channel kernels on CPU devices: the second
     * pass finds the channel in L2 or the shared L3 (POCL, 1.6 MB channels of 32x64x112x112: training
     * forward 0.91x, backward 0.93x the time of the separate passes, interleaved A/B); beyond the
     * caches it moves the same bytes as the separate passes.
     */
    static final long CPU_FUSE_BYTES = 1L << 24;

    private final OpenClBackend backend;
    private final Tuning tuning;
    /** Kernel sets by columns-per-work-item (1 or the vector width) and tensor storage type. */
    private final Map<Integer, Map<String, ClKernel>> kernels = new HashMap<>();
    private ClBuffer partA;
    private ClBuffer partB;
    private ClBuffer partC;
    private final ClBuffer statsCounter;
    private final ClBuffer gradCounter;
    private boolean closed;

    /**
     * Device-dependent choices. GPUs: float4 loads, 256-wide work-groups whose neighbouring work-items
     * touch neighbouring addresses. CPUs (POCL): float8 (AVX) and one work-item per work-group, so
     * each work-group is a plain loop streaming one contiguous range and needs no barriers.
     */
    record Tuning(int vec, int rowsLocal, int colsLx, int colsLy, int targetGroups, long fuseBytes,
                  int colsRowsPerGroup) {
        static Tuning of(DeviceInfo d, long[] maxItems, KernelStyle style) {
            int cus = Math.max(1, d.computeUnits());
            boolean cpu = style.cpuPlans(d.kind());
            if (cpu) {
                // Many work-groups per device: they balance the threads, and shorter sequential
                // streams per work-item keep the statistics' rounding small.
                // A channel whose working set fits FUSE_BYTES (the L2 of current x86 server cores)
                // is done by one work-group in one launch, its second pass served from cache.
                // COLS on a CPU: a work-group spans up to 256 column items (POCL runs them as a loop)
                // over a fixed block of 64 rows, so the block (64 rows of every column) stays in
                // cache while the work-items sweep it, instead of each work-item striding through
                // all rows on its own.
                return new Tuning(8, 1, 256, 1, cus * 32, CPU_FUSE_BYTES, 64);
            }
            int wg = (int) Math.min(256, Math.min(d.maxWorkGroupSize(), maxItems[0]));
            wg = Integer.highestOneBit(Math.max(1, wg));
            int lx = Math.min(32, wg);
            // No fusion on GPUs: their L2 is shared by all compute units, so a channel read once
            // is usually evicted before a second pass could reuse it.
            return new Tuning(4, wg, lx, Math.max(1, wg / lx), cus * 8, 0, 0);
        }
    }

    OpenClBatchNormOps(OpenClBackend backend, int channels) {
        this.backend = backend;
        this.tuning = Tuning.of(backend.info(), backend.device().maxWorkItemSizes(), backend.kernelStyle());
        ClBuffer a = null;
        ClBuffer b = null;
        try {
            a = (ClBuffer) backend.allocate(1, ElementType.INT32);
            b = (ClBuffer) backend.allocate(1, ElementType.INT32);
            kernelsFor(1, 0);
        } catch (RuntimeException e) {
            if (a != null) {
                a.close();
            }
            if (b != null) {
                b.close();
            }
            releaseKernels();
            throw e;
        }
        statsCounter = a;
        gradCounter = b;
    }

    /** Kernels for cw columns per work-item and tensor storage code (0 float32, 1 float16, 2 bfloat16, 3 float64). */
    private Map<String, ClKernel> kernelsFor(int cw, int storage) {
        int key = cw * 8 + storage;
        Map<String, ClKernel> set = kernels.get(key);
        if (set != null) {
            return set;
        }
        ClProgram program = backend.batchNormProgram(tuning.vec(), cw, storage);
        set = new HashMap<>();
        try {
            for (String name : KERNELS) {
                set.put(name, program.createKernel(name));
            }
        } catch (RuntimeException e) {
            set.values().forEach(ClKernel::close);
            throw e;
        }
        kernels.put(key, set);
        return set;
    }

    private static int pow2Floor(long v) {
        return Integer.highestOneBit((int) Math.max(1, Math.min(v, 1 << 30)));
    }

    private static long ceilDiv(long a, long b) {
        return (a + b - 1) / b;
    }

    // ------------------------------------------------------------------ plans

    /** ROWS decomposition: work-group (g, c) walks units [g*unitsPerGroup, ...) of channel c. */
    private record RowsPlan(int localSize, int groups, int segs, int segLen, int units, int unitsPerGroup) {
        long[] global(Geometry g) {
            return new long[]{(long) groups * localSize, g.channels()};
        }

        long[] localRange() {
            return new long[]{localSize, 1};
        }
    }

    /** COLS decomposition: (column items x row groups), work-groups (lx, ly). */
    private record ColsPlan(int cw, int lx, int ly, int columnItems, int rowGroups, int rowsPerGroup) {
        long[] global() {
            return new long[]{ceilDiv(columnItems, lx) * lx, (long) rowGroups * ly};
        }

        long[] localRange() {
            return new long[]{lx, ly};
        }
    }

    private boolean useRows(Geometry g) {
        return g.inner() >= (long) tuning.rowsLocal() * tuning.vec();
    }

    /**
     * Whether one work-group per channel can do a whole pass: the device allows fusion, there are
     * enough channels to keep every compute unit busy, and {@code arrays} float arrays of one
     * channel fit the cache budget.
     */
    private boolean useFused(Geometry g, int arrays, ElementType st) {
        return tuning.fuseBytes() > 0 && useRows(g)
                && g.channels() >= 2L * Math.max(1, backend.info().computeUnits())
                && g.valuesPerChannel() * Math.max(4L, st.bytes()) * arrays <= tuning.fuseBytes();
    }

    /**
     * Whether the passes of a COLS shape run FLAT (CPU devices, one channel per column, whole vectors
     * per row): a CPU streams a range of whole rows far better than a column strip.
     */
    private boolean useFlat(Geometry g) {
        return tuning.fuseBytes() > 0 && !useRows(g) && g.inner() == 1 && g.channels() % tuning.vec() == 0;
    }

    /** Work-items of the FLAT reductions: blocks of at least 16 rows each, as many as the device wants. */
    private int flatItems(Geometry g) {
        return (int) Math.max(1, Math.min(tuning.targetGroups(), ceilDiv(g.outer(), 16)));
    }

    /** Rows shorter than this are streamed as FLAT rows by CPU inference (see bn_affine_flat_rows). */
    static final int FLAT_ROWS_MAX_INNER = 4096;

    /**
     * Rows shorter than this use the FLAT rows reductions on CPUs instead of the fused per-channel
     * kernels (POCL, back to back: 7x7 and 14x14 rows faster, 28x28 slower).
     */
    static final int FLAT_ROWS_STATS_MAX_INNER = 512;

    private boolean useFlatRowsReductions(Geometry g) {
        return useFlatRows(g) && g.inner() < FLAT_ROWS_STATS_MAX_INNER;
    }

    /** Bytes of a block of channels in the short-rows backward: it stays in a core's L2 between passes. */
    static final long SHORT_BLOCK_BYTES = 1L << 18;

    /** Channels per block of the short-rows backward, {@code arrays} tensors of them per block. */
    private static int shortBlockChannels(Geometry g, int arrays, ElementType st) {
        long perChannel = g.valuesPerChannel() * Math.max(2L, st.bytes()) * arrays;
        return (int) Math.max(1, Math.min(g.channels(), SHORT_BLOCK_BYTES / Math.max(1, perChannel)));
    }

    /**
     * Whether the short-rows backward takes channel blocks: x and dy together exceed the device's cache
     * (else the separate passes' second read is served from it: 32x2048x7x7, 26 MB against POCL's
     * 35.75 MB, ran 1.12x slower in blocks, 32x1024x14x14, 51 MB, 0.88x), and there are at least four
     * blocks per compute unit to share out.
     */
    private boolean useShortBlocks(Geometry g, ElementType st) {
        long bytes = g.elements() * Math.max(2L, st.bytes()) * 2;
        return bytes > backend.info().cacheBytes()
                && ceilDiv(g.channels(), shortBlockChannels(g, 2, st)) >= 4L * Math.max(1, backend.info().computeUnits());
    }

    /** Work-items of the FLAT rows reductions: whole outer rows each. */
    private int flatRowsItems(Geometry g) {
        return (int) Math.max(1, Math.min(tuning.targetGroups(), g.outer()));
    }

    private boolean useFlatRows(Geometry g) {
        return tuning.fuseBytes() > 0 && useRows(g) && g.inner() < FLAT_ROWS_MAX_INNER;
    }

    /** Rows per work-item of the FLAT kernels. */
    private int flatRowsPerItem(Geometry g) {
        return (int) ceilDiv(g.outer(), flatItems(g));
    }

    private void launchFlat(ClKernel k, Geometry g) {
        k.launch(new long[]{flatItems(g)}, new long[]{1});
    }

    private long[] fusedGlobal(Geometry g) {
        return new long[]{tuning.rowsLocal(), g.channels()};
    }

    private long[] fusedLocal() {
        return new long[]{tuning.rowsLocal(), 1};
    }

    private RowsPlan rowsPlan(Geometry g, ClKernel kernel) {
        int local = Math.min(tuning.rowsLocal(), pow2Floor(kernel.maxWorkGroupSize()));
        int inner = g.inner();
        long perChannel = Math.max(1, ceilDiv(tuning.targetGroups(), g.channels()));
        int segs = 1;
        if (g.outer() < perChannel) {
            long wanted = ceilDiv(perChannel, g.outer());
            long most = Math.max(1, inner / ((long) local * tuning.vec()));
            segs = (int) Math.max(1, Math.min(wanted, most));
        }
        int segLen = (int) (ceilDiv(ceilDiv(inner, segs), tuning.vec()) * tuning.vec());
        segs = (int) ceilDiv(inner, segLen);
        int units = g.outer() * segs;
        int groups = (int) Math.max(1, Math.min(perChannel, units));
        int unitsPerGroup = (int) ceilDiv(units, groups);
        groups = (int) ceilDiv(units, unitsPerGroup);
        return new RowsPlan(local, groups, segs, segLen, units, unitsPerGroup);
    }

    private ColsPlan colsPlan(Geometry g, ClKernel kernel) {
        int columns = g.channels() * g.inner();
        int cw = g.inner() == 1 && g.channels() % tuning.vec() == 0 ? tuning.vec() : 1;
        int items = columns / cw;
        int budget = pow2Floor(kernel.maxWorkGroupSize());
        int lx = Math.min(Math.min(tuning.colsLx(), budget), Integer.highestOneBit(Math.max(1, items * 2 - 1)));
        int ly = Math.max(1, Math.min(tuning.colsLy(), budget / lx));
        long columnGroups = ceilDiv(items, lx);
        long wantedRowGroups = Math.max(1, ceilDiv(tuning.targetGroups(), columnGroups));
        int rowsPerGroup = tuning.colsRowsPerGroup() > 0 ? tuning.colsRowsPerGroup()
                : (int) Math.max(ly, ceilDiv(g.outer(), wantedRowGroups));
        int rowGroups = (int) ceilDiv(g.outer(), rowsPerGroup);
        return new ColsPlan(cw, lx, ly, items, rowGroups, rowsPerGroup);
    }

    /** Scratch for partials of the arithmetic type, grown (never shrunk) as shapes need. */
    private void ensurePartials(long perBuffer, ElementType type) {
        if (partA != null && partA.elements() >= perBuffer && partA.type() == type) {
            return;
        }
        releasePartials();
        partA = (ClBuffer) backend.allocate(perBuffer, type);
        partB = (ClBuffer) backend.allocate(perBuffer, type);
        partC = (ClBuffer) backend.allocate(perBuffer, type);
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

    /** A tensor argument stored as {@code type}. */
    private ClBuffer t(DeviceBuffer b, String what, ElementType type) {
        return OpenClBackend.cast(backend, b, type, what);
    }

    private ElementType storageOf(DeviceBuffer x) {
        if (!x.type().isTensorStorage()) {
            throw new IllegalArgumentException("x buffer holds " + x.type()
                    + ", expected FLOAT32, FLOAT16, BFLOAT16 or FLOAT64");
        }
        checkFloat64(x.type());
        return x.type();
    }

    private void checkFloat64(ElementType type) {
        if (type == ElementType.FLOAT64 && !backend.info().fp64()) {
            throw new IllegalArgumentException("FLOAT64 tensors need double precision (cl_khr_fp64), which "
                    + backend.info().describe() + " does not report");
        }
    }

    /** A parameter or statistics buffer of the arithmetic type that goes with storage {@code st}. */
    private ClBuffer p(DeviceBuffer b, String what, ElementType st) {
        return OpenClBackend.cast(backend, b, st.parameterType(), what);
    }

    /** A scalar kernel argument of type {@code real}: float, or double for float64 storage. */
    private static Object real(double v, ElementType st) {
        return st == ElementType.FLOAT64 ? (Object) v : (Object) (float) v;
    }

    /** Sets arguments in order starting at 0; ints, floats, doubles and buffers. */
    private static void args(ClKernel k, Object... values) {
        for (int i = 0; i < values.length; i++) {
            Object v = values[i];
            if (v instanceof Integer n) {
                k.arg(i, n.intValue());
            } else if (v instanceof Float x) {
                k.arg(i, x.floatValue());
            } else if (v instanceof Double x) {
                k.arg(i, x.doubleValue());
            } else if (v instanceof LocalBytes l) {
                k.localArg(i, l.bytes());
            } else {
                k.arg(i, (DeviceBuffer) v);
            }
        }
    }

    private record LocalBytes(long bytes) {
    }

    // ------------------------------------------------------------------ operations

    @Override
    public synchronized void trainingForward(Geometry geometry, DeviceBuffer x, DeviceBuffer y, BatchNormBuffers s,
                                             double eps, RunningUpdate update, Epilogue epilogue) {
        check();
        Geometry g = geometry.canonical();
        ElementType st = storageOf(x);
        ElementType pt = st.parameterType();
        int sc = st.storageCode();
        ClBuffer xb = t(x, "x", st);
        ClBuffer yb = t(y, "y", st);
        Object[] finalize = {real(eps, st), real(update.keep(), st), real(update.batchWeight(), st),
                update.enabled() ? 1 : 0, update.unbiasedVariance() ? 1 : 0};
        Object[] outputs = {p(s.saveMean(), "save_mean", st), p(s.saveMeanLo(), "save_mean_lo", st),
                p(s.saveInvstd(), "save_invstd", st), p(s.runningMean(), "running_mean", st),
                p(s.runningVar(), "running_var", st),
                OpenClBackend.cast(backend, s.skippedUpdates(), ElementType.INT32, "skipped")};
        Object[] fusedAct = forwardEpilogue(epilogue, xb);
        Object[] affine = concat(new Object[]{0, real(eps, st), s.saveMean(), s.saveMeanLo(), s.saveInvstd(),
                p(s.gamma(), "gamma", st), p(s.beta(), "beta", st)}, fusedAct);
        if (useFlatRowsReductions(g)) {
            Map<String, ClKernel> k = kernelsFor(1, sc);
            ClKernel stats = k.get("bn_stats_flat_rows");
            int items = flatRowsItems(g);
            ensurePartials((long) items * g.channels(), pt);
            args(stats, concat(new Object[]{xb, g.channels(), g.inner(), g.outer(), (int) ceilDiv(g.outer(), items)},
                    finalize, new Object[]{partA, partB, partC, statsCounter}, outputs,
                    new Object[]{new LocalBytes(4)}));
            stats.launch(new long[]{items}, new long[]{1});
            launchAffineFlatRows(k.get("bn_affine_flat_rows"), g, xb, yb, affine);
        } else if (useFused(g, 1, st)) {
            ClKernel fused = kernelsFor(1, sc).get("bn_train_fused_rows");
            long l = (long) pt.bytes() * tuning.rowsLocal();
            args(fused, concat(new Object[]{xb, yb, g.channels(), g.inner(), g.outer()}, finalize, outputs,
                    new Object[]{s.gamma(), s.beta()}, fusedAct,
                    new Object[]{new LocalBytes(l), new LocalBytes(l), new LocalBytes(l)}));
            fused.launch(fusedGlobal(g), fusedLocal());
        } else if (useRows(g)) {
            Map<String, ClKernel> k = kernelsFor(1, sc);
            ClKernel stats = k.get("bn_stats_rows");
            RowsPlan p = rowsPlan(g, stats);
            ensurePartials((long) p.groups() * g.channels(), pt);
            long l = (long) pt.bytes() * p.localSize();
            args(stats, concat(new Object[]{xb, g.channels(), g.inner(), p.segs(), p.segLen(), p.units(),
                    p.unitsPerGroup()}, finalize, new Object[]{partA, partB, partC, statsCounter}, outputs,
                    new Object[]{new LocalBytes(l), new LocalBytes(l), new LocalBytes(l), new LocalBytes(4)}));
            stats.launch(p.global(g), p.localRange());
            ClKernel norm = k.get("bn_affine_rows");
            RowsPlan q = rowsPlan(g, norm);
            args(norm, concat(new Object[]{xb, yb, g.channels(), g.inner(), q.segs(), q.segLen(), q.units(),
                    q.unitsPerGroup()}, affine));
            norm.launch(q.global(g), q.localRange());
        } else if (useFlat(g)) {
            Map<String, ClKernel> k = kernelsFor(1, sc);
            ClKernel stats = k.get("bn_stats_flat");
            int items = flatItems(g);
            ensurePartials((long) items * g.channels(), pt);
            args(stats, concat(new Object[]{xb, g.channels(), g.outer(), flatRowsPerItem(g)}, finalize,
                    new Object[]{partA, partB, partC, statsCounter}, outputs, new Object[]{new LocalBytes(4)}));
            stats.launch(new long[]{items}, new long[]{1});
            ClKernel norm = k.get("bn_affine_flat");
            args(norm, concat(new Object[]{xb, yb, g.channels(), g.outer(), flatRowsPerItem(g)}, affine));
            launchFlat(norm, g);
        } else {
            ClKernel stats0 = kernelsFor(1, sc).get("bn_stats_cols");
            ColsPlan p = colsPlan(g, stats0);
            Map<String, ClKernel> k = kernelsFor(p.cw(), sc);
            ClKernel stats = k.get("bn_stats_cols");
            ensurePartials((long) p.rowGroups() * g.channels() * g.inner(), pt);
            long l = (long) pt.bytes() * p.lx() * p.ly();
            args(stats, concat(new Object[]{xb, g.channels(), g.inner(), g.outer(), p.rowsPerGroup()}, finalize,
                    new Object[]{partA, partB, partC, statsCounter}, outputs,
                    new Object[]{new LocalBytes(l), new LocalBytes(l), new LocalBytes(l), new LocalBytes(4)}));
            stats.launch(p.global(), p.localRange());
            ClKernel norm = k.get("bn_affine_cols");
            args(norm, concat(new Object[]{xb, yb, g.channels(), g.inner(), g.outer(), p.rowsPerGroup()}, affine));
            norm.launch(p.global(), p.localRange());
        }
    }

    @Override
    public synchronized void inferenceForward(Geometry geometry, DeviceBuffer x, DeviceBuffer y, BatchNormBuffers s,
                                              double eps, Epilogue epilogue) {
        check();
        Geometry g = geometry.canonical();
        ElementType st = storageOf(x);
        int sc = st.storageCode();
        ClBuffer xb = t(x, "x", st);
        ClBuffer yb = t(y, "y", st);
        // mean_lo is unused when from_running = 1; the running mean stands in for the argument.
        Object[] affine = concat(new Object[]{1, real(eps, st), p(s.runningMean(), "running_mean", st),
                s.runningMean(), p(s.runningVar(), "running_var", st), p(s.gamma(), "gamma", st),
                p(s.beta(), "beta", st)},
                forwardEpilogue(epilogue, xb));
        if (useFlatRows(g)) {
            launchAffineFlatRows(kernelsFor(1, sc).get("bn_affine_flat_rows"), g, xb, yb, affine);
        } else if (useRows(g)) {
            ClKernel norm = kernelsFor(1, sc).get("bn_affine_rows");
            RowsPlan q = rowsPlan(g, norm);
            args(norm, concat(new Object[]{xb, yb, g.channels(), g.inner(), q.segs(), q.segLen(), q.units(),
                    q.unitsPerGroup()}, affine));
            norm.launch(q.global(g), q.localRange());
        } else if (useFlat(g)) {
            ClKernel norm = kernelsFor(1, sc).get("bn_affine_flat");
            args(norm, concat(new Object[]{xb, yb, g.channels(), g.outer(), flatRowsPerItem(g)}, affine));
            launchFlat(norm, g);
        } else {
            ColsPlan p = colsPlan(g, kernelsFor(1, sc).get("bn_affine_cols"));
            ClKernel norm = kernelsFor(p.cw(), sc).get("bn_affine_cols");
            args(norm, concat(new Object[]{xb, yb, g.channels(), g.inner(), g.outer(), p.rowsPerGroup()}, affine));
            norm.launch(p.global(), p.localRange());
        }
    }

    @Override
    public synchronized void backward(Geometry geometry, DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dx,
                                      BatchNormBuffers s, DeviceBuffer dgamma, DeviceBuffer dbeta,
                                      boolean statsConstant, Epilogue epilogue) {
        check();
        Geometry g = geometry.canonical();
        ElementType st = storageOf(x);
        int sc = st.storageCode();
        ClBuffer xb = t(x, "x", st);
        ClBuffer dyb = t(dy, "dy", st);
        ClBuffer dxb = t(dx, "dx", st);
        ElementType pt = st.parameterType();
        ClBuffer db = p(dbeta, "dbeta", st);
        ClBuffer dg = p(dgamma, "dgamma", st);
        Object[] stats = {p(s.saveMean(), "save_mean", st), p(s.saveMeanLo(), "save_mean_lo", st),
                p(s.saveInvstd(), "save_invstd", st)};
        // 1/m scales the mean and variance terms of dx; constant statistics have none.
        Object invM = real(statsConstant ? 0.0 : 1.0 / g.valuesPerChannel(), st);
        // Unused epilogue buffers get x as a stand-in argument; the kernels never touch them.
        Object[] gradAct = {epilogue.relu() ? t(epilogue.output(), "y", st) : xb, epilogue.backwardBits()};
        Object[] dxAct = {gradAct[0], gradAct[1],
                epilogue.residualGrad() != null ? t(epilogue.residualGrad(), "dresidual", st) : dxb};
        Object[] dxArgs = concat(new Object[]{invM, s.saveMean(), s.saveMeanLo(), s.saveInvstd(),
                p(s.gamma(), "gamma", st), db, dg}, dxAct);
        if (useFlatRowsReductions(g) && useShortBlocks(g, st)) {
            ClKernel blocks = kernelsFor(1, sc).get("bn_backward_blocks_rows");
            int k = shortBlockChannels(g, 2, st);
            args(blocks, concat(new Object[]{xb, dyb, dxb, g.channels(), g.inner(), g.outer(), k}, dxArgs));
            blocks.launch(new long[]{ceilDiv(g.channels(), k)}, new long[]{1});
        } else if (useFlatRowsReductions(g)) {
            Map<String, ClKernel> k = kernelsFor(1, sc);
            ClKernel grad = k.get("bn_grad_flat_rows");
            int items = flatRowsItems(g);
            ensurePartials((long) items * g.channels(), pt);
            args(grad, concat(new Object[]{xb, dyb, g.channels(), g.inner(), g.outer(), (int) ceilDiv(g.outer(), items)},
                    stats, new Object[]{partA, partB, gradCounter, db, dg}, gradAct, new Object[]{new LocalBytes(4)}));
            grad.launch(new long[]{items}, new long[]{1});
            ClKernel dxk = k.get("bn_dx_flat_rows");
            int rowsTotal = g.outer() * g.channels();
            int dxItems = (int) Math.max(1, Math.min(tuning.targetGroups(), rowsTotal));
            args(dxk, concat(new Object[]{xb, dyb, dxb, g.channels(), g.inner(), rowsTotal,
                    (int) ceilDiv(rowsTotal, dxItems)}, dxArgs));
            dxk.launch(new long[]{dxItems}, new long[]{1});
        } else if (useFused(g, 2, st)) {
            ClKernel fused = kernelsFor(1, sc).get("bn_backward_fused_rows");
            long l = (long) pt.bytes() * tuning.rowsLocal();
            args(fused, concat(new Object[]{xb, dyb, dxb, g.channels(), g.inner(), g.outer(), invM, s.saveMean(),
                    s.saveMeanLo(), s.saveInvstd(), s.gamma(), db, dg}, dxAct, new Object[]{new LocalBytes(l), new LocalBytes(l)}));
            fused.launch(fusedGlobal(g), fusedLocal());
        } else if (useRows(g)) {
            Map<String, ClKernel> k = kernelsFor(1, sc);
            ClKernel grad = k.get("bn_grad_rows");
            RowsPlan p = rowsPlan(g, grad);
            ensurePartials((long) p.groups() * g.channels(), pt);
            long l = (long) pt.bytes() * p.localSize();
            args(grad, concat(new Object[]{xb, dyb, g.channels(), g.inner(), p.segs(), p.segLen(), p.units(),
                    p.unitsPerGroup()}, stats, new Object[]{partA, partB, gradCounter, db, dg}, gradAct,
                    new Object[]{new LocalBytes(l), new LocalBytes(l), new LocalBytes(4)}));
            grad.launch(p.global(g), p.localRange());
            ClKernel dxk = k.get("bn_dx_rows");
            RowsPlan q = rowsPlan(g, dxk);
            args(dxk, concat(new Object[]{xb, dyb, dxb, g.channels(), g.inner(), q.segs(), q.segLen(), q.units(),
                    q.unitsPerGroup()}, dxArgs));
            dxk.launch(q.global(g), q.localRange());
        } else if (useFlat(g)) {
            Map<String, ClKernel> k = kernelsFor(1, sc);
            ClKernel grad = k.get("bn_grad_flat");
            int items = flatItems(g);
            ensurePartials((long) items * g.channels(), pt);
            args(grad, concat(new Object[]{xb, dyb, g.channels(), g.outer(), flatRowsPerItem(g)}, stats,
                    new Object[]{partA, partB, gradCounter, db, dg}, gradAct, new Object[]{new LocalBytes(4)}));
            grad.launch(new long[]{items}, new long[]{1});
            ClKernel dxk = k.get("bn_dx_flat");
            args(dxk, concat(new Object[]{xb, dyb, dxb, g.channels(), g.outer(), flatRowsPerItem(g)}, dxArgs));
            launchFlat(dxk, g);
        } else {
            ColsPlan p = colsPlan(g, kernelsFor(1, sc).get("bn_grad_cols"));
            Map<String, ClKernel> k = kernelsFor(p.cw(), sc);
            ClKernel grad = k.get("bn_grad_cols");
            ensurePartials((long) p.rowGroups() * g.channels() * g.inner(), pt);
            long l = (long) pt.bytes() * p.lx() * p.ly();
            args(grad, concat(new Object[]{xb, dyb, g.channels(), g.inner(), g.outer(), p.rowsPerGroup()}, stats,
                    new Object[]{partA, partB, gradCounter, db, dg}, gradAct,
                    new Object[]{new LocalBytes(l), new LocalBytes(l), new LocalBytes(4)}));
            grad.launch(p.global(), p.localRange());
            ClKernel dxk = k.get("bn_dx_cols");
            args(dxk, concat(new Object[]{xb, dyb, dxb, g.channels(), g.inner(), g.outer(), p.rowsPerGroup()},
                    dxArgs));
            dxk.launch(p.global(), p.localRange());
        }
    }

    /** The FLAT rows elementwise pass: consecutive rows of the (outer * channels) row list per work-item. */
    private void launchAffineFlatRows(ClKernel norm, Geometry g, ClBuffer xb, ClBuffer yb, Object[] affine) {
        int rowsTotal = g.outer() * g.channels();
        int items = (int) Math.max(1, Math.min(tuning.targetGroups(), rowsTotal));
        args(norm, concat(new Object[]{xb, yb, g.channels(), g.inner(), rowsTotal, (int) ceilDiv(rowsTotal, items)},
                affine));
        norm.launch(new long[]{items}, new long[]{1});
    }

    /** (residual, act bits) kernel arguments; x stands in for an absent residual, never read. */
    private Object[] forwardEpilogue(Epilogue e, ClBuffer x) {
        return new Object[]{e.residual() != null ? t(e.residual(), "residual", x.type()) : x, e.forwardBits()};
    }

    @Override
    public synchronized void savedStatsFromRunning(BatchNormBuffers s, double eps) {
        check();
        // No tensor here: the statistics' own type says which program (float32 or float64) applies.
        ElementType st = s.runningMean().type() == ElementType.FLOAT64 ? ElementType.FLOAT64 : ElementType.FLOAT32;
        checkFloat64(st);
        ClKernel k = kernelsFor(1, st.storageCode()).get("bn_saved_from_running");
        int channels = (int) s.runningMean().elements();
        long local = Math.min(64, pow2Floor(k.maxWorkGroupSize()));
        args(k, channels, real(eps, st), p(s.runningMean(), "running_mean", st), p(s.runningVar(), "running_var", st),
                p(s.saveMean(), "save_mean", st), p(s.saveMeanLo(), "save_mean_lo", st),
                p(s.saveInvstd(), "save_invstd", st));
        k.launch(new long[]{ceilDiv(channels, local) * local}, new long[]{local});
    }

    private static Object[] concat(Object[]... parts) {
        int n = 0;
        for (Object[] p : parts) {
            n += p.length;
        }
        Object[] out = new Object[n];
        int at = 0;
        for (Object[] p : parts) {
            System.arraycopy(p, 0, out, at, p.length);
            at += p.length;
        }
        return out;
    }

    private void releaseKernels() {
        for (Map<String, ClKernel> set : kernels.values()) {
            set.values().forEach(ClKernel::close);
        }
        kernels.clear();
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        releasePartials();
        releaseKernels();
        statsCounter.close();
        gradCounter.close();
    }
}
