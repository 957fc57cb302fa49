package dev.clnorm.train;

import dev.clnorm.backend.Backend;
import dev.clnorm.backend.DeviceBuffer;
import dev.clnorm.backend.java.JavaBackend;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.ForkJoinTask;
import java.util.function.IntConsumer;

/**
 * The trainer's operations on the pure-Java backend: plain Java loops over the backend's heap
 * arrays, the matrix products and large elementwise loops split across a fork-join pool with one
 * thread per core. Each output element is computed by one thread in a fixed order, so results do not
 * depend on the thread count or on scheduling.
 */
final class JavaTrainOps implements TrainOps {
    /** Depth of one k-block of the matrix product: a KC x NC panel of B (256 KiB) stays in the L2 cache. */
    private static final int KC = 256;
    /** Width of one column block of the matrix product. */
    private static final int NC = 256;
    /** Elementwise loops shorter than this run on the calling thread: forking costs more than it saves. */
    private static final int PARALLEL_MIN = 1 << 16;

    private final JavaBackend backend;
    private final ForkJoinPool pool;
    private final int threads;
    private boolean closed;

    JavaTrainOps(JavaBackend backend) {
        this.backend = backend;
        this.threads = Math.max(1, backend.info().computeUnits());
        this.pool = new ForkJoinPool(threads);
    }

    @Override
    public Backend backend() {
        return backend;
    }

    @Override
    public String gemmDescription() {
        return "Java blocked matrix product on " + threads + " threads";
    }

    private float[] f(DeviceBuffer b) {
        check();
        return backend.floatArray(b);
    }

    private int[] ints(DeviceBuffer b) {
        check();
        return backend.intArray(b);
    }

    private void check() {
        if (closed) {
            throw new IllegalStateException("training operations have been closed");
        }
    }

    /** Runs body(0 .. tasks-1), spread over the pool; returns when all are done. */
    private void parallel(int tasks, IntConsumer body) {
        if (tasks <= 1 || threads == 1) {
            for (int t = 0; t < tasks; t++) {
                body.accept(t);
            }
            return;
        }
        List<ForkJoinTask<?>> jobs = new ArrayList<>(tasks);
        for (int t = 0; t < tasks; t++) {
            final int id = t;
            jobs.add(pool.submit(() -> body.accept(id)));
        }
        for (ForkJoinTask<?> j : jobs) {
            j.join();
        }
    }

    /** Splits [0, n) into about {@code parts} contiguous ranges and runs body(from, to) on each. */
    private void ranges(int n, int parts, RangeBody body) {
        int p = Math.max(1, Math.min(parts, n));
        parallel(p, t -> body.run((int) ((long) n * t / p), (int) ((long) n * (t + 1) / p)));
    }

    private interface RangeBody {
        void run(int from, int to);
    }

    private void elementwise(int n, RangeBody body) {
        if (n < PARALLEL_MIN) {
            body.run(0, n);
        } else {
            ranges(n, threads, body);
        }
        backend.countLaunch();
    }

    private static void need(float[] a, long elements, String what) {
        if (a.length < elements) {
            throw new IllegalArgumentException(what + " holds " + a.length + " values, needs " + elements);
        }
    }

    @Override
    public void gemm(boolean transA, boolean transB, int m, int n, int k, DeviceBuffer a, DeviceBuffer b, float beta,
                     DeviceBuffer c) {
        float[] av = f(a);
        float[] bv = f(b);
        float[] cv = f(c);
        need(av, (long) m * k, "A");
        need(bv, (long) k * n, "B");
        need(cv, (long) m * n, "C");
        if (m == 0 || n == 0) {
            backend.countLaunch();
            return;
        }
        if (k == 0) {  // an empty sum: C = beta * C
            for (int i = 0; i < m * n; i++) {
                cv[i] = beta == 0.0f ? 0.0f : beta * cv[i];
            }
            backend.countLaunch();
            return;
        }
        // Tasks are (column block, row block) pairs; each owns its part of C, so no two threads write
        // the same element and every element is summed in the same order whatever the thread count.
        int colBlocks = (n + NC - 1) / NC;
        int rowBlocks = Math.max(1, Math.min(m, (threads * 4 + colBlocks - 1) / colBlocks));
        parallel(colBlocks * rowBlocks, t -> {
            int jb = t % colBlocks;
            int ib = t / colBlocks;
            int j0 = jb * NC;
            int nb = Math.min(NC, n - j0);
            int i0 = (int) ((long) m * ib / rowBlocks);
            int i1 = (int) ((long) m * (ib + 1) / rowBlocks);
            gemmBlock(transA, transB, m, n, k, av, bv, beta, cv, i0, i1, j0, nb);
        });
        backend.countLaunch();
    }

    /** Per-thread scratch: a packed KC x NC panel of op(B) as 0-based rows, and one accumulator row. */
    private static final class Scratch {
        final float[][] panel = new float[KC][NC];
        final float[] acc = new float[NC];
    }

    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

    /**
     * Rows [i0, i1) and columns [j0, j0 + nb) of C. HotSpot's C2 (JDK 17) vectorises the inner loop only
     * when every array in it is indexed from 0, so op(B) is packed into 0-based rows and each C row is
     * accumulated in a 0-based scratch row; four rows of op(B) per pass keep the FMA units busy.
     */
    private static void gemmBlock(boolean transA, boolean transB, int m, int n, int k, float[] av, float[] bv,
                                  float beta, float[] cv, int i0, int i1, int j0, int nb) {
        Scratch s = SCRATCH.get();
        float[][] panel = s.panel;
        float[] acc = s.acc;
        for (int p0 = 0; p0 < k; p0 += KC) {
            int kb = Math.min(KC, k - p0);
            for (int q = 0; q < kb; q++) {
                float[] row = panel[q];
                int p = p0 + q;
                if (transB) {
                    for (int j = 0; j < nb; j++) {
                        row[j] = bv[(j0 + j) * k + p];
                    }
                } else {
                    System.arraycopy(bv, p * n + j0, row, 0, nb);
                }
            }
            for (int i = i0; i < i1; i++) {
                int ci = i * n + j0;
                if (p0 > 0) {
                    System.arraycopy(cv, ci, acc, 0, nb);
                } else if (beta == 0.0f) {
                    java.util.Arrays.fill(acc, 0, nb, 0.0f);
                } else {
                    for (int j = 0; j < nb; j++) {
                        acc[j] = beta * cv[ci + j];
                    }
                }
                int q = 0;
                for (; q + 4 <= kb; q += 4) {
                    int p = p0 + q;
                    float a0 = transA ? av[p * m + i] : av[i * k + p];
                    float a1 = transA ? av[(p + 1) * m + i] : av[i * k + p + 1];
                    float a2 = transA ? av[(p + 2) * m + i] : av[i * k + p + 2];
                    float a3 = transA ? av[(p + 3) * m + i] : av[i * k + p + 3];
                    float[] b0 = panel[q];
                    float[] b1 = panel[q + 1];
                    float[] b2 = panel[q + 2];
                    float[] b3 = panel[q + 3];
                    axpy4(acc, a0, b0, a1, b1, a2, b2, a3, b3, nb);
                }
                for (; q < kb; q++) {
                    int p = p0 + q;
                    float a0 = transA ? av[p * m + i] : av[i * k + p];
                    axpy1(acc, a0, panel[q], nb);
                }
                System.arraycopy(acc, 0, cv, ci, nb);
            }
        }
    }

    /** acc += a0 b0 + a1 b1 + a2 b2 + a3 b3 over [0, n): a small method C2 compiles to vector code. */
    private static void axpy4(float[] acc, float a0, float[] b0, float a1, float[] b1, float a2, float[] b2, float a3,
                              float[] b3, int n) {
        for (int j = 0; j < n; j++) {
            acc[j] += a0 * b0[j] + a1 * b1[j] + a2 * b2[j] + a3 * b3[j];
        }
    }

    private static void axpy1(float[] acc, float a0, float[] b0, int n) {
        for (int j = 0; j < n; j++) {
            acc[j] += a0 * b0[j];
        }
    }

    @Override
    public void gather(DeviceBuffer images, DeviceBuffer labels, DeviceBuffer order, int offset, int rows, int features,
                       DeviceBuffer x, DeviceBuffer y) {
        float[] img = f(images);
        int[] lab = ints(labels);
        int[] ord = ints(order);
        float[] xv = f(x);
        int[] yv = ints(y);
        for (int r = 0; r < rows; r++) {
            int src = ord[offset + r];
            System.arraycopy(img, src * features, xv, r * features, features);
            yv[r] = lab[src];
        }
        backend.countLaunch();
    }

    @Override
    public void addBias(DeviceBuffer y, DeviceBuffer bias, int rows, int cols) {
        float[] yv = f(y);
        float[] bv = f(bias);
        elementwise(rows * cols, (from, to) -> {
            for (int i = from; i < to; i++) {
                yv[i] += bv[i % cols];
            }
        });
    }

    @Override
    public void columnSums(DeviceBuffer dy, DeviceBuffer out, int rows, int cols) {
        float[] d = f(dy);
        float[] o = f(out);
        java.util.Arrays.fill(o, 0, cols, 0.0f);
        for (int r = 0; r < rows; r++) {
            int at = r * cols;
            for (int c = 0; c < cols; c++) {
                o[c] += d[at + c];
            }
        }
        backend.countLaunch();
    }

    @Override
    public void relu(DeviceBuffer x, DeviceBuffer y, int n) {
        float[] xv = f(x);
        float[] yv = f(y);
        elementwise(n, (from, to) -> {
            for (int i = from; i < to; i++) {
                float v = xv[i];
                yv[i] = v < 0.0f ? 0.0f : v;
            }
        });
    }

    @Override
    public void reluBackward(DeviceBuffer y, DeviceBuffer dy, DeviceBuffer dx, int n) {
        float[] yv = f(y);
        float[] d = f(dy);
        float[] o = f(dx);
        elementwise(n, (from, to) -> {
            for (int i = from; i < to; i++) {
                o[i] = yv[i] > 0.0f ? d[i] : 0.0f;
            }
        });
    }

    @Override
    public void softmaxCrossEntropy(DeviceBuffer logits, DeviceBuffer labels, int rows, int classes,
                                    DeviceBuffer dlogits, DeviceBuffer lossAccum) {
        float[] z = f(logits);
        int[] lab = ints(labels);
        float[] dz = f(dlogits);
        float[] acc = f(lossAccum);
        float invRows = 1.0f / rows;
        float sum = 0.0f;
        for (int r = 0; r < rows; r++) {
            int at = r * classes;
            float m = z[at];
            for (int c = 1; c < classes; c++) {
                m = Math.max(m, z[at + c]);
            }
            float s = 0.0f;
            for (int c = 0; c < classes; c++) {
                s += (float) Math.exp(z[at + c] - m);
            }
            int t = lab[r];
            sum += (m + (float) Math.log(s)) - z[at + t];
            float invS = 1.0f / s;
            for (int c = 0; c < classes; c++) {
                float p = (float) Math.exp(z[at + c] - m) * invS;
                dz[at + c] = (p - (c == t ? 1.0f : 0.0f)) * invRows;
            }
        }
        acc[0] += sum * invRows;
        backend.countLaunch();
    }

    private static int argmaxRow(float[] z, int at, int classes) {
        int best = 0;
        for (int c = 1; c < classes; c++) {
            if (z[at + c] > z[at + best]) {
                best = c;
            }
        }
        return best;
    }

    @Override
    public void countCorrect(DeviceBuffer logits, DeviceBuffer labels, int rows, int classes, DeviceBuffer correctAccum) {
        float[] z = f(logits);
        int[] lab = ints(labels);
        float[] acc = f(correctAccum);
        int count = 0;
        for (int r = 0; r < rows; r++) {
            if (argmaxRow(z, r * classes, classes) == lab[r]) {
                count++;
            }
        }
        acc[0] += count;
        backend.countLaunch();
    }

    @Override
    public void argmax(DeviceBuffer logits, int rows, int classes, DeviceBuffer predicted) {
        float[] z = f(logits);
        int[] out = ints(predicted);
        for (int r = 0; r < rows; r++) {
            out[r] = argmaxRow(z, r * classes, classes);
        }
        backend.countLaunch();
    }

    @Override
    public void adam(DeviceBuffer p, DeviceBuffer g, DeviceBuffer m, DeviceBuffer v, int n, float beta1, float beta2,
                     float eps, float stepSize, float bc2Sqrt) {
        float[] pv = f(p);
        float[] gv = f(g);
        float[] mv = f(m);
        float[] vv = f(v);
        elementwise(n, (from, to) -> {
            for (int i = from; i < to; i++) {
                float gi = gv[i];
                float mi = mv[i] + (1.0f - beta1) * (gi - mv[i]);
                float vi = beta2 * vv[i] + (1.0f - beta2) * gi * gi;
                mv[i] = mi;
                vv[i] = vi;
                pv[i] -= stepSize * mi / ((float) Math.sqrt(vi) / bc2Sqrt + eps);
            }
        });
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        pool.shutdown();
    }
}
