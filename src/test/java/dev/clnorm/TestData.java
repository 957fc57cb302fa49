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
