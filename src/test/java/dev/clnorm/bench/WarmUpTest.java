package dev.clnorm.bench;

import dev.clnorm.Layout;
import dev.clnorm.backend.java.JavaBackend;
import org.junit.jupiter.api.Test;

import java.util.EnumSet;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongSupplier;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The bench's warm-up goes on while the JIT is still compiling, within a cap. A fake compilation
 * clock stands in for the JVM's so that each case is deterministic: one that advances on every read
 * (a JIT that never settles), one that never moves (nothing left to compile), none at all.
 * Each run measures two operations (copy and inference) on a 4x8 tensor, microseconds per call, so
 * the warm-up alone decides how long a run takes.
 */
class WarmUpTest {
    private static final double REQUESTED = 0.05;

    private static double secondsFor(LongSupplier jit) {
        try (JavaBackend backend = new JavaBackend(1)) {
            BenchRunner runner = new BenchRunner(0, 1, REQUESTED, jit);
            long t0 = System.nanoTime();
            runner.run(backend, new int[]{4, 8}, Layout.CHANNELS_FIRST, EnumSet.of(Op.INFERENCE), msg -> { });
            return (System.nanoTime() - t0) / 1e9;
        }
    }

    @Test
    void aJitThatKeepsCompilingIsWaitedForUpToTheCap() {
        AtomicLong millis = new AtomicLong();
        double seconds = secondsFor(millis::incrementAndGet);
        double cap = REQUESTED * BenchRunner.WARMUP_CAP_FACTOR;  // per measured operation
        assertTrue(seconds >= 2 * cap, "stopped before the cap: " + seconds + " s");
        assertTrue(seconds < 2 * cap + 1.5, "ran past the cap: " + seconds + " s");
    }

    @Test
    void aQuietJitEndsTheWarmUpAfterTheQuietWindow() {
        double seconds = secondsFor(() -> 42);
        double quiet = BenchRunner.JIT_QUIET_SECONDS;  // longer than REQUESTED, so it decides
        assertTrue(seconds >= 2 * quiet, "ended before the quiet window: " + seconds + " s");
        assertTrue(seconds < 2 * REQUESTED * BenchRunner.WARMUP_CAP_FACTOR, "waited as if compiling: " + seconds + " s");
    }

    @Test
    void withoutACompilationClockTheRequestedTimeIsTheWarmUp() {
        double seconds = secondsFor(null);
        assertTrue(seconds >= 2 * REQUESTED, "shorter than requested: " + seconds + " s");
        assertTrue(seconds < 2 * BenchRunner.JIT_QUIET_SECONDS, "waited for a JIT it cannot see: " + seconds + " s");
    }
}
