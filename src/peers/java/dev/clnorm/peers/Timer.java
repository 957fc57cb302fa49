package dev.clnorm.peers;

/**
 * The peers' timing: untimed warm-up calls, then timed calls shared out over rounds (PeersBench
 * pools them and takes the median of wall time; each call runs to completion: every peer here is
 * synchronous on the CPU). Slow implementations get fewer timed calls so a full run stays short;
 * never fewer than {@link #MIN_REPEATS} in all.
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

    /**
     * The warm-up calls (at least one, {@code before} ahead of each); returns how many timed calls
     * each of {@code rounds} rounds takes: the repeats, or as many as the time budget allows by the
     * last warm-up call's time but at least MIN_REPEATS (where the repeats reach it), shared out.
     */
    int warmUp(Call before, Call call, int rounds) throws Exception {
        double last = 0;
        for (int w = 0; w < Math.max(1, warmup); w++) {
            last = untimed(before, call);
        }
        int n = repeats;
        if (last * repeats > secondsPerMeasurement) {
            n = Math.max(Math.min(MIN_REPEATS, repeats), (int) (secondsPerMeasurement / Math.max(last, 1e-9)));
        }
        return (n + rounds - 1) / rounds;
    }

    /**
     * Untimed calls ahead of a later round's timed ones: as many as the warm-up (at least one), but
     * none after {@link #SETTLE_SECONDS}. With a single call, a Java implementation timed right after
     * a peer ran 15-40% slower than in a sequential run (32x1024x14x14, 2026-11-21); three brought it
     * back within that run's spread.
     */
    void settle(Call before, Call call) throws Exception {
        double spent = 0;
        for (int w = 0; w < Math.max(1, warmup) && (w == 0 || spent < SETTLE_SECONDS); w++) {
            spent += untimed(before, call);
        }
    }

    static final double SETTLE_SECONDS = 0.5;

    /** One call that is not timed for the results, {@code before} ahead of it; returns its seconds. */
    double untimed(Call before, Call call) throws Exception {
        if (before != null) {
            before.run();
        }
        long t0 = System.nanoTime();
        call.run();
        return (System.nanoTime() - t0) / 1e9;
    }

    /** {@code calls} timed calls, each after an untimed {@code before}: their wall times in ms. */
    double[] sample(Call before, Call call, int calls) throws Exception {
        double[] ms = new double[calls];
        for (int i = 0; i < calls; i++) {
            if (before != null) {
                before.run();
            }
            long t0 = System.nanoTime();
            call.run();
            ms[i] = (System.nanoTime() - t0) / 1e6;
        }
        return ms;
    }
}
