package dev.clnorm;

import dev.clnorm.backend.java.JavaBackend;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The Java backend's traversal for rows under 128 values (per-position sums over blocks of
 * channels, JavaBatchNormOps#veryShortRowsTraining) on a backend with a fixed two threads: the
 * suite's shared Java backend has as many threads as the machine has cores, and with more cores
 * these shapes have too few channels for that traversal and would quietly take another one.
 */
class JavaSpanTraversalTest {
    private static JavaBackend twoThreads;

    @BeforeAll
    static void open() {
        twoThreads = new JavaBackend(2);
    }

    @AfterAll
    static void close() {
        twoThreads.close();
    }

    @Test
    void severalBlocksRunsAndLeftoverSamplesMatchTheReference() {
        BatchNormParityTest.checkAgainstReference(twoThreads, Layout.CHANNELS_FIRST, new int[]{40, 100, 7, 7});
        BatchNormParityTest.checkAgainstReference(twoThreads, Layout.CHANNELS_FIRST, new int[]{90, 50, 7, 7});
    }

    @Test
    void anOutlierAsTheFirstValueOfAChannelCostsNoPrecision() {
        // As NumericsTest's case of the same name: the span traversal must move its shifts off each
        // channel's first value (fails with the first-value shift kept: y off by 1.2e-3).
        int[] shape = {64, 4, 8, 8};
        Geometry g = Geometry.of(shape, Layout.CHANNELS_FIRST);
        float[] x = TestData.channelData(g, 131, new double[]{0, 1, -2, 100}, new double[]{1, 1, 0.5, 0.01});
        for (int c = 0; c < g.channels(); c++) {
            x[c * g.inner()] += (float) (3e3 * (c == 3 ? 0.01 : 1));
        }
        NumericsTest.assertMatchesReference(twoThreads, Layout.CHANNELS_FIRST, shape, x);
    }
}
