import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * What a two-pass backward's second read of x and dy gets from the caches, on this machine.
 *
 * <p>Not part of the library: a standalone probe behind the README's backward paragraph. It times,
 * in interleaved rounds on two threads, a bare copy and two orders of the same two-pass NCHW backward
 * (pass 1 sums dy and dy * (x - c) per channel, pass 2 writes dx from x and dy):
 * <ul>
 *   <li>{@code per-channel}: each thread takes whole channels (what the library does where a channel
 *       is long), so pass 2 re-reads a channel of x and dy that one core has just streamed;</li>
 *   <li>{@code split-channel}: both threads take every channel, half the samples each, meeting at a
 *       barrier between the passes, so each core re-reads only half a channel.</li>
 * </ul>
 * and, on one thread, a 3 MB array read straight after being flushed from the caches, read again
 * at once, and read a few times more.
 *
 * <p>Run: {@code java --add-modules jdk.incubator.vector scripts/probes/BackwardCacheProbe.java 32x64x112x112}
 */
public final class BackwardCacheProbe {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int THREADS = 2;
    private static final int ROUNDS = 21;

    private final int n, c, hw;
    private final float[] x, dy, dx;
    private final ExecutorService pool = Executors.newFixedThreadPool(THREADS);

    private BackwardCacheProbe(int n, int c, int hw) {
        this.n = n;
        this.c = c;
        this.hw = hw;
        int size = Math.multiplyExact(Math.multiplyExact(n, c), hw);
        x = new float[size];
        dy = new float[size];
        dx = new float[size];
        SplittableRandom r = new SplittableRandom(1);
        for (int i = 0; i < size; i++) {
            x[i] = (float) r.nextDouble();
            dy[i] = (float) r.nextDouble() - 0.5f;
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 1 || !args[0].matches("\\d+x\\d+x\\d+x\\d+")) {
            System.err.println("usage: BackwardCacheProbe NxCxHxW   (an NCHW shape, e.g. 32x64x112x112); got "
                    + Arrays.toString(args));
            System.exit(2);
        }
        int[] s = Arrays.stream(args[0].split("x")).mapToInt(Integer::parseInt).toArray();
        BackwardCacheProbe p = new BackwardCacheProbe(s[0], s[1], s[2] * s[3]);
        try {
            p.backwardOrders(args[0]);
        } finally {
            p.pool.shutdownNow();
        }
        reread();
    }

    private void backwardOrders(String shape) throws Exception {
        String[] names = {"copy", "per-channel", "split-channel"};
        for (int w = 0; w < 5; w++) {
            for (int m = 0; m < names.length; m++) {
                run(m);
            }
        }
        double[][] t = new double[names.length][ROUNDS];
        for (int r = 0; r < ROUNDS; r++) {
            for (int m = 0; m < names.length; m++) {
                long t0 = System.nanoTime();
                run(m);
                t[m][r] = (System.nanoTime() - t0) / 1e6;
            }
        }
        System.out.printf("shape %s, %d threads, medians of %d interleaved rounds (one call each)%n",
                shape, THREADS, ROUNDS);
        for (int m = 0; m < names.length; m++) {
            double[] toPerChannel = new double[ROUNDS];
            double[] copyShare = new double[ROUNDS];
            for (int r = 0; r < ROUNDS; r++) {
                toPerChannel[r] = t[m][r] / t[1][r];
                // % of copy in the 12 bytes/element backward model: copy moves 8, backward is counted 12.
                copyShare[r] = 100 * 1.5 * t[0][r] / t[m][r];
            }
            System.out.printf("  %-14s %8.3f ms  time / per-channel %.3f  %% copy (12 B/element) %3.0f%n",
                    names[m], median(t[m]), median(toPerChannel), m == 0 ? 100 : median(copyShare));
        }
    }

    private void run(int mode) throws Exception {
        List<Future<?>> parts = new ArrayList<>();
        CyclicBarrier barrier = new CyclicBarrier(THREADS);
        double[][] partial = new double[THREADS][2];
        for (int t = 0; t < THREADS; t++) {
            int id = t;
            parts.add(pool.submit(() -> {
                switch (mode) {
                    case 0 -> {
                        int lo = (int) ((long) x.length * id / THREADS), hi = (int) ((long) x.length * (id + 1) / THREADS);
                        System.arraycopy(x, lo, dx, lo, hi - lo);
                    }
                    case 1 -> {
                        for (int ch = id; ch < c; ch += THREADS) {
                            double[] sums = new double[2];
                            for (int o = 0; o < n; o++) {
                                sums(row(o, ch), row(o, ch) + hw, sums);
                            }
                            for (int o = 0; o < n; o++) {
                                dx(row(o, ch), row(o, ch) + hw, sums);
                            }
                        }
                    }
                    default -> {
                        int o0 = n * id / THREADS, o1 = n * (id + 1) / THREADS;
                        for (int ch = 0; ch < c; ch++) {
                            partial[id][0] = 0;
                            partial[id][1] = 0;
                            for (int o = o0; o < o1; o++) {
                                sums(row(o, ch), row(o, ch) + hw, partial[id]);
                            }
                            // A timeout, so that a thread that failed cannot leave the other waiting for ever.
                            barrier.await(60, TimeUnit.SECONDS);
                            double[] sums = {0, 0};
                            for (double[] q : partial) {
                                sums[0] += q[0];
                                sums[1] += q[1];
                            }
                            for (int o = o0; o < o1; o++) {
                                dx(row(o, ch), row(o, ch) + hw, sums);
                            }
                            // Nobody may reset its partial sums for the next channel before all have read them.
                            barrier.await(60, TimeUnit.SECONDS);
                        }
                    }
                }
                return null;
            }));
        }
        for (Future<?> f : parts) {
            f.get();
        }
    }

    private int row(int sample, int channel) {
        return (sample * c + channel) * hw;
    }

    /** Pass 1: adds the sum of dy and of dy * (x - 0.5) over [from, to) to out[0], out[1]. */
    private void sums(int from, int to, double[] out) {
        FloatVector a = FloatVector.zero(S), b = FloatVector.zero(S), centre = FloatVector.broadcast(S, 0.5f);
        int i = from;
        for (; i <= to - S.length(); i += S.length()) {
            FloatVector xv = FloatVector.fromArray(S, x, i), dv = FloatVector.fromArray(S, dy, i);
            a = a.add(dv);
            b = xv.sub(centre).fma(dv, b);
        }
        double sa = a.reduceLanes(VectorOperators.ADD), sb = b.reduceLanes(VectorOperators.ADD);
        for (; i < to; i++) {
            sa += dy[i];
            sb += (x[i] - 0.5f) * dy[i];
        }
        out[0] += sa;
        out[1] += sb;
    }

    /** Pass 2: dx = dy - mean(dy) - (x - 0.5) * mean(dy * (x - 0.5)) over [from, to). */
    private void dx(int from, int to, double[] sums) {
        float p = (float) (sums[0] / ((double) n * hw)), q = (float) (sums[1] / ((double) n * hw));
        FloatVector centre = FloatVector.broadcast(S, 0.5f), pv = FloatVector.broadcast(S, p), qv = FloatVector.broadcast(S, q);
        int i = from;
        for (; i <= to - S.length(); i += S.length()) {
            FloatVector xv = FloatVector.fromArray(S, x, i), dv = FloatVector.fromArray(S, dy, i);
            dv.sub(pv).sub(xv.sub(centre).mul(qv)).intoArray(dx, i);
        }
        for (; i < to; i++) {
            dx[i] = dy[i] - p - (x[i] - 0.5f) * q;
        }
    }

    /**
     * One thread: a 3 MB array (a 112x112 channel's x and dy, about) read right after 256 MB of other
     * data has pushed it out of every cache, read again at once, and read after four more reads.
     */
    private static void reread() {
        float[] a = new float[3 << 18];
        float[] flush = new float[64 << 20];
        Arrays.fill(a, 1f);
        double[][] gbs = new double[3][ROUNDS];
        float sink = 0;
        for (int r = -3; r < ROUNDS; r++) {
            for (int i = 0; i < flush.length; i += 16) {
                flush[i] += 1;
            }
            long t0 = System.nanoTime();
            sink += sum(a);
            long t1 = System.nanoTime();
            sink += sum(a);
            long t2 = System.nanoTime();
            for (int k = 0; k < 4; k++) {
                sink += sum(a);
            }
            long t3 = System.nanoTime();
            sink += sum(a);
            long t4 = System.nanoTime();
            if (r >= 0) {
                double bytes = a.length * 4.0;
                gbs[0][r] = bytes / (t1 - t0);
                gbs[1][r] = bytes / (t2 - t1);
                gbs[2][r] = bytes / (t4 - t3);
            }
        }
        System.out.printf("one thread reading a 3 MB array, GB/s, medians of %d: from memory %.1f, at once again %.1f,"
                + " after four more reads %.1f   (checksum %.0f)%n",
                ROUNDS, median(gbs[0]), median(gbs[1]), median(gbs[2]), sink);
    }

    private static float sum(float[] a) {
        FloatVector acc = FloatVector.zero(S);
        for (int i = 0; i < a.length; i += S.length()) {
            acc = acc.add(FloatVector.fromArray(S, a, i));
        }
        return acc.reduceLanes(VectorOperators.ADD);
    }

    private static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        return s[s.length / 2];
    }
}
