package dev.clnorm;

import java.util.SplittableRandom;

/** Seeded inputs for the tests: Gaussian values with a different mean and spread per channel. */
final class TestData {
    private TestData() {
    }

    static float[] channelData(Geometry g, long seed, double meanRange, double minStd, double maxStd) {
        SplittableRandom r = new SplittableRandom(seed);
        double[] mean = new double[g.channels()];
        double[] std = new double[g.channels()];
        for (int c = 0; c < g.channels(); c++) {
            mean[c] = (r.nextDouble() * 2 - 1) * meanRange;
            std[c] = minStd + r.nextDouble() * (maxStd - minStd);
        }
        float[] x = new float[(int) g.elements()];
        for (int o = 0; o < g.outer(); o++) {
            for (int c = 0; c < g.channels(); c++) {
                for (int i = 0; i < g.inner(); i++) {
                    x[(o * g.channels() + c) * g.inner() + i] = (float) (mean[c] + std[c] * gaussian(r));
                }
            }
        }
        return x;
    }

    /**
     * Gaussian values with the given mean and standard deviation per channel (rounded to float32,
     * so a channel whose spread is below float32's resolution at its mean comes out quantised).
     */
    static float[] channelData(Geometry g, long seed, double[] mean, double[] std) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] x = new float[(int) g.elements()];
        for (int o = 0; o < g.outer(); o++) {
            for (int c = 0; c < g.channels(); c++) {
                for (int i = 0; i < g.inner(); i++) {
                    x[(o * g.channels() + c) * g.inner() + i] = (float) (mean[c] + std[c] * gaussian(r));
                }
            }
        }
        return x;
    }

    /** Overwrites every value of channel c with {@code value}. */
    static void fillChannel(float[] x, Geometry g, int c, float value) {
        for (int o = 0; o < g.outer(); o++) {
            for (int i = 0; i < g.inner(); i++) {
                x[(o * g.channels() + c) * g.inner() + i] = value;
            }
        }
    }

    /** Flat index of the k-th value (0 <= k < outer*inner) of channel c. */
    static int indexOf(Geometry g, int c, int k) {
        int o = k / g.inner();
        int i = k - o * g.inner();
        return (o * g.channels() + c) * g.inner() + i;
    }

    static float[] gaussian(int n, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) gaussian(r);
        }
        return v;
    }

    static float[] uniform(int n, long seed, double lo, double hi) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (lo + (hi - lo) * r.nextDouble());
        }
        return v;
    }

    /** Box-Muller; SplittableRandom has no nextGaussian on Java 17. */
    static double gaussian(SplittableRandom r) {
        double u = 1.0 - r.nextDouble();
        double v = r.nextDouble();
        return Math.sqrt(-2.0 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    }

    static double[] toDouble(float[] x) {
        return ReferenceBatchNorm.toDouble(x);
    }
}
