package dev.clnorm.bench;

import java.util.Arrays;

/** Order statistics of repeated timings, in milliseconds. */
public record Samples(double median, double p10, double p90, double min) {

    public static Samples of(double[] ms) {
        if (ms.length == 0) {
            throw new IllegalArgumentException("no samples");
        }
        double[] s = ms.clone();
        Arrays.sort(s);
        return new Samples(quantile(s, 0.5), quantile(s, 0.1), quantile(s, 0.9), s[0]);
    }

    /** Linear interpolation between closest ranks of sorted values. */
    static double quantile(double[] sorted, double q) {
        double pos = q * (sorted.length - 1);
        int lo = (int) Math.floor(pos);
        int hi = (int) Math.ceil(pos);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
    }
}
