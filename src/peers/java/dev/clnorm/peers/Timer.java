package dev.clnorm.peers;

import dev.clnorm.bench.Samples;

/**
 * The bench's methodology for the peers: untimed warm-up calls, then timed calls, median of wall
 * time (each call runs to completion: every peer here is synchronous on the CPU). Slow peers get
 * fewer timed calls so a full run stays short; never fewer than {@link #MIN_REPEATS}.
 */
final class Timer {
    static final int MIN_REPEATS = 5;

    interface Call {
        void run() throws Exception;
    }

    private final int warmup;
    private final int repeats;
    private final double secondsPerMeasurement;

    Timer(int warmup, int repeats, double secondsPerMeasurement) {
        this.warmup = warmup;
        this.repeats = repeats;
        this.secondsPerMeasurement = secondsPerMeasurement;
    }

    int warmup() {
        return warmup;
    }

    int repeats() {
        return repeats;
    }

    Samples time(Call call) throws Exception {
        return time(null, call);
    }

    /** Like {@link #time(Call)}, with an untimed {@code before} ahead of every call (e.g. the forward a backward consumes). */
    Samples time(Call before, Call call) throws Exception {
        double last = 0;
        for (int w = 0; w < Math.max(1, warmup); w++) {
            if (before != null) {
                before.run();
            }
            long t0 = System.nanoTime();
            call.run();
            last = (System.nanoTime() - t0) / 1e9;
        }
        int n = repeats;
        if (last * repeats > secondsPerMeasurement) {
            n = Math.max(Math.min(MIN_REPEATS, repeats), (int) (secondsPerMeasurement / Math.max(last, 1e-9)));
        }
        double[] ms = new double[n];
        for (int i = 0; i < n; i++) {
            if (before != null) {
                before.run();
            }
            long t0 = System.nanoTime();
            call.run();
            ms[i] = (System.nanoTime() - t0) / 1e6;
        }
        return Samples.of(ms);
    }
}
