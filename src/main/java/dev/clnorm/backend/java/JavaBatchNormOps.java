package dev.clnorm.backend.java;

import dev.clnorm.Geometry;
import dev.clnorm.backend.BatchNormBuffers;
import dev.clnorm.backend.BatchNormOps;
import dev.clnorm.backend.DeviceBuffer;
import dev.clnorm.backend.ElementType;

import java.util.function.IntConsumer;
import java.util.stream.IntStream;

/**
 * Batch norm on the Java backend, parallel over all cores.
 *
 * <p>Two traversals, picked by the layout's inner extent, both streaming memory in order:
 * <ul>
 *   <li><b>rows</b> (inner &gt;= {@value #COLS_MAX_INNER}, NCHW-like): the flat tensor is cut into
 *       fixed blocks; each block walks its contiguous row segments, one channel per segment;</li>
 *   <li><b>cols</b> (small inner, channels-last and (N,C)): each block is a range of outer rows and
 *       keeps one accumulator per column (channel x inner position), so the inner loops run over
 *       contiguous columns and vectorise.</li>
 * </ul>
 * The partition depends only on the geometry, never on the thread count, and block partials are
 * merged per channel in block order, so results are identical on every machine.
 *
 * <p>Statistics: sums of (x - shift) and (x - shift)^2 in double per block, shift = the channel's
 * first value; blocks merged with Chan's formula. The mean is kept as a float pair (hi + lo) like
 * the OpenCL kernels, so both backends normalise the same way.
 */
final class JavaBatchNormOps implements BatchNormOps {
    /** Inner extents below this use the column traversal. */
    static final int COLS_MAX_INNER = 16;
    /** Elements per block: large enough to amortise task overhead, small enough to balance cores. */
    private static final int BLOCK = 1 << 16;
    /** Upper bound on blocks x accumulators, which bounds the partials' memory. */
    private static final long MAX_PARTIALS = 1L << 22;

    private final JavaBackend backend;
    private boolean closed;

    JavaBatchNormOps(JavaBackend backend, int channels) {
        this.backend = backend;
        backend.counters().liveKernels.incrementAndGet();
    }

    /** How the tensor is cut into blocks. */
    private record Plan(boolean cols, int blocks, long blockSize, int accumulators) {
        static Plan of(Geometry g) {
            if (g.inner() < COLS_MAX_INNER) {
                int columns = g.channels() * g.inner();
                long rowsPerBlock = Math.max(1, BLOCK / Math.max(1, columns));
                long blocks = (g.outer() + rowsPerBlock - 1) / rowsPerBlock;
                blocks = Math.max(1, Math.min(blocks, Math.max(1, MAX_PARTIALS / columns)));
                return new Plan(true, (int) blocks, (g.outer() + blocks - 1) / blocks, columns);
            }
            long total = g.elements();
            long blocks = Math.max(1, (total + BLOCK - 1) / BLOCK);
            blocks = Math.min(blocks, Math.max(1, MAX_PARTIALS / g.channels()));
            return new Plan(false, (int) blocks, (total + blocks - 1) / blocks, g.channels());
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

    /** Row segments of flat range [from, to) in rows traversal. */
    private static void segments(Geometry g, long from, long to, Segment body) {
        int inner = g.inner();
        int c = g.channels();
        long e = from;
        while (e < to) {
            long row = e / inner;
            long end = Math.min((row + 1) * inner, to);
            body.run((int) (row % c), (int) e, (int) end);
            e = end;
        }
    }

    /** Runs block b of the plan for each b, on the pool; one launch as far as the counters go. */
    private void parallel(Plan plan, IntConsumer block) {
        backend.counters().launches.incrementAndGet();
        if (plan.blocks() == 1) {
            block.accept(0);
            return;
        }
        backend.pool().submit(() -> IntStream.range(0, plan.blocks()).parallel().forEach(block)).join();
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

    // ------------------------------------------------------------------ reductions

    /** Adds sum(x - k) and sum((x - k)^2) over x[from, to) into s1[a], s2[a]; four accumulators for ILP. */
    private static void shiftedSums(float[] x, int from, int to, double k, double[] s1, double[] s2, int a) {
        double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        double q0 = 0, q1 = 0, q2 = 0, q3 = 0;
        int e = from;
        for (; e + 3 < to; e += 4) {
            double d0 = x[e] - k;
            double d1 = x[e + 1] - k;
            double d2 = x[e + 2] - k;
            double d3 = x[e + 3] - k;
            a0 += d0;
            a1 += d1;
            a2 += d2;
            a3 += d3;
            q0 += d0 * d0;
            q1 += d1 * d1;
            q2 += d2 * d2;
            q3 += d3 * d3;
        }
        for (; e < to; e++) {
            double d = x[e] - k;
            a0 += d;
            q0 += d * d;
        }
        s1[a] += (a0 + a1) + (a2 + a3);
        s2[a] += (q0 + q1) + (q2 + q3);
    }

    /** Adds sum(dy) and sum(dy * xhat) over [from, to) into sb[a], sg[a]. */
    private static void gradSums(float[] x, float[] dy, int from, int to, float h, float l, float is,
                                 double[] sb, double[] sg, int a) {
        double b0 = 0, b1 = 0, g0 = 0, g1 = 0;
        int e = from;
        for (; e + 1 < to; e += 2) {
            float xh0 = ((x[e] - h) - l) * is;
            float xh1 = ((x[e + 1] - h) - l) * is;
            b0 += dy[e];
            b1 += dy[e + 1];
            g0 += (double) dy[e] * xh0;
            g1 += (double) dy[e + 1] * xh1;
        }
        for (; e < to; e++) {
            float xh = ((x[e] - h) - l) * is;
            b0 += dy[e];
            g0 += (double) dy[e] * xh;
        }
        sb[a] += b0 + b1;
        sg[a] += g0 + g1;
    }

    /** Block partials: s1/s2 hold [block * accumulators + a]. */
    private void reduce(Geometry g, Plan plan, double[] s1, double[] s2, RowsBody rows, ColsBody cols) {
        int acc = plan.accumulators();
        parallel(plan, b -> {
            int base = b * acc;
            if (plan.cols()) {
                long o0 = b * plan.blockSize();
                long o1 = Math.min(g.outer(), o0 + plan.blockSize());
                for (long o = o0; o < o1; o++) {
                    cols.run((int) (o * acc), base);
                }
            } else {
                long from = b * plan.blockSize();
                long to = Math.min(g.elements(), from + plan.blockSize());
                segments(g, from, to, (c, start, end) -> rows.run(c, start, end, base + c));
            }
        });
    }

    @FunctionalInterface
    private interface RowsBody {
        void run(int channel, int start, int end, int accumulator);
    }

    /** One outer row in cols traversal: row's flat start, partial base index. */
    @FunctionalInterface
    private interface ColsBody {
        void run(int rowStart, int base);
    }

    // ------------------------------------------------------------------ forward

    @Override
    public void trainingForward(Geometry geometry, DeviceBuffer xb, DeviceBuffer yb, BatchNormBuffers s,
                                float eps, float factor, boolean updateRunning) {
        check();
        Geometry g = geometry.canonical();
        float[] x = f(xb, "x");
        float[] y = f(yb, "y");
        int nc = g.channels();
        int inner = g.inner();
        Plan plan = Plan.of(g);
        int acc = plan.accumulators();
        double[] shift = new double[nc];
        for (int c = 0; c < nc; c++) {
            shift[c] = x[c * inner];
        }
        double[] colShift = new double[acc];
        for (int a = 0; a < acc; a++) {
            colShift[a] = shift[plan.channelOf(a, g)];
        }

        double[] s1 = new double[plan.blocks() * acc];
        double[] s2 = new double[s1.length];
        reduce(g, plan, s1, s2,
                (c, start, end, a) -> shiftedSums(x, start, end, shift[c], s1, s2, a),
                (rowStart, base) -> {
                    for (int j = 0; j < acc; j++) {
                        double d = x[rowStart + j] - colShift[j];
                        s1[base + j] += d;
                        s2[base + j] += d * d;
                    }
                });

        float[] mean = f(s.saveMean(), "save_mean");
        float[] meanLo = f(s.saveMeanLo(), "save_mean_lo");
        float[] invstd = f(s.saveInvstd(), "save_invstd");
        float[] rm = f(s.runningMean(), "running_mean");
        float[] rv = f(s.runningVar(), "running_var");
        int[] skipped = JavaBackend.cast(backend, s.skippedUpdates(), ElementType.INT32, "skipped").ints();
        // Values per accumulator of one block; the last block may hold fewer.
        for (int c = 0; c < nc; c++) {
            double count = 0;
            double m = 0;
            double m2 = 0;
            for (int b = 0; b < plan.blocks(); b++) {
                int perAcc = plan.cols() ? inner : 1;
                for (int i = 0; i < perAcc; i++) {
                    int a = plan.cols() ? c * inner + i : c;
                    double nb = blockCount(g, plan, b, a);
                    if (nb == 0) {
                        continue;
                    }
                    int at = b * acc + a;
                    double mb = s1[at] / nb;
                    double m2b = Math.max(s2[at] - s1[at] * mb, 0);
                    double total = count + nb;
                    double delta = mb - m;
                    m += delta * (nb / total);
                    m2 += m2b + delta * delta * count * (nb / total);
                    count = total;
                }
            }
            double var = Math.max(m2 / count, 0);
            double fullMean = shift[c] + m;
            float hi = (float) fullMean;
            mean[c] = hi;
            meanLo[c] = (float) (fullMean - hi);
            invstd[c] = (float) (1.0 / Math.sqrt(var + eps));
            if (updateRunning) {
                float unbiased = (float) Math.max(m2 / (count - 1), 0);
                if (Float.isFinite(hi) && Float.isFinite(unbiased)) {
                    rm[c] = (1.0f - factor) * rm[c] + factor * hi;
                    rv[c] = (1.0f - factor) * rv[c] + factor * unbiased;
                } else {
                    skipped[c] += 1;
                }
            }
        }

        float[] gamma = f(s.gamma(), "gamma");
        float[] beta = f(s.beta(), "beta");
        elementwise(g, plan, mean, meanLo, invstd, gamma, beta,
                (h, l, is, ga, be, start, end) -> {
                    for (int e = start; e < end; e++) {
                        float xhat = ((x[e] - h) - l) * is;
                        y[e] = ga * xhat + be;
                    }
                },
                (cols, rowStart) -> {
                    for (int j = 0; j < acc; j++) {
                        float xhat = ((x[rowStart + j] - cols[0][j]) - cols[1][j]) * cols[2][j];
                        y[rowStart + j] = cols[3][j] * xhat + cols[4][j];
                    }
                });
    }

    /** Number of values accumulator a of block b summed. */
    private static double blockCount(Geometry g, Plan plan, int b, int a) {
        if (plan.cols()) {
            long o0 = b * plan.blockSize();
            long o1 = Math.min(g.outer(), o0 + plan.blockSize());
            return Math.max(0, o1 - o0);
        }
        // Rows traversal: values of channel a inside flat range [from, to).
        long from = b * plan.blockSize();
        long to = Math.min(g.elements(), from + plan.blockSize());
        return channelValuesBefore(g, a, to) - channelValuesBefore(g, a, from);
    }

    /** How many values of channel c lie at flat indices below e. */
    private static long channelValuesBefore(Geometry g, int c, long e) {
        long inner = g.inner();
        long rowLen = inner * g.channels();
        long full = e / rowLen;            // complete outer rows
        long rest = e - full * rowLen;     // position inside the next outer row
        long inChannel = Math.min(Math.max(rest - c * inner, 0), inner);
        return full * inner + inChannel;
    }

    @FunctionalInterface
    private interface RowsMap {
        void run(float h, float l, float is, float ga, float be, int start, int end);
    }

    @FunctionalInterface
    private interface ColsMap {
        void run(float[][] columnParams, int rowStart);
    }

    /**
     * Elementwise pass with five per-channel parameters; in cols traversal they are first spread to
     * one value per column so the inner loop is a plain vectorisable array loop.
     */
    private void elementwise(Geometry g, Plan plan, float[] p0, float[] p1, float[] p2, float[] p3, float[] p4,
                             RowsMap rows, ColsMap cols) {
        if (plan.cols()) {
            int acc = plan.accumulators();
            float[][] colParams = new float[5][acc];
            float[][] src = {p0, p1, p2, p3, p4};
            for (int a = 0; a < acc; a++) {
                int c = plan.channelOf(a, g);
                for (int k = 0; k < 5; k++) {
                    colParams[k][a] = src[k][c];
                }
            }
            parallel(plan, b -> {
                long o0 = b * plan.blockSize();
                long o1 = Math.min(g.outer(), o0 + plan.blockSize());
                for (long o = o0; o < o1; o++) {
                    cols.run(colParams, (int) (o * acc));
                }
            });
            return;
        }
        parallel(plan, b -> {
            long from = b * plan.blockSize();
            long to = Math.min(g.elements(), from + plan.blockSize());
            segments(g, from, to, (c, start, end) -> rows.run(p0[c], p1[c], p2[c], p3[c], p4[c], start, end));
        });
    }

    @Override
    public void inferenceForward(Geometry geometry, DeviceBuffer xb, DeviceBuffer yb, BatchNormBuffers s, float eps) {
        check();
        Geometry g = geometry.canonical();
        float[] x = f(xb, "x");
        float[] y = f(yb, "y");
        float[] rm = f(s.runningMean(), "running_mean");
        float[] rv = f(s.runningVar(), "running_var");
        int nc = g.channels();
        float[] inv = new float[nc];
        for (int c = 0; c < nc; c++) {
            inv[c] = (float) (1.0 / Math.sqrt(rv[c] + eps));
        }
        Plan plan = Plan.of(g);
        int acc = plan.accumulators();
        elementwise(g, plan, rm, new float[nc], inv, f(s.gamma(), "gamma"), f(s.beta(), "beta"),
                (mu, unused, is, ga, be, start, end) -> {
                    for (int e = start; e < end; e++) {
                        y[e] = ga * ((x[e] - mu) * is) + be;
                    }
                },
                (cols, rowStart) -> {
                    for (int j = 0; j < acc; j++) {
                        y[rowStart + j] = cols[3][j] * ((x[rowStart + j] - cols[0][j]) * cols[2][j]) + cols[4][j];
                    }
                });
    }

    // ------------------------------------------------------------------ backward

    @Override
    public void backward(Geometry geometry, DeviceBuffer xb, DeviceBuffer dyb, DeviceBuffer dxb, BatchNormBuffers s,
                         DeviceBuffer dgammab, DeviceBuffer dbetab) {
        check();
        Geometry g = geometry.canonical();
        float[] x = f(xb, "x");
        float[] dy = f(dyb, "dy");
        float[] dx = f(dxb, "dx");
        float[] mean = f(s.saveMean(), "save_mean");
        float[] meanLo = f(s.saveMeanLo(), "save_mean_lo");
        float[] invstd = f(s.saveInvstd(), "save_invstd");
        float[] gamma = f(s.gamma(), "gamma");
        float[] dgamma = f(dgammab, "dgamma");
        float[] dbeta = f(dbetab, "dbeta");
        int nc = g.channels();
        Plan plan = Plan.of(g);
        int acc = plan.accumulators();

        float[][] colStats = new float[3][acc];
        for (int a = 0; a < acc; a++) {
            int c = plan.channelOf(a, g);
            colStats[0][a] = mean[c];
            colStats[1][a] = meanLo[c];
            colStats[2][a] = invstd[c];
        }
        double[] sb = new double[plan.blocks() * acc];
        double[] sg = new double[sb.length];
        reduce(g, plan, sb, sg,
                (c, start, end, a) -> gradSums(x, dy, start, end, mean[c], meanLo[c], invstd[c], sb, sg, a),
                (rowStart, base) -> {
                    for (int j = 0; j < acc; j++) {
                        float xhat = ((x[rowStart + j] - colStats[0][j]) - colStats[1][j]) * colStats[2][j];
                        sb[base + j] += dy[rowStart + j];
                        sg[base + j] += (double) dy[rowStart + j] * xhat;
                    }
                });
        for (int c = 0; c < nc; c++) {
            double b = 0;
            double gsum = 0;
            for (int blk = 0; blk < plan.blocks(); blk++) {
                int perAcc = plan.cols() ? g.inner() : 1;
                for (int i = 0; i < perAcc; i++) {
                    int at = blk * acc + (plan.cols() ? c * g.inner() + i : c);
                    b += sb[at];
                    gsum += sg[at];
                }
            }
            dbeta[c] = (float) b;
            dgamma[c] = (float) gsum;
        }

        float invM = (float) (1.0 / g.valuesPerChannel());
        float[] scale = new float[nc];
        float[] db = new float[nc];
        float[] dg = new float[nc];
        for (int c = 0; c < nc; c++) {
            scale[c] = gamma[c] * invstd[c];
            db[c] = dbeta[c] * invM;
            dg[c] = dgamma[c] * invM;
        }
        // Parameters: mean hi, mean lo, invstd, dbeta/m, dgamma/m; gamma*invstd folded per channel.
        if (plan.cols()) {
            float[] colScale = new float[acc];
            for (int a = 0; a < acc; a++) {
                colScale[a] = scale[plan.channelOf(a, g)];
            }
            elementwise(g, plan, mean, meanLo, invstd, db, dg, null,
                    (cols, rowStart) -> {
                        for (int j = 0; j < acc; j++) {
                            int e = rowStart + j;
                            float xhat = ((x[e] - cols[0][j]) - cols[1][j]) * cols[2][j];
                            dx[e] = colScale[j] * (dy[e] - cols[3][j] - xhat * cols[4][j]);
                        }
                    });
        } else {
            parallel(plan, blk -> {
                long from = blk * plan.blockSize();
                long to = Math.min(g.elements(), from + plan.blockSize());
                segments(g, from, to, (c, start, end) -> {
                    float h = mean[c];
                    float l = meanLo[c];
                    float is = invstd[c];
                    float sc = scale[c];
                    float dbc = db[c];
                    float dgc = dg[c];
                    for (int e = start; e < end; e++) {
                        float xhat = ((x[e] - h) - l) * is;
                        dx[e] = sc * (dy[e] - dbc - xhat * dgc);
                    }
                });
            });
        }
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
