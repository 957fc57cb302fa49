package dev.clnorm.backend.java;

import dev.clnorm.Geometry;
import dev.clnorm.backend.BatchNormBuffers;
import dev.clnorm.backend.BatchNormOps;
import dev.clnorm.backend.DeviceBuffer;
import dev.clnorm.backend.ElementType;
import dev.clnorm.backend.Epilogue;
import dev.clnorm.backend.RunningUpdate;

import java.util.function.IntConsumer;
import java.util.stream.IntStream;

/**
 * Batch norm on the Java backend, parallel over all cores; the inner loops are {@link RowKernels}
 * (SIMD through the Vector API when available).
 *
 * <p>Three traversals, all streaming memory in order:
 * <ul>
 *   <li><b>fused</b> (NCHW-like, enough channels, a channel's data within {@link #FUSE_BYTES}): one
 *       task per channel does both passes back to back, the second served from cache; for rows
 *       shorter than {@link #SHORT_ROWS}, one task per block of channels walked sample by sample;</li>
 *   <li><b>rows</b> (inner &gt;= {@value #COLS_MAX_INNER}): the flat tensor is cut into fixed blocks;
 *       each block walks its contiguous row segments, one channel per segment;</li>
 *   <li><b>cols</b> (small inner: channels-last, (N,C)): each block is a range of outer rows with
 *       one accumulator per column (channel x inner position).</li>
 * </ul>
 * Within a traversal, partitions depend only on the geometry, never on the thread count, and
 * partials are merged in a fixed order; which traversal runs also depends on the thread count (fused
 * needs two channels per thread). So results are identical run to run, and across machines with the
 * same number of threads.
 *
 * <p>Statistics: runs of at most {@value #RUN} values give (sum of x - shift, sum of squared
 * deviations from the run's mean) in two passes, shift = the channel's first value; runs merge
 * with Chan's formula in double. The mean is kept as a float pair (hi + lo) like the OpenCL
 * kernels, so both backends normalise the same way.
 */
final class JavaBatchNormOps implements BatchNormOps {
    /** Inner extents below this use the column traversal. */
    static final int COLS_MAX_INNER = 16;
    /** Elements per block of the rows traversal, and the cols traversal's target per block. */
    private static final int BLOCK = 1 << 16;
    /** Longest run summed in float lanes before merging in double: bounds float rounding. */
    static final int RUN = 4096;
    /**
     * Elements per block of the cols traversal: as many as COL_BLOCK_MAX (2 MB of floats) while the
     * tensor still gives COL_BLOCKS_MIN blocks, at least BLOCK. Longer blocks are longer contiguous
     * streams per task and fewer partials for the serial merge (4096x1024: 256-row blocks instead of
     * 64, interleaved A/B in two runs: training forward 0.83-0.87x, backward 0.88-0.93x, the unchanged
     * backward floor 0.97-0.98x; 32x56x56x256 channels-last unchanged). COL_BLOCKS_MIN keeps up to
     * that many threads busy. Geometry alone decides.
     */
    private static final long COL_BLOCK_MAX = 8L * BLOCK;
    private static final long COL_BLOCKS_MIN = 16;
    /**
     * Rows per run of the cols traversal: each column's one-sweep float sums (x - shift and its
     * square, see {@link RowKernels#columnSums}) cover this many values before their merge in
     * double, as many as one float lane of a {@link #RUN} in the rows traversal. The merges cost
     * (one per column per run, in double): 64-row runs spent 0.8 ms of a 1.8 ms statistics pass on
     * 4096x1024, 256-row runs 0.15 ms (probe on the 2-core machine).
     */
    private static final int COL_RUN = 256;
    /** Rows whose mean is the shift of a cols block's first run. */
    private static final int PILOT_ROWS = 16;
    /**
     * Rows of a cols block's first run; the later ones take COL_RUN. A run's squared deviations are
     * taken as q - s^2 / rows from float sums about a shift, so the rounding in q (about
     * u * sqrt(rows) of q) weighs q / (run M2) = 1 + (run mean - shift)^2 / (run variance) times
     * more than in a two-pass sum. The first run's shift is the mean of its own first PILOT_ROWS
     * rows, within sqrt(FIRST_COL_RUN / PILOT_ROWS) run standard deviations of the run mean
     * (Cauchy-Schwarz): a factor of at most 5 (~1.1 for exchangeable rows). A later run's shift is
     * the block mean so far, and its distance d to the run mean also enters M2 through Chan's
     * rows * d^2 * before / total term: q is at most total / before <= (64 + 256) / 64 = 5 times
     * what the run adds to M2. So no data makes the single sweep cancel (a fixed shift such as the
     * channel's first value would, on an outlying first value: NumericsTest). The shift's own float
     * rounding only matters when the spread is at the mean's float resolution, where these sums are
     * exact. Each merge costs ~10 us per 1024 columns, hence two runs per 256-row block rather than
     * runs that double.
     */
    private static final int FIRST_COL_RUN = 64;
    /**
     * Samples whose mean shifts a short-rows block's first run, and that run's samples: the shift is
     * within sqrt(4) run standard deviations of the run mean, as with FIRST_COL_RUN. Later runs are
     * no longer than all before them (and at most RUN values per channel), so there q is at most
     * twice what the run adds to M2.
     */
    private static final int SHORT_PILOT_ROWS = 4;
    private static final int SHORT_FIRST_RUN = 16;
    /** Upper bound on blocks x accumulators, which bounds the partials' memory. */
    private static final long MAX_PARTIALS = 1L << 22;
    /**
     * Largest per-channel working set for which the fused traversal runs. Its second pass finds the
     * channel in the core's L2 or the shared L3 (1.6 MB channels of 32x64x112x112: training forward
     * 0.92x, backward 0.94-0.96x the time of the block traversal, interleaved A/B on the 2-core machine;
     * 5 MB channels of 20x6x65536: 0.95x). Where the caches cannot hold it, it moves the same bytes as
     * the block traversal, so a generous bound costs nothing.
     */
    static final long FUSE_BYTES = 1L << 24;

    /**
     * Rows shorter than this (7x7, 14x14) take the fused traversal in channel blocks walked in memory
     * order: one channel's rows lie a whole sample apart, and walking them channel by channel left
     * the loads waiting on memory (training forward on 32x1024x14x14 ran at twice the copy time on
     * one thread as on two, far from the memory's limit).
     */
    static final int SHORT_ROWS = 512;
    /**
     * Rows shorter than this (7x7) take that traversal with per-position sums over each block's span
     * ({@link #veryShortRowsTraining}); longer ones (14x14) keep per-row loops. Interleaved A/B on the
     * 2-core machine, four runs: 32x2048x7x7 training forward 0.80-0.92x, backward 0.77-0.98x the time
     * of per-row loops; 32x1024x14x14 1.04-1.09x both, two runs (twelve vectors a row, where the
     * span's per-position parameters and four-sample sweeps cost more than the row loops save).
     */
    static final int SPAN_ROWS = 128;
    /**
     * Fewest values of one sample a block of those traversals spans, where the channels allow. With
     * many samples, blocks sized by {@link #SHORT_BLOCK_BYTES} alone cut each sample's piece of every
     * array to a few hundred values (128x512x7x7 backward: 245, at twice its floor's time), too short
     * for the prefetchers to get going. At least 2048 (blocks of 1-4 MB there: past L2, so the second
     * pass reads from L3 or memory), interleaved A/B on the 2-core machine: 256x256x7x7 training forward
     * 0.51x, backward 0.43x the time; 128x512x7x7 0.79x, 0.62x; 128x256x14x14 0.87x, 0.82x;
     * 32x2048x7x7 and 32x1024x14x14, whose blocks already spanned about that much, 0.95-1.02x.
     * Blocks stay at most a channel count over twice the threads (see shortBlockChannels), so that
     * many cores are not left with a few long blocks (256x64x7x7 on 16 threads: 32 blocks of two
     * channels, not two blocks of up to 42).
     */
    static final int MIN_SPAN = 2048;
    /** Bytes of a block of channels in that traversal: it stays in a core's L2 between the passes. */
    private static final long SHORT_BLOCK_BYTES = 1L << 18;

    private static final RowKernels KERNELS = RowKernels.best();

    private final JavaBackend backend;
    private final JavaFloat64Ops float64;
    private final java.util.concurrent.atomic.AtomicReference<double[][]> sparePartials =
            new java.util.concurrent.atomic.AtomicReference<>();
    private boolean closed;

    JavaBatchNormOps(JavaBackend backend, int channels) {
        this.backend = backend;
        this.float64 = new JavaFloat64Ops(backend);
        backend.counters().liveKernels.incrementAndGet();
    }

    /** Which inner loops run: "vector" (Vector API) or "scalar". */
    static String kernelKind() {
        return KERNELS instanceof ScalarRowKernels ? "scalar" : "vector";
    }

    // ------------------------------------------------------------------ partition

    /** How the tensor is cut into blocks. */
    private record Plan(boolean cols, int blocks, long blockSize, int accumulators) {
        static Plan of(Geometry g) {
            if (g.inner() < COLS_MAX_INNER) {
                int columns = g.channels() * g.inner();
                long target = Math.max(BLOCK, Math.min(COL_BLOCK_MAX, g.elements() / COL_BLOCKS_MIN));
                long rowsPerBlock = Math.max(1, target / Math.max(1, columns));
                long blocks = (g.outer() + rowsPerBlock - 1) / rowsPerBlock;
                blocks = Math.max(1, Math.min(blocks, Math.max(1, MAX_PARTIALS / columns)));
                return new Plan(true, (int) blocks, (g.outer() + blocks - 1) / blocks, columns);
            }
            long total = g.elements();
            long blocks = Math.max(1, (total + BLOCK - 1) / BLOCK);
            blocks = Math.min(blocks, Math.max(1, MAX_PARTIALS / g.channels()));
            return new Plan(false, (int) blocks, (total + blocks - 1) / blocks, g.channels());
        }

        long from(int b, Geometry g) {
            return Math.min(b * blockSize, cols ? g.outer() : g.elements());
        }

        long to(int b, Geometry g) {
            return Math.min((b + 1) * blockSize, cols ? g.outer() : g.elements());
        }

        /** Channel of accumulator a. */
        int channelOf(int a, Geometry g) {
            return cols ? a / g.inner() : a;
        }
    }

    /** Receives one run of contiguous values of one channel: flat [start, end). */
    @FunctionalInterface
    private interface Segment {
        void run(int channel, int start, int end);
    }

    /** Row segments of flat range [from, to), cut to at most RUN values each. */
    private static void segments(Geometry g, long from, long to, Segment body) {
        int inner = g.inner();
        int c = g.channels();
        long e = from;
        while (e < to) {
            long row = e / inner;
            long end = Math.min(Math.min((row + 1) * inner, to), e + RUN);
            body.run((int) (row % c), (int) e, (int) end);
            e = end;
        }
    }

    private void parallel(int tasks, IntConsumer task) {
        backend.counters().launches.incrementAndGet();
        if (tasks == 1) {
            task.accept(0);
            return;
        }
        backend.pool().submit(() -> IntStream.range(0, tasks).parallel().forEach(task)).join();
    }

    /**
     * One task per channel with both passes back to back: rows traversal, enough channels for every
     * core, and {@code arrays} float arrays of one channel within {@link #FUSE_BYTES}.
     */
    private boolean fusable(Geometry g, int arrays) {
        return g.inner() >= COLS_MAX_INNER && g.channels() >= 2L * backend.pool().getParallelism()
                && g.valuesPerChannel() * 4L * arrays <= FUSE_BYTES;
    }

    /**
     * Three arrays of at least {@code length} doubles for per-block partials, kept between calls:
     * allocating (and so zeroing) three fresh 128 KB arrays cost 0.1-0.3 ms of a ~3.5 ms training
     * forward on 4096x1024 (2-core machine). Not zeroed: each block task clears its own slots.
     * A concurrent call finds none spare and allocates its own.
     */
    private double[][] partials(int length) {
        double[][] p = sparePartials.getAndSet(null);
        return p != null && p[0].length >= length ? p : new double[3][length];
    }

    /** Hands partials back for the next call, once the call no longer reads them. */
    private void recycle(double[][] p) {
        sparePartials.set(p);
    }

    private static void clear(double[][] partials, int from, int to) {
        for (double[] p : partials) {
            java.util.Arrays.fill(p, from, to, 0.0);
        }
    }

    private void check() {
        if (closed) {
            throw new IllegalStateException("batch-norm operations have been closed");
        }
        backend.checkOpen();
    }

    private float[] f(DeviceBuffer b, String what) {
        return JavaBackend.cast(backend, b, ElementType.FLOAT32, what).floats();
    }

    // ------------------------------------------------------------------ moments in double

    /** Chan's merge of (nb, mb, m2b) into slot `at` of the (n, mean, m2) arrays. */
    private static void merge(double[] n, double[] mean, double[] m2, int at, double nb, double mb, double m2b) {
        if (nb == 0) {
            return;
        }
        double total = n[at] + nb;
        double delta = mb - mean[at];
        double wb = nb / total;
        mean[at] += delta * wb;
        m2[at] += m2b + delta * delta * n[at] * wb;
        n[at] = total;
    }

    /**
     * Chan's merge of one run of {@code rows} rows of the cols traversal, given as the one-sweep
     * sums of {@link RowKernels#columnSums} about per-column shifts {@code runShift}, into the
     * accumulators at [base, base + cols) (means about {@code colShift}), every column of which has
     * already seen {@code before} rows: the weights are the same for every column, so the per-column
     * work has no division. Each column's next shift becomes its block mean so far (see
     * {@link #FIRST_COL_RUN} for why that keeps q - s^2 / rows accurate).
     */
    private static void mergeColumnRun(float[] sum, float[] sq, int rows, long before, float[] colShift,
                                       float[] runShift, double[] mean, double[] m2, int base, int cols) {
        double inv = 1.0 / rows;
        double total = before + rows;
        double wb = rows / total;
        double cross = before * wb;
        for (int j = 0; j < cols; j++) {
            double s = sum[j];
            double runMean = s * inv;
            double runM2 = Math.max(sq[j] * RowKernels.SQ_UNSCALE - s * runMean, 0);
            int at = base + j;
            double delta = ((double) runShift[j] - colShift[j]) + runMean - mean[at];
            mean[at] += delta * wb;
            m2[at] += runM2 + delta * delta * cross;
            runShift[j] = (float) (colShift[j] + mean[at]);
        }
    }

    /** Moments of channel values x[start, end) merged into slot `at`; scratch holds two doubles. */
    private static void mergeRun(float[] x, int start, int end, float shift, double[] scratch, double[] n,
                                 double[] mean, double[] m2, int at) {
        KERNELS.moments(x, start, end, shift, scratch);
        double len = end - start;
        merge(n, mean, m2, at, len, scratch[0] / len, scratch[1]);
    }

    /**
     * Saves channel c's statistics from merged (count, mean of x - shift, M2), and folds them into
     * the running statistics (weights and variance kind from the update) unless they are not finite,
     * in which case the skip is counted.
     */
    private static void finishChannel(int c, double count, double meanDev, double m2, float shift, float eps,
                                      RunningUpdate update, BatchNormArrays a) {
        // float32 layers pass float32 weights; the update runs in float32 as the frameworks' does.
        float keep = (float) update.keep();
        float weight = (float) update.batchWeight();
        double var = Math.max(m2 / count, 0);
        double fullMean = shift + meanDev;
        float hi = (float) fullMean;
        a.mean[c] = hi;
        a.meanLo[c] = (float) (fullMean - hi);
        a.invstd[c] = (float) (1.0 / Math.sqrt(var + eps));
        if (update.enabled()) {
            float fed = (float) (update.unbiasedVariance() ? Math.max(m2 / (count - 1), 0) : var);
            if (Float.isFinite(hi) && Float.isFinite(fed)) {
                a.rm[c] = keep * a.rm[c] + weight * hi;
                a.rv[c] = keep * a.rv[c] + weight * fed;
            } else {
                a.skipped[c] += 1;
            }
        }
    }

    /** The layer's buffers as arrays. */
    private final class BatchNormArrays {
        final float[] mean;
        final float[] meanLo;
        final float[] invstd;
        final float[] rm;
        final float[] rv;
        final int[] skipped;
        final float[] gamma;
        final float[] beta;

        BatchNormArrays(BatchNormBuffers s) {
            mean = f(s.saveMean(), "save_mean");
            meanLo = f(s.saveMeanLo(), "save_mean_lo");
            invstd = f(s.saveInvstd(), "save_invstd");
            rm = f(s.runningMean(), "running_mean");
            rv = f(s.runningVar(), "running_var");
            skipped = JavaBackend.cast(backend, s.skippedUpdates(), ElementType.INT32, "skipped").ints();
            gamma = f(s.gamma(), "gamma");
            beta = f(s.beta(), "beta");
        }
    }

    /**
     * Per-column values of per-channel ones, for the cols traversal (read only): the array itself
     * when there is one column per channel. (An index division per column here cost ~12 us per
     * call per array at 1024 channels, several times per 128x1024 step.)
     */
    private static float[] perColumn(float[] perChannel, Geometry g) {
        int inner = g.inner();
        if (inner == 1) {
            return perChannel;
        }
        float[] out = new float[g.channels() * inner];
        for (int c = 0, j = 0; c < g.channels(); c++) {
            for (int i = 0; i < inner; i++, j++) {
                out[j] = perChannel[c];
            }
        }
        return out;
    }

    // ------------------------------------------------------------------ training forward

    @Override
    public void trainingForward(Geometry geometry, DeviceBuffer xb, DeviceBuffer yb, BatchNormBuffers s,
                                double eps, RunningUpdate update, Epilogue epilogue) {
        check();
        Geometry g = geometry.canonical();
        if (isFloat64(xb)) {
            float64.trainingForward(g, xb, yb, s, eps, update, epilogue);
            return;
        }
        float[] x = in(xb, "x");
        float[] y = outArray(yb, "y");
        normalizeTraining(g, x, y, s, (float) eps, update);
        applyEpilogue(g, y, epilogue);
        store(yb, y);
    }

    private static boolean isFloat64(DeviceBuffer x) {
        return x != null && x.type() == ElementType.FLOAT64;
    }

    // ------------------------------------------------------------------ 16-bit tensors

    /**
     * A tensor's values as float32: the buffer's own array for FLOAT32, a decoded copy for FLOAT16 and
     * BFLOAT16 (the Java backend computes 16-bit tensors in float32 on converted copies; the OpenCL
     * kernels load and store 16-bit values directly).
     */
    private float[] in(DeviceBuffer b, String what) {
        JavaBuffer jb = JavaBackend.cast(backend, b, b == null ? ElementType.FLOAT32 : b.type(), what);
        if (b.type() == ElementType.FLOAT32) {
            return jb.floats();
        }
        if (!b.type().isTensorStorage()) {
            throw new IllegalArgumentException(what + " buffer holds " + b.type()
                    + ", expected FLOAT32, FLOAT16 or BFLOAT16");
        }
        short[] bits = jb.shorts();
        float[] out = new float[bits.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = b.type().decode(bits[i]);
        }
        return out;
    }

    /** Where to compute an output: the buffer's own array for FLOAT32, else scratch for {@link #store}. */
    private float[] outArray(DeviceBuffer b, String what) {
        JavaBuffer jb = JavaBackend.cast(backend, b, b == null ? ElementType.FLOAT32 : b.type(), what);
        return b.type() == ElementType.FLOAT32 ? jb.floats() : new float[(int) b.elements()];
    }

    /** Writes a computed output back to a 16-bit buffer (round to nearest even); no-op for FLOAT32. */
    private void store(DeviceBuffer b, float[] values) {
        if (b.type() == ElementType.FLOAT32) {
            return;
        }
        short[] bits = ((JavaBuffer) b).shorts();
        for (int i = 0; i < bits.length; i++) {
            bits[i] = b.type().encode(values[i]);
        }
    }

    private void normalizeTraining(Geometry g, float[] x, float[] y, BatchNormBuffers s, float eps,
                                   RunningUpdate update) {
        BatchNormArrays a = new BatchNormArrays(s);
        int nc = g.channels();
        int inner = g.inner();
        float[] shift = new float[nc];
        for (int c = 0; c < nc; c++) {
            shift[c] = x[c * inner];
        }

        if (fusable(g, 1) && inner < SPAN_ROWS) {
            veryShortRowsTraining(g, x, y, shift, eps, update, a);
            return;
        }
        if (fusable(g, 1) && inner < SHORT_ROWS) {
            shortRowsTraining(g, x, y, shift, eps, update, a);
            return;
        }
        if (fusable(g, 1)) {
            int rowStride = nc * inner;
            parallel(nc, c -> {
                double[] n = new double[1];
                double[] mean = new double[1];
                double[] m2 = new double[1];
                double[] scratch = new double[2];
                if (inner < RUN) {
                    // Rows of 512 to RUN values (shorter ones take shortRowsTraining): one run spans
                    // several rows, a few reductions and merges instead of one per row.
                    int perRun = RUN / inner;
                    for (int o = 0; o < g.outer(); o += perRun) {
                        int rows = Math.min(perRun, g.outer() - o);
                        KERNELS.momentsRows(x, o * rowStride + c * inner, rows, rowStride, inner, shift[c], scratch);
                        double len = (double) rows * inner;
                        merge(n, mean, m2, 0, len, scratch[0] / len, scratch[1]);
                    }
                } else {
                    for (int o = 0; o < g.outer(); o++) {
                        int start = o * rowStride + c * inner;
                        for (int e = start; e < start + inner; e += RUN) {
                            mergeRun(x, e, Math.min(start + inner, e + RUN), shift[c], scratch, n, mean, m2, 0);
                        }
                    }
                }
                finishChannel(c, n[0], mean[0], m2[0], shift[c], eps, update, a);
                for (int o = 0; o < g.outer(); o++) {
                    int start = o * rowStride + c * inner;
                    KERNELS.affine(x, y, start, start + inner, a.mean[c], a.meanLo[c], a.invstd[c], a.gamma[c],
                            a.beta[c]);
                }
            });
            return;
        }

        Plan plan = Plan.of(g);
        int acc = plan.accumulators();
        double[][] partials = partials(plan.blocks() * acc);
        double[] n = partials[0];
        double[] mean = partials[1];
        double[] m2 = partials[2];
        if (plan.cols()) {
            float[] colShift = perColumn(shift, g);
            parallel(plan.blocks(), b -> {
                float[] sum = new float[acc];
                float[] sq = new float[acc];
                int base = b * acc;
                clear(partials, base, base + acc);
                long first = plan.from(b, g);
                long last = plan.to(b, g);
                if (first == last) {
                    return;
                }
                // The first run's shifts: the mean of the block's first rows.
                int pilot = (int) Math.min(PILOT_ROWS, last - first);
                KERNELS.columnSums(x, (int) (first * acc), pilot, acc, acc, colShift, sum, sq);
                float[] runShift = new float[acc];
                for (int j = 0; j < acc; j++) {
                    runShift[j] = (float) (colShift[j] + (double) sum[j] / pilot);
                }
                for (long o = first; o < last; ) {
                    int rows = (int) Math.min(o == first ? FIRST_COL_RUN : COL_RUN, last - o);
                    KERNELS.columnSums(x, (int) (o * acc), rows, acc, acc, runShift, sum, sq);
                    mergeColumnRun(sum, sq, rows, o - first, colShift, runShift, mean, m2, base, acc);
                    o += rows;
                }
                java.util.Arrays.fill(n, base, base + acc, last - first);
            });
        } else {
            parallel(plan.blocks(), b -> {
                double[] scratch = new double[2];
                int base = b * acc;
                clear(partials, base, base + acc);
                segments(g, plan.from(b, g), plan.to(b, g),
                        (c, start, end) -> mergeRun(x, start, end, shift[c], scratch, n, mean, m2, base + c));
            });
        }
        if (plan.cols() && inner == 1) {
            // One column per channel: merge block by block; within a block every channel has the same count.
            double[] cm = new double[nc];
            double[] cm2 = new double[nc];
            double count = 0;
            for (int b = 0; b < plan.blocks(); b++) {
                double nb = n[b * acc];
                if (nb == 0) {
                    continue;
                }
                double total = count + nb;
                double wb = nb / total;
                double cross = count * wb;
                for (int c = 0; c < nc; c++) {
                    double delta = mean[b * acc + c] - cm[c];
                    cm[c] += delta * wb;
                    cm2[c] += m2[b * acc + c] + delta * delta * cross;
                }
                count = total;
            }
            for (int c = 0; c < nc; c++) {
                finishChannel(c, count, cm[c], cm2[c], shift[c], eps, update, a);
            }
        } else {
            double[] cn = new double[1];
            double[] cm = new double[1];
            double[] cm2 = new double[1];
            for (int c = 0; c < nc; c++) {
                cn[0] = 0;
                cm[0] = 0;
                cm2[0] = 0;
                int perChannel = plan.cols() ? inner : 1;
                for (int b = 0; b < plan.blocks(); b++) {
                    for (int i = 0; i < perChannel; i++) {
                        int at = b * acc + (plan.cols() ? c * inner + i : c);
                        // Column partials of the cols traversal are relative to the same channel shift.
                        merge(cn, cm, cm2, 0, n[at], mean[at], m2[at]);
                    }
                }
                finishChannel(c, cn[0], cm[0], cm2[0], shift[c], eps, update, a);
            }
        }
        recycle(partials);
        affine(g, plan, x, y, a.mean, a.meanLo, a.invstd, a.gamma, a.beta);
    }

    /**
     * Channels per block of the short-rows traversals: as many as keep the block's {@code arrays}
     * arrays within {@link #SHORT_BLOCK_BYTES}, but at least {@link #MIN_SPAN} values a sample, and
     * at most as many as leave two blocks per thread (where the channels allow each bound).
     */
    private int shortBlockChannels(Geometry g, int arrays) {
        long perChannel = g.valuesPerChannel() * 4L * arrays;
        long inCache = SHORT_BLOCK_BYTES / Math.max(1, perChannel);
        long atLeast = (MIN_SPAN + g.inner() - 1) / g.inner();
        long blocks = 2L * backend.pool().getParallelism();
        long atMost = (g.channels() + blocks - 1) / blocks;
        return (int) Math.max(1, Math.min(atMost, Math.max(inCache, atLeast)));
    }

    /**
     * Training forward for short rows: each task takes a block of channels and walks it sample by
     * sample (the block's rows of one sample are contiguous): one sweep of shifted sums per run of
     * samples (float lanes per channel, reduced into double and merged with Chan's formula once per
     * run), then the normalize pass, which finds the block in cache. A channel's arithmetic does not
     * depend on the block size. The shifts: each channel's mean over the first samples, then its
     * mean so far (see {@link #SHORT_FIRST_RUN}).
     */
    private void shortRowsTraining(Geometry g, float[] x, float[] y, float[] shift, float eps, RunningUpdate update,
                                   BatchNormArrays a) {
        int nc = g.channels();
        int inner = g.inner();
        int outer = g.outer();
        int rowStride = nc * inner;
        int k = shortBlockChannels(g, 1);
        parallel((nc + k - 1) / k, blk -> {
            int c0 = blk * k;
            int c1 = Math.min(nc, c0 + k);
            float[] lanes = new float[2 * (c1 - c0) * KERNELS.laneWidth()];
            shortBlockStatistics(c0, c1, inner, outer, shift, eps, update, a,
                    (o0, o1, runShift, sums) -> shiftedSums(x, o0, o1, c0, c1, inner, rowStride, runShift, lanes, sums));
            for (int o = 0; o < outer; o++) {
                for (int c = c0, at = o * rowStride + c0 * inner; c < c1; c++, at += inner) {
                    KERNELS.affine(x, y, at, at + inner, a.mean[c], a.meanLo[c], a.invstd[c], a.gamma[c], a.beta[c]);
                }
            }
        });
    }

    /**
     * One run's sums in a short-rows block: over samples [o0, o1), per channel i of the block,
     * sums[2 i] = the sum of x - runShift[i] and sums[2 i + 1] = that of its scaled square (overwritten).
     */
    @FunctionalInterface
    private interface BlockRunSums {
        void sums(int o0, int o1, float[] runShift, double[] sums);
    }

    /**
     * The statistics of channels [c0, c1) of a short-rows block, shared by both short-rows traversals
     * (they differ only in how a run is summed): the pilot shifts, then runs of samples merged with
     * Chan's formula, each run's shifts the means so far, then each channel finished.
     */
    private static void shortBlockStatistics(int c0, int c1, int inner, int outer, float[] shift, float eps,
                                             RunningUpdate update, BatchNormArrays a, BlockRunSums runSums) {
        int kk = c1 - c0;
        double[] n = new double[kk];
        double[] mean = new double[kk];
        double[] m2 = new double[kk];
        double[] sums = new double[2 * kk];
        float[] runShift = java.util.Arrays.copyOfRange(shift, c0, c1);
        int pilot = Math.min(SHORT_PILOT_ROWS, outer);
        runSums.sums(0, pilot, runShift, sums);
        pilotShifts(sums, (double) pilot * inner, shift, c0, runShift);
        int maxRun = Math.max(1, RUN / inner);
        for (int o = 0; o < outer; ) {
            int rows = Math.min(o == 0 ? SHORT_FIRST_RUN : Math.min(maxRun, o), outer - o);
            runSums.sums(o, o + rows, runShift, sums);
            mergeShortRun(sums, (double) rows * inner, shift, c0, runShift, n, mean, m2);
            o += rows;
        }
        for (int c = c0; c < c1; c++) {
            finishChannel(c, n[c - c0], mean[c - c0], m2[c - c0], shift[c], eps, update, a);
        }
    }

    /**
     * The first shifts of a short-rows block: channel c0 + i's shift moved by the mean of its pilot
     * values (sums[2 i] is their sum about shift[c0 + i], over {@code count} values).
     */
    private static void pilotShifts(double[] sums, double count, float[] shift, int c0, float[] runShift) {
        for (int i = 0; i < runShift.length; i++) {
            runShift[i] = (float) (shift[c0 + i] + sums[2 * i] / count);
        }
    }

    /**
     * Merges one run of a short-rows block into slots i of (n, mean, m2), means about shift[c0 + i]:
     * sums[2 i] and sums[2 i + 1] are channel c0 + i's sum of x - runShift[i] and of its scaled square
     * over {@code len} values. Each channel's next shift becomes its mean so far.
     */
    private static void mergeShortRun(double[] sums, double len, float[] shift, int c0, float[] runShift,
                                      double[] n, double[] mean, double[] m2) {
        for (int i = 0; i < runShift.length; i++) {
            double s = sums[2 * i];
            double runMean = s / len;
            double runM2 = Math.max(sums[2 * i + 1] * RowKernels.SQ_UNSCALE - s * runMean, 0);
            merge(n, mean, m2, i, len, ((double) runShift[i] - shift[c0 + i]) + runMean, runM2);
            runShift[i] = (float) (shift[c0 + i] + mean[i]);
        }
    }

    /**
     * Per channel c of [c0, c1), the sums of x - shift[c - c0] and of its scaled square over the rows
     * of samples [o0, o1), into sums[2 (c - c0)] and sums[2 (c - c0) + 1] (overwritten).
     */
    private static void shiftedSums(float[] x, int o0, int o1, int c0, int c1, int inner, int rowStride,
                                    float[] shift, float[] lanes, double[] sums) {
        int w = KERNELS.laneWidth();
        java.util.Arrays.fill(lanes, 0);
        java.util.Arrays.fill(sums, 0);
        for (int o = o0; o < o1; o++) {
            for (int c = c0, at = o * rowStride + c0 * inner; c < c1; c++, at += inner) {
                int i = c - c0;
                KERNELS.addShiftedSumsLanes(x, at, at + inner, shift[i], lanes, 2 * i * w, sums, 2 * i);
            }
        }
        for (int i = 0; i < c1 - c0; i++) {
            sums[2 * i] += laneTotal(lanes, 2 * i * w, w);
            sums[2 * i + 1] += laneTotal(lanes, (2 * i + 1) * w, w);
        }
    }

    /** Sum of lanes[at, at + w) in double, in index order. */
    private static double laneTotal(float[] lanes, int at, int w) {
        double t = 0;
        for (int j = at; j < at + w; j++) {
            t += lanes[j];
        }
        return t;
    }

    /** Backward for short rows, in the same channel blocks: gradient sums (lanes as in training), then dx. */
    private void shortRowsBackward(Geometry g, float[] x, float[] dy, float[] dx, float[] h, float[] l, float[] is,
                                   float[] gamma, float[] dgamma, float[] dbeta, float invM) {
        int nc = g.channels();
        int inner = g.inner();
        int outer = g.outer();
        int rowStride = nc * inner;
        int k = shortBlockChannels(g, 2);
        parallel((nc + k - 1) / k, blk -> {
            int c0 = blk * k;
            int c1 = Math.min(nc, c0 + k);
            int kk = c1 - c0;
            int w = KERNELS.laneWidth();
            double[] sums = new double[2 * kk];
            float[] lanes = new float[2 * kk * w];
            // Float lanes over runs of at most RUN values per channel, reduced into double once per run.
            int perRun = Math.max(1, RUN / inner);
            for (int o0 = 0; o0 < outer; o0 += perRun) {
                java.util.Arrays.fill(lanes, 0);
                for (int o = o0; o < Math.min(outer, o0 + perRun); o++) {
                    for (int c = c0, at = o * rowStride + c0 * inner; c < c1; c++, at += inner) {
                        KERNELS.addGradLanes(x, dy, at, at + inner, h[c], l[c], is[c], lanes, 2 * (c - c0) * w, sums,
                                2 * (c - c0));
                    }
                }
                for (int i = 0; i < kk; i++) {
                    sums[2 * i] += laneTotal(lanes, 2 * i * w, w);
                    sums[2 * i + 1] += laneTotal(lanes, (2 * i + 1) * w, w);
                }
            }
            for (int c = c0; c < c1; c++) {
                dbeta[c] = (float) sums[2 * (c - c0)];
                dgamma[c] = (float) sums[2 * (c - c0) + 1];
            }
            for (int o = 0; o < outer; o++) {
                for (int c = c0, at = o * rowStride + c0 * inner; c < c1; c++, at += inner) {
                    float scale = gamma[c] * is[c];
                    KERNELS.dx(x, dy, dx, at, at + inner, h[c], l[c], is[c], scale, dbeta[c] * invM, dgamma[c] * invM);
                }
            }
        });
    }

    /**
     * Training forward for rows shorter than {@link #SPAN_ROWS}, in the channel blocks of
     * {@link #shortRowsTraining}: a block's rows of one sample form one contiguous span, so the block
     * is a table of samples by span positions. One sweep of per-position shifted sums (float, over a
     * run of samples) per run, each channel's positions then reduced into double and merged with
     * Chan's formula as there; then the normalize pass with per-position parameters. The loops run
     * over the whole span, with no per-row loop entry or tail, which is what a 7x7 row (three vectors
     * and one value) spent most of its time on.
     */
    private void veryShortRowsTraining(Geometry g, float[] x, float[] y, float[] shift, float eps,
                                       RunningUpdate update, BatchNormArrays a) {
        int inner = g.inner();
        int outer = g.outer();
        int rowStride = g.channels() * inner;
        forEachSpanBlock(g, 1, 5, b -> {
            float[][] t = b.scratch();
            float[] spanShift = t[0];
            float[] s = t[1];
            float[] q = t[2];
            shortBlockStatistics(b.c0(), b.c1(), inner, outer, shift, eps, update, a, (o0, o1, runShift, sums) -> {
                perPosition(runShift, 0, b.kk(), inner, spanShift);
                KERNELS.columnSums(x, o0 * rowStride + b.start(), o1 - o0, rowStride, b.span(), spanShift, s, q);
                channelTotals(s, q, b.kk(), inner, sums);
            });
            spanAffineBlock(b, x, y, outer, rowStride, a.mean, a.meanLo, a.invstd, a.gamma, a.beta);
        });
    }

    /**
     * A block of channels [c0, c1) of the span traversals: each sample's values of them are one span
     * of (c1 - c0) * inner values from c0 * inner; scratch is the thread's span arrays.
     */
    private record SpanBlock(int c0, int c1, int inner, float[][] scratch) {
        int kk() {
            return c1 - c0;
        }

        int span() {
            return kk() * inner;
        }

        int start() {
            return c0 * inner;
        }
    }

    /**
     * Runs {@code body} on every block of the span traversals, in parallel: blocks sized for
     * {@code arrays} tensors (see shortBlockChannels), each with {@code scratch} span arrays.
     */
    private void forEachSpanBlock(Geometry g, int arrays, int scratch, java.util.function.Consumer<SpanBlock> body) {
        int nc = g.channels();
        int inner = g.inner();
        int k = shortBlockChannels(g, arrays);
        parallel((nc + k - 1) / k, blk -> {
            int c0 = blk * k;
            int c1 = Math.min(nc, c0 + k);
            body.accept(new SpanBlock(c0, c1, inner, spanScratch((c1 - c0) * inner, scratch)));
        });
    }

    /**
     * The affine pass over one span block, its per-position parameters expanded into the block's
     * scratch arrays 0 to 4.
     */
    private static void spanAffineBlock(SpanBlock b, float[] x, float[] y, int outer, int rowStride, float[] h,
                                        float[] l, float[] is, float[] ga, float[] be) {
        float[][] t = b.scratch();
        perPosition(h, b.c0(), b.kk(), b.inner(), t[0]);
        perPosition(l, b.c0(), b.kk(), b.inner(), t[1]);
        perPosition(is, b.c0(), b.kk(), b.inner(), t[2]);
        perPosition(ga, b.c0(), b.kk(), b.inner(), t[3]);
        perPosition(be, b.c0(), b.kk(), b.inner(), t[4]);
        KERNELS.affineColumns(x, y, b.start(), outer, rowStride, b.span(), t[0], t[1], t[2], t[3], t[4]);
    }

    /** out[i * inner + j] = perChannel[from + i] for the kk channels of a span, j < inner. */
    private static void perPosition(float[] perChannel, int from, int kk, int inner, float[] out) {
        for (int i = 0; i < kk; i++) {
            java.util.Arrays.fill(out, i * inner, (i + 1) * inner, perChannel[from + i]);
        }
    }

    /** Per channel i of a span: sums[2 i] = sum of a over its positions, sums[2 i + 1] = the same of b (double). */
    private static void channelTotals(float[] a, float[] b, int kk, int inner, double[] sums) {
        for (int i = 0; i < kk; i++) {
            double sa = 0;
            double sb = 0;
            for (int j = i * inner; j < (i + 1) * inner; j++) {
                sa += a[j];
                sb += b[j];
            }
            sums[2 * i] = sa;
            sums[2 * i + 1] = sb;
        }
    }

    /**
     * Per-thread float arrays of at least {@code span} values for the span traversal: allocated once
     * per thread and grown when needed (at most six arrays of a block's span; a pool thread keeps
     * them until the pool shuts down), so that calls do not allocate and zero them per block.
     */
    private static final ThreadLocal<float[][]> SPAN_SCRATCH = new ThreadLocal<>();

    private static float[][] spanScratch(int span, int count) {
        float[][] t = SPAN_SCRATCH.get();
        if (t == null || t.length < count || t[0].length < span) {
            t = new float[Math.max(count, t == null ? 0 : t.length)][Math.max(span, t == null ? 0 : t[0].length)];
            SPAN_SCRATCH.set(t);
        }
        return t;
    }

    /**
     * Backward for rows shorter than {@link #SPAN_ROWS}, in the spans of {@link #veryShortRowsTraining}:
     * per-position gradient sums over runs of samples (reduced per channel into double), then dx with
     * per-position parameters.
     */
    private void veryShortRowsBackward(Geometry g, float[] x, float[] dy, float[] dx, float[] h, float[] l,
                                       float[] is, float[] gamma, float[] dgamma, float[] dbeta, float invM) {
        int inner = g.inner();
        int outer = g.outer();
        int rowStride = g.channels() * inner;
        forEachSpanBlock(g, 2, 6, b -> {
            int c0 = b.c0();
            int c1 = b.c1();
            int kk = b.kk();
            int span = b.span();
            int start = b.start();
            float[][] t = b.scratch();
            perPosition(h, c0, kk, inner, t[0]);
            perPosition(l, c0, kk, inner, t[1]);
            perPosition(is, c0, kk, inner, t[2]);
            double[] sums = new double[2 * kk];
            double[] runSums = new double[2 * kk];
            // Float sums over runs of at most RUN values per channel, reduced into double once per run.
            int perRun = Math.max(1, RUN / inner);
            for (int o = 0; o < outer; o += perRun) {
                int rows = Math.min(perRun, outer - o);
                KERNELS.columnGradSums(x, dy, o * rowStride + start, rows, rowStride, span, t[0], t[1], t[2], t[3],
                        t[4]);
                channelTotals(t[3], t[4], kk, inner, runSums);
                for (int i = 0; i < 2 * kk; i++) {
                    sums[i] += runSums[i];
                }
            }
            float[] scale = new float[kk];
            float[] db = new float[kk];
            float[] dg = new float[kk];
            for (int c = c0; c < c1; c++) {
                dbeta[c] = (float) sums[2 * (c - c0)];
                dgamma[c] = (float) sums[2 * (c - c0) + 1];
                scale[c - c0] = gamma[c] * is[c];
                db[c - c0] = dbeta[c] * invM;
                dg[c - c0] = dgamma[c] * invM;
            }
            perPosition(scale, 0, kk, inner, t[3]);
            perPosition(db, 0, kk, inner, t[4]);
            perPosition(dg, 0, kk, inner, t[5]);
            KERNELS.dxColumns(x, dy, dx, start, outer, rowStride, span, t[0], t[1], t[2], t[3], t[4], t[5]);
        });
    }

    /** The elementwise affine pass over a whole tensor in the plan's traversal. */
    private void affine(Geometry g, Plan plan, float[] x, float[] y, float[] h, float[] l, float[] is, float[] ga,
                        float[] be) {
        if (plan.cols()) {
            int acc = plan.accumulators();
            float[] ch = perColumn(h, g);
            float[] cl = perColumn(l, g);
            float[] cis = perColumn(is, g);
            float[] cga = perColumn(ga, g);
            float[] cbe = perColumn(be, g);
            parallel(plan.blocks(), b -> {
                long from = plan.from(b, g);
                KERNELS.affineColumns(x, y, (int) (from * acc), (int) (plan.to(b, g) - from), acc, acc, ch, cl, cis,
                        cga, cbe);
            });
            return;
        }
        if (g.inner() >= COLS_MAX_INNER && g.inner() < SPAN_ROWS
                && g.channels() >= 2L * backend.pool().getParallelism()) {
            spanAffine(g, x, y, h, l, is, ga, be);
            return;
        }
        parallel(plan.blocks(), b -> segments(g, plan.from(b, g), plan.to(b, g),
                (c, start, end) -> KERNELS.affine(x, y, start, end, h[c], l[c], is[c], ga[c], be[c])));
    }

    /**
     * The affine pass for rows shorter than {@link #SPAN_ROWS} (inference on 7x7): blocks of channels
     * as in {@link #veryShortRowsTraining}, each block's span walked sample by sample with
     * per-position parameters, instead of a vector loop per row of three vectors and one value.
     */
    private void spanAffine(Geometry g, float[] x, float[] y, float[] h, float[] l, float[] is, float[] ga,
                            float[] be) {
        int rowStride = g.channels() * g.inner();
        forEachSpanBlock(g, 1, 5, b -> spanAffineBlock(b, x, y, g.outer(), rowStride, h, l, is, ga, be));
    }

    // ------------------------------------------------------------------ inference

    @Override
    public void inferenceForward(Geometry geometry, DeviceBuffer xb, DeviceBuffer yb, BatchNormBuffers s, double eps,
                                 Epilogue epilogue) {
        check();
        Geometry g = geometry.canonical();
        if (isFloat64(xb)) {
            float64.inferenceForward(g, xb, yb, s, eps, epilogue);
            return;
        }
        float[] rv = f(s.runningVar(), "running_var");
        int nc = g.channels();
        float[] inv = new float[nc];
        for (int c = 0; c < nc; c++) {
            inv[c] = (float) (1.0 / Math.sqrt(rv[c] + (float) eps));
        }
        float[] y = outArray(yb, "y");
        affine(g, Plan.of(g), in(xb, "x"), y, f(s.runningMean(), "running_mean"), new float[nc], inv,
                f(s.gamma(), "gamma"), f(s.beta(), "beta"));
        applyEpilogue(g, y, epilogue);
        store(yb, y);
    }

    /**
     * The fused epilogue on the Java backend: y = relu(y + residual) as one more elementwise pass
     * over y (the arrays are already in this core's memory; the OpenCL kernels fold it into the
     * normalize pass instead).
     */
    private void applyEpilogue(Geometry g, float[] y, Epilogue e) {
        if (e.forwardBits() == 0) {
            return;
        }
        float[] z = e.residual() != null ? in(e.residual(), "residual") : null;
        boolean relu = e.relu();
        int n = (int) g.elements();
        int tasks = Math.max(1, Math.min(64, n / BLOCK));
        parallel(tasks, t -> {
            int from = (int) ((long) n * t / tasks);
            int to = (int) ((long) n * (t + 1) / tasks);
            for (int i = from; i < to; i++) {
                float v = z != null ? y[i] + z[i] : y[i];
                y[i] = relu && v < 0 ? 0.0f : v;  // NaN is kept, as torch.relu keeps it
            }
        });
    }

    /**
     * Backward through the epilogue: dy masked by the forward output's sign when there is a ReLU
     * (a new array; dy itself is not modified), copied to the residual's gradient when asked.
     */
    private float[] effectiveDy(Geometry g, float[] dy, Epilogue e) {
        float[] out = dy;
        if (e.relu()) {
            float[] y = in(e.output(), "y");
            out = new float[dy.length];
            for (int i = 0; i < out.length; i++) {
                out[i] = y[i] > 0 ? dy[i] : 0.0f;
            }
        }
        if (e.residualGrad() != null) {
            float[] dres = outArray(e.residualGrad(), "dresidual");
            System.arraycopy(out, 0, dres, 0, (int) g.elements());
            store(e.residualGrad(), dres);
        }
        return out;
    }

    // ------------------------------------------------------------------ backward

    @Override
    public void backward(Geometry geometry, DeviceBuffer xb, DeviceBuffer dyb, DeviceBuffer dxb, BatchNormBuffers s,
                         DeviceBuffer dgammab, DeviceBuffer dbetab, boolean statsConstant, Epilogue epilogue) {
        check();
        Geometry g = geometry.canonical();
        if (isFloat64(xb)) {
            float64.backward(g, xb, dyb, dxb, s, dgammab, dbetab, statsConstant, epilogue);
            return;
        }
        float[] x = in(xb, "x");
        float[] dy = effectiveDy(g, in(dyb, "dy"), epilogue);
        float[] dx = outArray(dxb, "dx");
        backwardFloats(g, x, dy, dx, s, dgammab, dbetab, statsConstant);
        store(dxb, dx);
    }

    private void backwardFloats(Geometry g, float[] x, float[] dy, float[] dx, BatchNormBuffers s,
                                DeviceBuffer dgammab, DeviceBuffer dbetab, boolean statsConstant) {
        float[] h = f(s.saveMean(), "save_mean");
        float[] l = f(s.saveMeanLo(), "save_mean_lo");
        float[] is = f(s.saveInvstd(), "save_invstd");
        float[] gamma = f(s.gamma(), "gamma");
        float[] dgamma = f(dgammab, "dgamma");
        float[] dbeta = f(dbetab, "dbeta");
        int nc = g.channels();
        int inner = g.inner();
        // 1/m scales the mean and variance terms of dx; constant statistics have none.
        float invM = statsConstant ? 0.0f : (float) (1.0 / g.valuesPerChannel());

        if (fusable(g, 2) && inner < SPAN_ROWS) {
            veryShortRowsBackward(g, x, dy, dx, h, l, is, gamma, dgamma, dbeta, invM);
            return;
        }
        if (fusable(g, 2) && inner < SHORT_ROWS) {
            shortRowsBackward(g, x, dy, dx, h, l, is, gamma, dgamma, dbeta, invM);
            return;
        }
        if (fusable(g, 2)) {
            int rowStride = nc * inner;
            parallel(nc, c -> {
                double[] sums = new double[2];
                // Runs of at most RUN values in float lanes (several short rows per run), as the statistics.
                int perRun = Math.max(1, RUN / inner);
                for (int o = 0; o < g.outer(); o += perRun) {
                    int rows = Math.min(perRun, g.outer() - o);
                    KERNELS.gradSumsRows(x, dy, o * rowStride + c * inner, rows, rowStride, inner, h[c], l[c], is[c],
                            sums);
                }
                dbeta[c] = (float) sums[0];
                dgamma[c] = (float) sums[1];
                float scale = gamma[c] * is[c];
                float db = dbeta[c] * invM;
                float dg = dgamma[c] * invM;
                for (int o = 0; o < g.outer(); o++) {
                    int start = o * rowStride + c * inner;
                    KERNELS.dx(x, dy, dx, start, start + inner, h[c], l[c], is[c], scale, db, dg);
                }
            });
            return;
        }

        Plan plan = Plan.of(g);
        int acc = plan.accumulators();
        double[][] partials = partials(plan.blocks() * acc);
        double[] sb = partials[0];
        double[] sg = partials[1];
        if (plan.cols()) {
            float[] ch = perColumn(h, g);
            float[] cl = perColumn(l, g);
            float[] cis = perColumn(is, g);
            parallel(plan.blocks(), b -> {
                float[] fb = new float[acc];
                float[] fg = new float[acc];
                int base = b * acc;
                clear(partials, base, base + acc);
                for (long o = plan.from(b, g); o < plan.to(b, g); o += COL_RUN) {
                    int rows = (int) Math.min(COL_RUN, plan.to(b, g) - o);
                    KERNELS.columnGradSums(x, dy, (int) (o * acc), rows, acc, acc, ch, cl, cis, fb, fg);
                    for (int j = 0; j < acc; j++) {
                        sb[base + j] += fb[j];
                        sg[base + j] += fg[j];
                    }
                }
            });
        } else {
            parallel(plan.blocks(), b -> {
                double[] sums = new double[2];
                int base = b * acc;
                clear(partials, base, base + acc);
                segments(g, plan.from(b, g), plan.to(b, g), (c, start, end) -> {
                    sums[0] = 0;
                    sums[1] = 0;
                    KERNELS.gradSums(x, dy, start, end, h[c], l[c], is[c], sums);
                    sb[base + c] += sums[0];
                    sg[base + c] += sums[1];
                });
            });
        }
        // Block by block in memory order (a channel-major walk strides through all blocks' partials),
        // into per-accumulator totals, then each channel's accumulators in order.
        double[] tb = new double[acc];
        double[] tg = new double[acc];
        for (int blk = 0; blk < plan.blocks(); blk++) {
            for (int a = 0; a < acc; a++) {
                tb[a] += sb[blk * acc + a];
                tg[a] += sg[blk * acc + a];
            }
        }
        int perChannel = plan.cols() ? inner : 1;
        for (int c = 0; c < nc; c++) {
            double b = 0;
            double gs = 0;
            for (int i = 0; i < perChannel; i++) {
                b += tb[c * perChannel + i];
                gs += tg[c * perChannel + i];
            }
            dbeta[c] = (float) b;
            dgamma[c] = (float) gs;
        }

        recycle(partials);
        float[] scale = new float[nc];
        float[] db = new float[nc];
        float[] dg = new float[nc];
        for (int c = 0; c < nc; c++) {
            scale[c] = gamma[c] * is[c];
            db[c] = dbeta[c] * invM;
            dg[c] = dgamma[c] * invM;
        }
        if (plan.cols()) {
            float[] ch = perColumn(h, g);
            float[] cl = perColumn(l, g);
            float[] cis = perColumn(is, g);
            float[] cscale = perColumn(scale, g);
            float[] cdb = perColumn(db, g);
            float[] cdg = perColumn(dg, g);
            parallel(plan.blocks(), b -> {
                long from = plan.from(b, g);
                KERNELS.dxColumns(x, dy, dx, (int) (from * acc), (int) (plan.to(b, g) - from), acc, acc, ch, cl, cis,
                        cscale, cdb, cdg);
            });
        } else {
            parallel(plan.blocks(), blk -> segments(g, plan.from(blk, g), plan.to(blk, g),
                    (c, start, end) -> KERNELS.dx(x, dy, dx, start, end, h[c], l[c], is[c], scale[c], db[c], dg[c])));
        }
    }

    @Override
    public void savedStatsFromRunning(BatchNormBuffers s, double eps) {
        check();
        if (isFloat64(s.runningMean())) {
            float64.savedStatsFromRunning(s, eps);
            return;
        }
        float[] rm = f(s.runningMean(), "running_mean");
        float[] rv = f(s.runningVar(), "running_var");
        float[] mean = f(s.saveMean(), "save_mean");
        float[] meanLo = f(s.saveMeanLo(), "save_mean_lo");
        float[] invstd = f(s.saveInvstd(), "save_invstd");
        for (int c = 0; c < rm.length; c++) {
            mean[c] = rm[c];
            meanLo[c] = 0.0f;
            invstd[c] = (float) (1.0 / Math.sqrt(rv[c] + (float) eps));
        }
        backend.counters().launches.incrementAndGet();
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        backend.counters().liveKernels.decrementAndGet();
    }
}
