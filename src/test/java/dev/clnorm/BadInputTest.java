package dev.clnorm;

import dev.clnorm.backend.Backend;
import dev.clnorm.backend.ElementType;
import dev.clnorm.backend.java.JavaBackend;
import org.junit.jupiter.api.function.Executable;
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
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Bad input is a clear error raised before any device work, naming what was expected and what was
 * received, and it leaves everything the layer stores unchanged. Every check primes the layer with
 * a real training step first, so "unchanged" compares against non-trivial state.
 */
class BadInputTest {
    private static final int C = 4;

    static Stream<Arguments> backendsAndLayouts() {
        List<Arguments> list = new ArrayList<>();
        for (Backend b : TestBackends.all()) {
            for (Layout layout : Layout.values()) {
                list.add(Arguments.of(b, layout));
            }
        }
        return list.stream();
    }

    /** Everything the layer stores, downloaded. */
    private record Snapshot(float[] weight, float[] bias, float[] runningMean, float[] runningVar, float[] savedMean,
                            float[] savedInvstd, float[] gradWeight, float[] gradBias, int[] skipped, long tracked) {
        static Snapshot of(BatchNorm bn) {
            return new Snapshot(bn.weight(), bn.bias(), bn.runningMean(), bn.runningVar(), bn.savedMean(),
                    bn.savedInvstd(), bn.gradWeight(), bn.gradBias(), bn.skippedUpdates(), bn.numBatchesTracked());
        }

        void assertSame(BatchNorm bn, String what) {
            Snapshot now = of(bn);
            assertArrayEquals(weight, now.weight, what + ": weight changed");
            assertArrayEquals(bias, now.bias, what + ": bias changed");
            assertArrayEquals(runningMean, now.runningMean, what + ": running_mean changed");
            assertArrayEquals(runningVar, now.runningVar, what + ": running_var changed");
            assertArrayEquals(savedMean, now.savedMean, what + ": saved mean changed");
            assertArrayEquals(savedInvstd, now.savedInvstd, what + ": saved invstd changed");
            assertArrayEquals(gradWeight, now.gradWeight, what + ": dgamma changed");
            assertArrayEquals(gradBias, now.gradBias, what + ": dbeta changed");
            assertArrayEquals(skipped, now.skipped, what + ": skip counters changed");
            assertEquals(tracked, now.tracked, what + ": numBatchesTracked changed");
        }
    }

    /**
     * Runs {@code action}, which must throw {@code type}; asserts that no kernel ran, nothing was
     * transferred, no buffer was left allocated and the layer's state is unchanged. Returns the message.
     */
    private static String rejects(Class<? extends Throwable> type, Backend backend, BatchNorm bn, Executable action) {
        Snapshot before = bn == null ? null : Snapshot.of(bn);
        long launches = backend.kernelLaunches();
        long transfers = backend.transferCount();
        long buffers = backend.liveBuffers();
        Throwable e = assertThrows(type, action);
        String what = "after " + type.getSimpleName() + " '" + e.getMessage() + "' on " + backend;
        assertEquals(launches, backend.kernelLaunches(), "a kernel ran " + what);
        assertEquals(transfers, backend.transferCount(), "a host-device transfer happened " + what);
        assertEquals(buffers, backend.liveBuffers(), "device buffers were left allocated " + what);
        if (before != null) {
            before.assertSame(bn, what);
        }
        assertTrue(e.getMessage() != null && !e.getMessage().isBlank(), "an error message " + what);
        return e.getMessage();
    }

    private static void assertContains(String message, String... parts) {
        for (String p : parts) {
            assertTrue(message.contains(p), "message should contain '" + p + "': " + message);
        }
    }

    private static int[] shape(Layout layout, int n, int c, int s) {
        return layout == Layout.CHANNELS_FIRST ? new int[]{n, c, s} : new int[]{n, s, c};
    }

    /** A layer with a completed training step and backward (non-trivial state to protect). */
    private static BatchNorm primed(Backend backend, Layout layout) {
        BatchNorm bn = BatchNorm.builder(C).backend(backend).build();
        int[] shape = shape(layout, 3, C, 5);
        Geometry g = Geometry.of(shape, layout);
        bn.setWeight(TestData.uniform(C, 1, 0.5, 1.5));
        bn.setBias(TestData.uniform(C, 2, -1, 1));
        try (Tensor x = Tensor.upload(backend, TestData.channelData(g, 3, 2.0, 0.5, 2.0), layout, shape);
             Tensor dy = Tensor.upload(backend, TestData.gaussian((int) g.elements(), 4), layout, shape);
             Tensor y = bn.forwardTraining(x);
             Tensor dx = bn.backward(x, dy)) {
            assertEquals(1, bn.numBatchesTracked());
            assertEquals(x.elements(), dx.elements());
        }
        return bn;
    }

    private static Tensor tensor(Backend backend, Layout layout, int... shape) {
        long n = 1;
        for (int d : shape) {
            n *= d;
        }
        return Tensor.upload(backend, TestData.gaussian((int) n, Arrays.hashCode(shape)), layout, shape);
    }

    // ------------------------------------------------------------------ rank

    @ParameterizedTest(name = "{0} {1}", autoCloseArguments = false)
    @MethodSource("backendsAndLayouts")
    void rankBelowTwoOrAboveFiveIsRejected(Backend backend, Layout layout) {
        try (BatchNorm bn = primed(backend, layout);
             Tensor rank1 = tensor(backend, layout, 6);
             Tensor rank0 = Tensor.upload(backend, new float[]{1f}, layout);
             Tensor rank6 = tensor(backend, layout, 2, C, 1, 1, 1, 2)) {
            String m = rejects(IllegalArgumentException.class, backend, bn, () -> bn.forwardTraining(rank1));
            assertContains(m, "rank 2 to 5", "got rank 1", "[6]");
            m = rejects(IllegalArgumentException.class, backend, bn, () -> bn.forwardInference(rank1));
            assertContains(m, "rank 2 to 5", "got rank 1");
            m = rejects(IllegalArgumentException.class, backend, bn, () -> bn.backward(rank1, rank1));
            assertContains(m, "rank 2 to 5", "got rank 1");
            m = rejects(IllegalArgumentException.class, backend, bn, () -> bn.forwardTraining(rank0));
            assertContains(m, "rank 2 to 5", "got rank 0", "[]");
            m = rejects(IllegalArgumentException.class, backend, bn, () -> bn.forwardTraining(rank6));
            assertContains(m, "rank 2 to 5", "got rank 6");
            m = rejects(IllegalArgumentException.class, backend, bn, () -> bn.forwardTraining(new float[6], 6));
            assertContains(m, "rank 2 to 5", "got rank 1");
        }
    }

    // ------------------------------------------------------------------ channel counts

    @ParameterizedTest(name = "{0} {1}", autoCloseArguments = false)
    @MethodSource("backendsAndLayouts")
    void inputChannelCountMustMatchTheLayer(Backend backend, Layout layout) {
        try (BatchNorm bn = primed(backend, layout);
             Tensor three = tensor(backend, layout, shape(layout, 2, 3, 5));
             Tensor zero = tensor(backend, layout, shape(layout, 2, 0, 5));
             Tensor y = Tensor.zeros(backend, layout, shape(layout, 2, 3, 5))) {
            for (Executable call : new Executable[]{() -> bn.forwardTraining(three), () -> bn.forwardInference(three),
                    () -> bn.forwardTraining(three, y), () -> bn.forwardInference(three, y),
                    () -> bn.backward(three, three)}) {
                String m = rejects(IllegalArgumentException.class, backend, bn, call);
                assertContains(m, "expected input with 4 channels", "got shape " + Arrays.toString(three.shape()),
                        "with 3", layout.toString());
            }
            String m = rejects(IllegalArgumentException.class, backend, bn, () -> bn.forwardTraining(zero));
            assertContains(m, "expected input with 4 channels", "with 0");
            m = rejects(IllegalArgumentException.class, backend, bn, () -> bn.forwardTraining(new float[30], 2, 3, 5));
            assertContains(m, "expected input with 4 channels", "[2, 3, 5]", "with 3");
        }
    }

    @ParameterizedTest(name = "{0} {1}", autoCloseArguments = false)
    @MethodSource("backendsAndLayouts")
    void aTensorReadInTheOtherLayoutHasTheWrongChannelCount(Backend backend, Layout layout) {
        // The same (2, 4, 3) array read in the other layout has 3 channels (or 4 on the other axis).
        Layout other = layout == Layout.CHANNELS_FIRST ? Layout.CHANNELS_LAST : Layout.CHANNELS_FIRST;
        int[] s = layout == Layout.CHANNELS_FIRST ? new int[]{2, C, 3} : new int[]{2, 3, C};
        try (BatchNorm bn = primed(backend, layout);
             Tensor misread = tensor(backend, other, s)) {
            String m = rejects(IllegalArgumentException.class, backend, bn, () -> bn.forwardTraining(misread));
            assertContains(m, "expected input with 4 channels", other.toString(), "with 3");
        }
    }

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void parameterAndRunningStatisticLengthsMustMatchChannels(Backend backend) {
        try (BatchNorm bn = primed(backend, Layout.CHANNELS_FIRST)) {
            String[] names = {"weight", "bias", "running_mean", "running_var"};
            for (int len : new int[]{C - 1, C + 1, 0}) {
                float[] v = new float[len];
                Arrays.fill(v, 0.5f);
                Executable[] setters = {() -> bn.setWeight(v), () -> bn.setBias(v), () -> bn.setRunningMean(v),
                        () -> bn.setRunningVar(v)};
                for (int k = 0; k < names.length; k++) {
                    // PyTorch's wording: 'running_mean should contain 256 elements not 128'.
                    String m = rejects(IllegalArgumentException.class, backend, bn, setters[k]);
                    assertEquals(names[k] + " should contain " + C + " elements not " + len, m);
                }
            }
            rejects(NullPointerException.class, backend, bn, () -> bn.setWeight((float[]) null));
            rejects(NullPointerException.class, backend, bn, () -> bn.setRunningVar((float[]) null));
            rejects(NullPointerException.class, backend, bn, () -> bn.setWeight((double[]) null));
            rejects(NullPointerException.class, backend, bn, () -> bn.setRunningVar((double[]) null));
        }
    }

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void zeroOrNegativeChannelCountIsRejectedAtConstruction(Backend backend) {
        for (int c : new int[]{0, -3}) {
            String m = rejects(IllegalArgumentException.class, backend, null,
                    () -> BatchNorm.builder(c).backend(backend).build());
            assertContains(m, "num_features", "must be positive", "got " + c);
        }
    }

    // ------------------------------------------------------------------ dy / y / dx shapes and layouts

    @ParameterizedTest(name = "{0} {1}", autoCloseArguments = false)
    @MethodSource("backendsAndLayouts")
    void dyYAndDxMustMatchTheInputShapeAndLayout(Backend backend, Layout layout) {
        Layout other = layout == Layout.CHANNELS_FIRST ? Layout.CHANNELS_LAST : Layout.CHANNELS_FIRST;
        int[] s = shape(layout, 3, C, 5);
        int[] wrong = shape(layout, 3, C, 6);
        try (BatchNorm bn = primed(backend, layout);
             Tensor x = tensor(backend, layout, s);
             Tensor wrongShape = tensor(backend, layout, wrong);
             Tensor wrongLayout = tensor(backend, other, s);
             Tensor ok = tensor(backend, layout, s)) {
            String expected = "expected shape " + Arrays.toString(s) + " " + layout;
            String m = rejects(IllegalArgumentException.class, backend, bn, () -> bn.backward(x, wrongShape));
            assertContains(m, "dy must match the input", expected, "got " + Arrays.toString(wrong));
            m = rejects(IllegalArgumentException.class, backend, bn, () -> bn.backward(x, wrongLayout));
            assertContains(m, "dy must match the input", expected, "got " + Arrays.toString(s) + " " + other);
            m = rejects(IllegalArgumentException.class, backend, bn, () -> bn.backward(x, ok, wrongShape));
            assertContains(m, "dx must match the input", expected);
            m = rejects(IllegalArgumentException.class, backend, bn, () -> bn.forwardTraining(x, wrongShape));
            assertContains(m, "output must match the input", expected);
            m = rejects(IllegalArgumentException.class, backend, bn, () -> bn.forwardTraining(x, wrongLayout));
            assertContains(m, "output must match the input", "got " + Arrays.toString(s) + " " + other);
            m = rejects(IllegalArgumentException.class, backend, bn, () -> bn.forwardInference(x, wrongShape));
            assertContains(m, "output must match the input", expected);
            // float[] conveniences: the array length is checked against the shape before any upload.
            m = rejects(IllegalArgumentException.class, backend, bn,
                    () -> bn.forwardTraining(new float[14], 3, C, 5));
            assertContains(m, "needs 60 values", "got an array of 14");
            m = rejects(IllegalArgumentException.class, backend, bn,
                    () -> bn.backward(new float[60], new float[59], 3, C, 5));
            assertContains(m, "needs 60 values", "got an array of 59");
        }
    }

    @ParameterizedTest(name = "{0} {1}", autoCloseArguments = false)
    @MethodSource("backendsAndLayouts")
    void backwardNeedsTheInputOfTheLastTrainingForward(Backend backend, Layout layout) {
        try (BatchNorm fresh = BatchNorm.builder(C).backend(backend).build();
             BatchNorm bn = primed(backend, layout);
             Tensor x = tensor(backend, layout, shape(layout, 3, C, 5));
             Tensor other = tensor(backend, layout, shape(layout, 2, C, 5))) {
            String m = rejects(IllegalStateException.class, backend, fresh, () -> fresh.backward(x, x));
            assertContains(m, "backward needs the statistics of a training forward");
            m = rejects(IllegalArgumentException.class, backend, bn, () -> bn.backward(other, other));
            assertContains(m, "backward expects the input of the last training forward", "[2, ");
        }
    }

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void tensorsOfAnotherBackendAreRejected(Backend backend) {
        try (JavaBackend elsewhere = new JavaBackend(1);
             BatchNorm bn = primed(backend, Layout.CHANNELS_FIRST);
             Tensor foreign = tensor(elsewhere, Layout.CHANNELS_FIRST, 3, C, 5)) {
            String m = rejects(IllegalArgumentException.class, backend, bn, () -> bn.forwardTraining(foreign));
            assertContains(m, "input tensor lives on java", "but this layer lives on " + backend.info().id());
            if (backend.info().id().equals("java")) {
                assertContains(m, "a different backend instance");
            }
        }
    }

    // ------------------------------------------------------------------ one value per channel

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void trainingWithOneValuePerChannelIsRejectedLikePyTorch(Backend backend) {
        try (BatchNorm bn10 = BatchNorm.builder(10).backend(backend).build();
             BatchNorm batchStats = BatchNorm.builder(10).trackRunningStats(false).backend(backend).build();
             Tensor x = tensor(backend, Layout.CHANNELS_FIRST, 1, 10);
             Tensor x3 = tensor(backend, Layout.CHANNELS_FIRST, 1, 10, 1);
             Tensor xl = tensor(backend, Layout.CHANNELS_LAST, 1, 1, 1, 10);
             Tensor y = Tensor.zeros(backend, Layout.CHANNELS_FIRST, 1, 10)) {
            String expected = "Expected more than 1 value per channel when training, got input size [1, 10]";
            assertEquals(expected, rejects(IllegalArgumentException.class, backend, bn10, () -> bn10.forwardTraining(x)));
            assertEquals(expected, rejects(IllegalArgumentException.class, backend, bn10,
                    () -> bn10.forwardTraining(x, y)));
            assertEquals(expected, rejects(IllegalArgumentException.class, backend, bn10,
                    () -> bn10.forwardTraining(new float[10], 1, 10)));
            assertEquals("Expected more than 1 value per channel when training, got input size [1, 10, 1]",
                    rejects(IllegalArgumentException.class, backend, bn10, () -> bn10.forwardTraining(x3)));
            assertEquals("Expected more than 1 value per channel when training, got input size [1, 1, 1, 10]",
                    rejects(IllegalArgumentException.class, backend, bn10, () -> bn10.forwardTraining(xl)));
            // Without running statistics inference uses batch statistics, so the same rule applies.
            assertEquals(expected, rejects(IllegalArgumentException.class, backend, batchStats,
                    () -> batchStats.forwardInference(x)));
        }
    }

    @ParameterizedTest(name = "{0} {1}", autoCloseArguments = false)
    @MethodSource("backendsAndLayouts")
    void oneSampleWithSpatialExtentTrainsAndOneSampleInferenceWorks(Backend backend, Layout layout) {
        int nc = 3;
        int[] s = layout == Layout.CHANNELS_FIRST ? new int[]{1, nc, 4, 4} : new int[]{1, 4, 4, nc};
        Geometry g = Geometry.of(s, layout);
        float[] x = TestData.channelData(g, 21, 2.0, 0.5, 2.0);
        double[] xd = TestData.toDouble(x);
        double[] ones = {1, 1, 1};
        try (BatchNorm bn = BatchNorm.builder(nc).backend(backend).build();
             Tensor xt = Tensor.upload(backend, x, layout, s);
             Tensor y = bn.forwardTraining(xt)) {
            ReferenceBatchNorm.Stats st = ReferenceBatchNorm.stats(xd, g);
            assertClose(ReferenceBatchNorm.normalize(xd, g, st.mean(), st.var(), ones, new double[nc], 1e-5),
                    y.download(), 2e-4, "N=1 training y on " + backend);
            double[] rm = new double[nc];
            double[] rv = {1, 1, 1};
            ReferenceBatchNorm.updateRunning(rm, rv, st, 0.1);
            assertClose(rm, bn.runningMean(), 2e-4, "running mean");
            assertClose(rv, bn.runningVar(), 2e-4, "running var");

            // Inference with a single (1, C) sample: one value per channel is fine with running stats.
            float[] one = {0.5f, -1.25f, 3f};
            try (Tensor single = Tensor.upload(backend, one, Layout.CHANNELS_FIRST, 1, nc);
                 Tensor out = bn.forwardInference(single)) {
                assertClose(ReferenceBatchNorm.inference(TestData.toDouble(one), Geometry.of(new int[]{1, nc},
                        Layout.CHANNELS_FIRST), rm, rv, ones, new double[nc], 1e-5), out.download(), 2e-4,
                        "N=1 inference on " + backend);
            }
        }
    }

    // ------------------------------------------------------------------ empty batch

    @ParameterizedTest(name = "{0} {1}", autoCloseArguments = false)
    @MethodSource("backendsAndLayouts")
    void emptyBatchGivesEmptyOutputUntouchedStatisticsAndZeroParameterGradients(Backend backend, Layout layout) {
        for (int[] s : new int[][]{shape(layout, 0, C, 5), shape(layout, 3, C, 0)}) {
            try (BatchNorm bn = primed(backend, layout);
                 Tensor x = tensor(backend, layout, s);
                 Tensor dy = tensor(backend, layout, s)) {
                Snapshot before = Snapshot.of(bn);
                assertNotEquals(0.0f, before.gradBias()[0], "the primed step left non-zero dbeta");
                try (Tensor y = bn.forwardTraining(x)) {
                    assertEquals(0, y.elements());
                    assertArrayEquals(s, y.shape());
                    assertEquals(0, y.download().length);
                }
                assertArrayEquals(before.runningMean(), bn.runningMean(), "running mean untouched by an empty batch");
                assertArrayEquals(before.runningVar(), bn.runningVar(), "running var untouched by an empty batch");
                assertEquals(before.tracked(), bn.numBatchesTracked(), "an empty batch is not counted");
                assertArrayEquals(before.skipped(), bn.skippedUpdates());
                try (Tensor dx = bn.backward(x, dy)) {
                    assertEquals(0, dx.elements());
                    assertArrayEquals(s, dx.shape());
                }
                assertArrayEquals(new float[C], bn.gradWeight(), "dgamma of an empty batch");
                assertArrayEquals(new float[C], bn.gradBias(), "dbeta of an empty batch");
                try (Tensor y = bn.forwardInference(x)) {
                    assertEquals(0, y.elements());
                }
                if (layout == Layout.CHANNELS_FIRST) {  // the float[] convenience is channels-first
                    assertEquals(0, bn.forwardTraining(new float[0], s).length);
                }
                assertArrayEquals(before.runningMean(), bn.runningMean());
                assertEquals(before.tracked(), bn.numBatchesTracked());
            }
        }
    }

    // ------------------------------------------------------------------ hyperparameters

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void invalidEpsAndMomentumAreRejectedAtConstruction(Backend backend) {
        for (double eps : new double[]{0.0, -1e-5, Double.NaN, Double.POSITIVE_INFINITY, 1e-60}) {
            String m = rejects(IllegalArgumentException.class, backend, null,
                    () -> BatchNorm.builder(C).eps(eps).backend(backend).build());
            assertContains(m, "eps must be", "> 0", "got " + eps);
        }
        for (double momentum : new double[]{Double.NaN, -0.1, 1.1, Double.POSITIVE_INFINITY, Double.NEGATIVE_INFINITY}) {
            String m = rejects(IllegalArgumentException.class, backend, null,
                    () -> BatchNorm.builder(C).momentum(momentum).backend(backend).build());
            assertContains(m, "momentum must be in [0, 1]", "got " + momentum);
        }
        // The edges are valid.
        for (Double momentum : new Double[]{0.0, 1.0, null}) {
            try (BatchNorm bn = BatchNorm.builder(C).momentum(momentum).eps(1e-12).backend(backend).build()) {
                assertEquals(momentum, bn.momentum());
            }
        }
    }

    // ------------------------------------------------------------------ running variance

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void invalidRunningStatisticsAreRejected(Backend backend) {
        try (BatchNorm bn = primed(backend, Layout.CHANNELS_FIRST)) {
            for (float bad : new float[]{-1f, -Float.MIN_VALUE, Float.NaN, Float.POSITIVE_INFINITY}) {
                float[] v = {1f, bad, 1f, 1f};
                String m = rejects(IllegalArgumentException.class, backend, bn, () -> bn.setRunningVar(v));
                assertContains(m, "running_var must be finite and >= 0", "got " + bad, "at channel 1");
            }
            for (float bad : new float[]{Float.NaN, Float.NEGATIVE_INFINITY}) {
                float[] v = {0f, 0f, bad, 0f};
                String m = rejects(IllegalArgumentException.class, backend, bn, () -> bn.setRunningMean(v));
                assertContains(m, "running_mean must be finite", "got " + bad, "at channel 2");
            }
        }
    }

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void inferenceWithANegativeRunningVarianceWrittenToTheDeviceIsAnError(Backend backend) {
        int[] s = {3, C, 5};
        try (BatchNorm bn = primed(backend, Layout.CHANNELS_FIRST);
             Tensor x = tensor(backend, Layout.CHANNELS_FIRST, s);
             Tensor y = Tensor.zeros(backend, Layout.CHANNELS_FIRST, s)) {
            // Code chaining its own device work can write the buffers directly, past the setters.
            float[] good = bn.runningVar();
            float[] negative = good.clone();
            negative[2] = -0.5f;
            backend.upload(bn.deviceState().runningVar(), negative);
            long launches = backend.kernelLaunches();
            long buffers = backend.liveBuffers();
            for (Executable call : new Executable[]{() -> bn.forwardInference(x), () -> bn.forwardInference(x, y)}) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
                assertContains(e.getMessage(), "running_var must be finite and >= 0", "got -0.5", "at channel 2");
                assertEquals(launches, backend.kernelLaunches(), "no kernel ran before the error");
                assertEquals(buffers, backend.liveBuffers(), "no buffer was left allocated");
            }
            assertArrayEquals(new float[y.download().length], y.download(), "y untouched");
            // Fixed through the setter, inference works and uses the repaired statistics.
            bn.setRunningVar(good);
            try (Tensor out = bn.forwardInference(x)) {
                double[] expected = ReferenceBatchNorm.inference(TestData.toDouble(x.download()),
                        Geometry.of(s, Layout.CHANNELS_FIRST), TestData.toDouble(bn.runningMean()),
                        TestData.toDouble(good), TestData.toDouble(bn.weight()), TestData.toDouble(bn.bias()), 1e-5);
                assertClose(expected, out.download(), 2e-4, "inference after repair on " + backend);
            }
        }
    }

    // ------------------------------------------------------------------ allocation limit

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void tensorsBeyondTheDeviceAllocationLimitAreAClearError(Backend backend) {
        long limit = backend.info().maxAllocBytes();
        long elements = limit / ElementType.FLOAT32.bytes() + 1;
        long buffers = backend.liveBuffers();
        if (elements <= Geometry.MAX_ELEMENTS) {
            int[] s = {1, (int) elements};
            String m = rejects(IllegalArgumentException.class, backend, null,
                    () -> Tensor.zeros(backend, Layout.CHANNELS_FIRST, s));
            assertContains(m, "requested " + elements * 4 + " bytes", "at most " + limit + " bytes",
                    backend.info().name());
            // A layer whose per-channel buffers would not fit is refused the same way, leaking nothing.
            m = rejects(IllegalArgumentException.class, backend, null,
                    () -> BatchNorm.builder((int) elements).backend(backend).build());
            assertContains(m, "requested " + elements * 4 + " bytes", "at most " + limit + " bytes");
        } else {
            // The device allows more than the 2^31-1 elements a tensor can address: that limit is the clear error.
            String m = rejects(IllegalArgumentException.class, backend, null,
                    () -> Tensor.zeros(backend, Layout.CHANNELS_FIRST, 2, Integer.MAX_VALUE));
            assertContains(m, "more than " + Geometry.MAX_ELEMENTS + " elements");
        }
        assertEquals(buffers, backend.liveBuffers());
    }
}
