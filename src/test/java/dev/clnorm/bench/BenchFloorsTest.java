package dev.clnorm.bench;

import dev.clnorm.backend.Backend;
import dev.clnorm.backend.DeviceBuffer;
import dev.clnorm.backend.ElementType;
import dev.clnorm.backend.opencl.OpenClBackend;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The bench's floors do the work they claim: both passes ran (the output depends on the sum of the
 * first over all elements), on every element including the n % 4 tail and the last chunk, with no
 * host transfer and, on OpenCL, exactly two launches each.
 */
class BenchFloorsTest {

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void forwardFloorWritesXLessItsMean(Backend backend) {
        for (int n : new int[]{1, 7, 4099, (1 << 20) + 5}) {
            SplittableRandom r = new SplittableRandom(n + 1);
            float[] x = new float[n];
            double sum = 0;
            double sumAbs = 0;
            for (int i = 0; i < n; i++) {
                // Positive on average, so a floor that skipped its first pass (mean 0) would fail.
                x[i] = (float) (r.nextDouble() * 3 - 0.5);
                sum += x[i];
                sumAbs += Math.abs(x[i]);
            }
            double mean = sum / n;
            try (DeviceBuffer xb = backend.allocate(n, ElementType.FLOAT32);
                 DeviceBuffer yb = backend.allocate(n, ElementType.FLOAT32)) {
                backend.upload(xb, x);
                long transfers = backend.transferCount();
                long launches = backend.kernelLaunches();
                backend.forwardFloor(xb, yb, n);
                backend.finish();
                assertEquals(transfers, backend.transferCount(), "host transfers of the floor");
                if (backend instanceof OpenClBackend) {
                    assertEquals(launches + 2, backend.kernelLaunches(), "launches of the floor");
                }
                float[] y = new float[n];
                backend.download(yb, y);
                // As for the backward floor: float lanes over up to n / 8 values each, then one rounding.
                double meanTolerance = 1e-4 * sumAbs / n;
                for (int i = 0; i < n; i++) {
                    double want = x[i] - mean;
                    double tol = meanTolerance + 1e-6 * (Math.abs(x[i]) + Math.abs(mean));
                    if (Math.abs(y[i] - want) > tol) {
                        assertEquals(want, y[i], tol, "y[" + i + "] of " + n + " on " + backend.info().id());
                    }
                }
                assertTrue(Math.abs(mean) > 100 * meanTolerance, "the data's mean is not negligible");
            }
        }
    }

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void dxIsXPlusDyLessTheirMean(Backend backend) {
        for (int n : new int[]{1, 7, 4099, (1 << 20) + 5}) {
            SplittableRandom r = new SplittableRandom(n);
            float[] x = new float[n];
            float[] dy = new float[n];
            double sum = 0;
            double sumAbs = 0;
            for (int i = 0; i < n; i++) {
                // Positive on average, so a floor that skipped its first pass (mean 0) would fail.
                x[i] = (float) (r.nextDouble() * 4);
                dy[i] = (float) (r.nextDouble() * 2 - 1);
                sum += (double) x[i] + dy[i];
                sumAbs += Math.abs((double) x[i] + dy[i]);
            }
            double mean = sum / n;
            try (DeviceBuffer xb = backend.allocate(n, ElementType.FLOAT32);
                 DeviceBuffer dyb = backend.allocate(n, ElementType.FLOAT32);
                 DeviceBuffer dxb = backend.allocate(n, ElementType.FLOAT32)) {
                backend.upload(xb, x);
                backend.upload(dyb, dy);
                long transfers = backend.transferCount();
                long launches = backend.kernelLaunches();
                backend.backwardFloor(xb, dyb, dxb, n);
                backend.finish();
                assertEquals(transfers, backend.transferCount(), "host transfers of the floor");
                if (backend instanceof OpenClBackend) {
                    assertEquals(launches + 2, backend.kernelLaunches(), "launches of the floor");
                }
                float[] dx = new float[n];
                backend.download(dxb, dx);
                // The sum is accumulated in float lanes over up to n / 8 values each: its relative
                // error stays far below 1e-4 of the sum of |x + dy|; each dx adds two roundings.
                double meanTolerance = 1e-4 * sumAbs / n;
                for (int i = 0; i < n; i++) {
                    double want = (double) x[i] + dy[i] - mean;
                    double tol = meanTolerance + 1e-6 * (Math.abs(x[i]) + Math.abs(dy[i]) + Math.abs(mean));
                    if (Math.abs(dx[i] - want) > tol) {
                        assertEquals(want, dx[i], tol, "dx[" + i + "] of " + n + " on " + backend.info().id());
                    }
                }
                assertTrue(Math.abs(mean) > 100 * meanTolerance, "the data's mean is not negligible");
            }
        }
    }

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void tooFewElementsInABufferIsRefusedBeforeAnyWork(Backend backend) {
        try (DeviceBuffer small = backend.allocate(10, ElementType.FLOAT32);
             DeviceBuffer big = backend.allocate(20, ElementType.FLOAT32)) {
            long launches = backend.kernelLaunches();
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> backend.backwardFloor(big, big, small, 20));
            assertTrue(e.getMessage().contains("20 elements") && e.getMessage().contains("10"), e.getMessage());
            IllegalArgumentException f = assertThrows(IllegalArgumentException.class,
                    () -> backend.forwardFloor(big, small, 20));
            assertTrue(f.getMessage().contains("forward floor over 20 elements") && f.getMessage().contains("10"),
                    f.getMessage());
            assertEquals(launches, backend.kernelLaunches());
        }
    }
}
