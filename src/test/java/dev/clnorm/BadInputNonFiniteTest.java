package dev.clnorm;

import dev.clnorm.backend.Backend;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;

import static dev.clnorm.Close.assertClose;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * NaN and Inf in the input (pytorch#1206): the damage stays inside the channel that holds them, that
 * channel's running statistics are never fed a non-finite value (the update is skipped and counted,
 * {@link BatchNorm#skippedUpdates()}), and {@code strictNonFinite} rejects the step instead.
 * Tolerance 2e-4 absolute on the clean channels, as in {@link BatchNormParityTest}.
 */
class BadInputNonFiniteTest {
    private static final double TOL = 2e-4;
    private static final int NC = 5;
    /** Channel 1 holds a NaN, channel 2 a +Inf, channel 3 a -Inf; channels 0 and 4 are clean. */
    private static final int[] BAD = {1, 2, 3};
    private static final int[] CLEAN = {0, 4};

    static Stream<Arguments> backendsAndLayouts() {
        List<Arguments> list = new ArrayList<>();
        for (Backend b : TestBackends.all()) {
            for (Layout layout : Layout.values()) {
                list.add(Arguments.of(b, layout));
            }
        }
        return list.stream();
    }

    private static int[] shape(Layout layout) {
        return layout == Layout.CHANNELS_FIRST ? new int[]{6, NC, 4, 4} : new int[]{6, 4, 4, NC};
    }

    /** Clean data, then one non-finite value in each bad channel (not at its first element). */
    private static float[] poisoned(Geometry g, float[] clean) {
        float[] x = clean.clone();
        x[TestData.indexOf(g, 1, 17)] = Float.NaN;
        x[TestData.indexOf(g, 2, 40)] = Float.POSITIVE_INFINITY;
        x[TestData.indexOf(g, 3, 0)] = Float.NEGATIVE_INFINITY;  // also the channel's first value
        return x;
    }

    @ParameterizedTest(name = "{0} {1}", autoCloseArguments = false)
    @MethodSource("backendsAndLayouts")
    void nonFiniteInputIsConfinedToItsChannelAndNeverReachesRunningStatistics(Backend backend, Layout layout) {
        int[] shape = shape(layout);
        Geometry g = Geometry.of(shape, layout);
        float[] clean = TestData.channelData(g, 31, 2.0, 0.5, 2.0);
        float[] x = poisoned(g, clean);
        float[] dy = TestData.gaussian(x.length, 32);
        float[] gamma = TestData.uniform(NC, 33, 0.5, 1.5);
        float[] beta = TestData.uniform(NC, 34, -1, 1);
        double[] xd = TestData.toDouble(x);
        // Per-channel reference: the clean channels' statistics do not involve the bad values.
        ReferenceBatchNorm.Stats s = ReferenceBatchNorm.stats(TestData.toDouble(clean), g);
        try (BatchNorm bn = BatchNorm.builder(NC).backend(backend).build();
             Tensor xt = Tensor.upload(backend, x, layout, shape);
             Tensor dyt = Tensor.upload(backend, dy, layout, shape);
             Tensor cleanT = Tensor.upload(backend, clean, layout, shape)) {
            bn.setWeight(gamma);
            bn.setBias(beta);
            float[] y;
            try (Tensor yt = bn.forwardTraining(xt)) {
                y = yt.download();
            }
            double[] yRef = ReferenceBatchNorm.normalize(xd, g, s.mean(), s.var(), TestData.toDouble(gamma),
                    TestData.toDouble(beta), 1e-5);
            for (int c : CLEAN) {
                assertClose(ReferenceBatchNorm.channel(yRef, g, c), floats(ReferenceBatchNorm.channel(y, g, c)), TOL,
                        "y of clean channel " + c + " on " + backend);
            }
            for (int c : BAD) {
                // The documented policy: the whole channel is NaN (its mean and variance are NaN).
                for (double v : ReferenceBatchNorm.channel(y, g, c)) {
                    assertTrue(Double.isNaN(v), "y of poisoned channel " + c + " should be NaN, got " + v);
                }
            }

            // Running statistics: clean channels follow the reference; poisoned ones keep 0 and 1.
            double[] rm = new double[NC];
            double[] rv = new double[NC];
            Arrays.fill(rv, 1.0);
            ReferenceBatchNorm.updateRunning(rm, rv, s, 0.1);
            for (int c : BAD) {
                rm[c] = 0;
                rv[c] = 1;
            }
            assertClose(rm, bn.runningMean(), TOL, "running mean on " + backend);
            assertClose(rv, bn.runningVar(), TOL, "running var on " + backend);
            assertArrayEquals(new int[]{0, 1, 1, 1, 0}, bn.skippedUpdates(), "skips counted per channel");
            assertEquals(1, bn.numBatchesTracked());

            // Backward: clean channels' gradients are exact, the poisoned ones do not leak.
            float[] dx;
            try (Tensor dxt = bn.backward(xt, dyt)) {
                dx = dxt.download();
            }
            ReferenceBatchNorm.Grads r = ReferenceBatchNorm.backward(TestData.toDouble(clean), TestData.toDouble(dy), g,
                    TestData.toDouble(gamma), 1e-5);
            float[] dgamma = bn.gradWeight();
            float[] dbeta = bn.gradBias();
            ReferenceBatchNorm.GradMagnitudes mag = ReferenceBatchNorm.gradMagnitudes(TestData.toDouble(clean),
                    TestData.toDouble(dy), g, 1e-5);
            for (int c : CLEAN) {
                assertClose(ReferenceBatchNorm.channel(r.dx(), g, c), floats(ReferenceBatchNorm.channel(dx, g, c)), TOL,
                        "dx of clean channel " + c + " on " + backend);
                // Float32 sums: the parity test's bound 2e-4 + 2e-6 * sum(|terms|).
                assertEquals(r.dgamma()[c], dgamma[c], TOL + 2e-6 * mag.dgamma()[c], "dgamma of channel " + c);
                assertEquals(r.dbeta()[c], dbeta[c], TOL + 2e-6 * mag.dbeta()[c], "dbeta of channel " + c);
            }

            // A second poisoned step counts again; then a clean step updates every channel normally,
            // so the skipped steps left no trace in the running statistics.
            bn.forwardTraining(xt).close();
            assertArrayEquals(new int[]{0, 2, 2, 2, 0}, bn.skippedUpdates());
            bn.forwardTraining(cleanT).close();
            assertArrayEquals(new int[]{0, 2, 2, 2, 0}, bn.skippedUpdates());
            ReferenceBatchNorm.updateRunning(rm, rv, s, 0.1);  // second step: clean channels only
            for (int c : BAD) {
                rm[c] = 0;
                rv[c] = 1;
            }
            ReferenceBatchNorm.updateRunning(rm, rv, s, 0.1);  // third step: every channel
            assertClose(rm, bn.runningMean(), TOL, "running mean after a clean step on " + backend);
            assertClose(rv, bn.runningVar(), TOL, "running var after a clean step on " + backend);
            for (float v : bn.runningVar()) {
                assertTrue(Float.isFinite(v));
            }
        }
    }

    @ParameterizedTest(name = "{0} {1}", autoCloseArguments = false)
    @MethodSource("backendsAndLayouts")
    void inferenceConfinesNonFiniteValuesToTheirOwnElements(Backend backend, Layout layout) {
        int[] shape = shape(layout);
        Geometry g = Geometry.of(shape, layout);
        float[] clean = TestData.channelData(g, 41, 2.0, 0.5, 2.0);
        float[] x = poisoned(g, clean);
        float[] rm = TestData.uniform(NC, 42, -1, 1);
        float[] rv = TestData.uniform(NC, 43, 0.5, 2);
        try (BatchNorm bn = BatchNorm.builder(NC).backend(backend).build();
             Tensor xt = Tensor.upload(backend, x, layout, shape)) {
            bn.setRunningMean(rm);
            bn.setRunningVar(rv);
            try (Tensor y2 = bn.forwardInference(xt)) {
                float[] y = y2.download();
                double[] expected = ReferenceBatchNorm.inference(TestData.toDouble(x), g, TestData.toDouble(rm),
                        TestData.toDouble(rv), new double[]{1, 1, 1, 1, 1}, new double[NC], 1e-5);
                for (int i = 0; i < y.length; i++) {
                    if (Float.isFinite(x[i])) {
                        assertEquals(expected[i], y[i], TOL, "inference y[" + i + "] on " + backend);
                    } else {
                        assertEquals(expected[i], y[i], 0.0, "a non-finite input stays non-finite, same sign");
                    }
                }
            }
        }
    }

    @ParameterizedTest(name = "{0} {1}", autoCloseArguments = false)
    @MethodSource("backendsAndLayouts")
    void strictNonFiniteRejectsTheStepAndChangesNothing(Backend backend, Layout layout) {
        int[] shape = shape(layout);
        Geometry g = Geometry.of(shape, layout);
        float[] clean = TestData.channelData(g, 51, 2.0, 0.5, 2.0);
        float[] x = poisoned(g, clean);
        try (BatchNorm bn = BatchNorm.builder(NC).strictNonFinite(true).backend(backend).build();
             Tensor xt = Tensor.upload(backend, x, layout, shape);
             Tensor cleanT = Tensor.upload(backend, clean, layout, shape);
             Tensor y = Tensor.zeros(backend, layout, shape)) {
            bn.forwardTraining(cleanT, y);  // a good step first: non-trivial state to protect
            float[] rm = bn.runningMean();
            float[] rv = bn.runningVar();
            long buffers = backend.liveBuffers();
            ArithmeticException e = assertThrows(ArithmeticException.class, () -> bn.forwardTraining(xt).close());
            assertTrue(e.getMessage().contains("channels [1, 2, 3]"), e.getMessage());
            assertTrue(e.getMessage().contains("non-finite"), e.getMessage());
            assertEquals(buffers, backend.liveBuffers(), "the output tensor of the rejected step was closed");
            assertArrayEquals(rm, bn.runningMean(), "strict: running means unchanged, clean channels included");
            assertArrayEquals(rv, bn.runningVar(), "strict: running vars unchanged, clean channels included");
            assertArrayEquals(new int[NC], bn.skippedUpdates(), "strict: nothing counted as skipped");
            assertEquals(1, bn.numBatchesTracked(), "strict: the rejected step is not counted");
            // Backward refuses to use the rejected step's statistics.
            IllegalStateException noStats = assertThrows(IllegalStateException.class, () -> bn.backward(xt, xt));
            assertTrue(noStats.getMessage().contains("training forward"), noStats.getMessage());
            // And the layer keeps working.
            bn.forwardTraining(cleanT, y);
            assertEquals(2, bn.numBatchesTracked());
            assertFinite(y.download());
        }
        // Without running statistics strict mode still refuses non-finite batch statistics.
        try (BatchNorm bn = BatchNorm.builder(NC).strictNonFinite(true).trackRunningStats(false).backend(backend)
                .build(); Tensor xt = Tensor.upload(backend, x, layout, shape)) {
            ArithmeticException e = assertThrows(ArithmeticException.class, () -> bn.forwardTraining(xt).close());
            assertTrue(e.getMessage().contains("channels [1, 2, 3]"), e.getMessage());
        }
    }

    private static void assertFinite(float[] v) {
        for (int i = 0; i < v.length; i++) {
            if (!Float.isFinite(v[i])) {
                fail("value " + i + " is " + v[i]);
            }
        }
    }

    private static float[] floats(double[] v) {
        float[] f = new float[v.length];
        for (int i = 0; i < v.length; i++) {
            f[i] = (float) v[i];
        }
        return f;
    }
}
