package dev.clnorm.backend.java;

import dev.clnorm.Geometry;
import dev.clnorm.backend.BatchNormBuffers;
import dev.clnorm.backend.BatchNormOps;
import dev.clnorm.backend.DeviceBuffer;
import dev.clnorm.backend.ElementType;

import java.util.stream.IntStream;

/**
 * Batch norm on the Java backend. The flat tensor is cut into a fixed number of contiguous
 * blocks (independent of the thread count, so results are the same on any machine); each block
 * accumulates per-channel partials which are then merged per channel in block order.
 *
 * <p>Statistics: per block, sums of (x - shift) and (x - shift)^2 in double, where shift is the
 * channel's first value; blocks are merged with Chan's formula. The mean is kept as a float pair
 * (hi + lo) exactly like the OpenCL kernels, so both backends normalise the same way.
 */
final class JavaBatchNormOps implements BatchNormOps {
    /** Block size in elements: large enough to amortise task overhead, small enough to balance cores. */
    private static final int MIN_BLOCK = 1 << 16;
    /** Upper bound on blocks x channels, which bounds the partials' memory. */
    private static final long MAX_PARTIALS = 1L << 22;

    private final JavaBackend backend;
    private final int channels;
    private boolean closed;

    JavaBatchNormOps(JavaBackend backend, int channels) {
        this.backend = backend;
        this.channels = channels;
        backend.counters().liveKernels.incrementAndGet();
    }

    /** Receives one run of {@code length} contiguous values of one channel starting at flat index {@code start}. */
    @FunctionalInterface
    private interface SegmentBody {
        void run(int channel, int start, int length);
    }

    /** Fixed partition of the flat index range: same blocks on every machine. */
    private record Blocks(int count, long size) {
        static Blocks of(Geometry g) {
            long total = g.elements();
            long count = Math.max(1, (total + MIN_BLOCK - 1) / MIN_BLOCK);
            count = Math.min(count, Math.max(1, MAX_PARTIALS / Math.max(1, g.channels())));
            long size = (total + count - 1) / count;
            return new Blocks((int) count, size);
        }
    }

    private static void forEachSegment(Geometry g, long from, long to, SegmentBody body) {
        int inner = g.inner();
        int c = g.channels();
        long e = from;
        while (e < to) {
            long row = e / inner;
            int i = (int) (e - row * inner);
            int length = (int) Math.min(inner - i, to - e);
            body.run((int) (row % c), (int) e, length);
            e += length;
        }
    }

    private void parallelBlocks(Geometry g, Blocks blocks, java.util.function.IntConsumer block) {
        backend.counters().launches.incrementAndGet();
        if (blocks.count() == 1) {
            block.accept(0);
            return;
        }
        backend.pool().submit(() -> IntStream.range(0, blocks.count()).parallel().forEach(block)).join();
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

    @Override
    public void trainingForward(Geometry g, DeviceBuffer xb, DeviceBuffer yb, BatchNormBuffers s,
                                float eps, float factor, boolean updateRunning) {
        check();
        float[] x = f(xb, "x");
        float[] y = f(yb, "y");
        int nc = g.channels();
        double[] shift = new double[nc];
        for (int c = 0; c < nc; c++) {
            shift[c] = x[c * g.inner()];
        }

        Blocks blocks = Blocks.of(g);
        double[] n = new double[blocks.count() * nc];
        double[] s1 = new double[n.length];
        double[] s2 = new double[n.length];
        parallelBlocks(g, blocks, b -> {
            long from = b * blocks.size();
            long to = Math.min(g.elements(), from + blocks.size());
            int base = b * nc;
            forEachSegment(g, from, to, (c, start, length) -> {
                double k = shift[c];
                double a1 = 0;
                double a2 = 0;
                for (int e = start; e < start + length; e++) {
                    double d = x[e] - k;
                    a1 += d;
                    a2 += d * d;
                }
                n[base + c] += length;
                s1[base + c] += a1;
                s2[base + c] += a2;
            });
        });

        float[] mean = f(s.saveMean(), "save_mean");
        float[] meanLo = f(s.saveMeanLo(), "save_mean_lo");
        float[] invstd = f(s.saveInvstd(), "save_invstd");
        float[] rm = f(s.runningMean(), "running_mean");
        float[] rv = f(s.runningVar(), "running_var");
        int[] skipped = JavaBackend.cast(backend, s.skippedUpdates(), ElementType.INT32, "skipped").ints();
        for (int c = 0; c < nc; c++) {
            // Chan merge of the block partials, in block order.
            double count = 0;
            double m = 0;
            double m2 = 0;
            for (int b = 0; b < blocks.count(); b++) {
                double nb = n[b * nc + c];
                if (nb == 0) {
                    continue;
                }
                double mb = s1[b * nc + c] / nb;
                double m2b = Math.max(s2[b * nc + c] - s1[b * nc + c] * mb, 0);
                double total = count + nb;
                double delta = mb - m;
                m += delta * (nb / total);
                m2 += m2b + delta * delta * count * (nb / total);
                count = total;
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
        parallelBlocks(g, blocks, b -> {
            long from = b * blocks.size();
            long to = Math.min(g.elements(), from + blocks.size());
            forEachSegment(g, from, to, (c, start, length) -> {
                float h = mean[c];
                float l = meanLo[c];
                float is = invstd[c];
                float ga = gamma[c];
                float be = beta[c];
                for (int e = start; e < start + length; e++) {
                    float xhat = ((x[e] - h) - l) * is;
                    y[e] = ga * xhat + be;
                }
            });
        });
    }

    @Override
    public void inferenceForward(Geometry g, DeviceBuffer xb, DeviceBuffer yb, BatchNormBuffers s, float eps) {
        check();
        float[] x = f(xb, "x");
        float[] y = f(yb, "y");
        float[] rm = f(s.runningMean(), "running_mean");
        float[] rv = f(s.runningVar(), "running_var");
        float[] gamma = f(s.gamma(), "gamma");
        float[] beta = f(s.beta(), "beta");
        Blocks blocks = Blocks.of(g);
        parallelBlocks(g, blocks, b -> {
            long from = b * blocks.size();
            long to = Math.min(g.elements(), from + blocks.size());
            forEachSegment(g, from, to, (c, start, length) -> {
                float mu = rm[c];
                float sd = (float) Math.sqrt(rv[c] + eps);
                float ga = gamma[c];
                float be = beta[c];
                for (int e = start; e < start + length; e++) {
                    y[e] = ga * ((x[e] - mu) / sd) + be;
                }
            });
        });
    }

    @Override
    public void backward(Geometry g, DeviceBuffer xb, DeviceBuffer dyb, DeviceBuffer dxb, BatchNormBuffers s,
                         DeviceBuffer dgammab, DeviceBuffer dbetab) {
        check();
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

        Blocks blocks = Blocks.of(g);
        double[] sumDy = new double[blocks.count() * nc];
        double[] sumDyXhat = new double[sumDy.length];
        parallelBlocks(g, blocks, b -> {
            long from = b * blocks.size();
            long to = Math.min(g.elements(), from + blocks.size());
            int base = b * nc;
            forEachSegment(g, from, to, (c, start, length) -> {
                float h = mean[c];
                float l = meanLo[c];
                float is = invstd[c];
                double a = 0;
                double ax = 0;
                for (int e = start; e < start + length; e++) {
                    float xhat = ((x[e] - h) - l) * is;
                    a += dy[e];
                    ax += (double) dy[e] * xhat;
                }
                sumDy[base + c] += a;
                sumDyXhat[base + c] += ax;
            });
        });
        for (int c = 0; c < nc; c++) {
            double a = 0;
            double ax = 0;
            for (int b = 0; b < blocks.count(); b++) {
                a += sumDy[b * nc + c];
                ax += sumDyXhat[b * nc + c];
            }
            dbeta[c] = (float) a;
            dgamma[c] = (float) ax;
        }

        float invM = (float) (1.0 / g.valuesPerChannel());
        parallelBlocks(g, blocks, b -> {
            long from = b * blocks.size();
            long to = Math.min(g.elements(), from + blocks.size());
            forEachSegment(g, from, to, (c, start, length) -> {
                float h = mean[c];
                float l = meanLo[c];
                float is = invstd[c];
                float scale = gamma[c] * is;
                float db = dbeta[c] * invM;
                float dg = dgamma[c] * invM;
                for (int e = start; e < start + length; e++) {
                    float xhat = ((x[e] - h) - l) * is;
                    dx[e] = scale * (dy[e] - db - xhat * dg);
                }
            });
        });
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        backend.counters().liveKernels.decrementAndGet();
    }

    int channels() {
        return channels;
    }
}
