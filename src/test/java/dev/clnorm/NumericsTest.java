package dev.clnorm;

import dev.clnorm.backend.Backend;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.Stream;

import static dev.clnorm.Close.assertClose;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Numerically hard inputs on every backend, against the float64 reference computed from the same
 * float32 values: large means with small spreads, 2^24 values per channel, constant channels,
 * magnitudes near 1e19 (x^2 and sums of squares overflow float32), a variance beyond float32's
 * range, and data built to drive a careless variance negative.
 *
 * <p>Tolerances: the bound of 1e-4 relative error on the batch variance; 2e-4 absolute on
 * O(1) outputs (PyTorch's CPU-vs-GPU parity bound, as in {@link BatchNormParityTest}); gradients
 * scaled by their channel's gamma * invstd where that factor is far from 1 (see each test).
 */
class NumericsTest {
    private static final double EPS = 1e-5;
    /** The bound on the relative error of the batch variance. */
    private static final double VAR_REL = 1e-4;
    /** PyTorch's parity bound for O(1) values. */
    private static final double TOL = 2e-4;

    static Stream<Arguments> backendsAndLayouts() {
        List<Arguments> list = new ArrayList<>();
        for (Backend b : TestBackends.all()) {
            for (Layout layout : Layout.values()) {
                list.add(Arguments.of(b, layout));
            }
        }
        return list.stream();
    }

    /** (N, C, H, W) or (N, H, W, C) for the same logical tensor. */
    private static int[] shape(Layout layout, int n, int c, int h, int w) {
        return layout == Layout.CHANNELS_FIRST ? new int[]{n, c, h, w} : new int[]{n, h, w, c};
    }

    // ------------------------------------------------------------------ large mean, small spread

    @ParameterizedTest(name = "{0} {1}", autoCloseArguments = false)
    @MethodSource("backendsAndLayouts")
    void largeMeanSmallSpreadChannelsNormaliseToZeroMeanUnitVariance(Backend backend, Layout layout) {
        // mean 1e4 / 1e6 with std 1e-2, mean +-5 with std 0.1, and an easy channel; 65536 values each,
        // enough for many work-groups per channel and several Java blocks.
        double[] mean = {1e4, 1e6, 5, -5, 0.5};
        double[] std = {1e-2, 1e-2, 0.1, 0.1, 1.0};
        int[] shape = shape(layout, 64, mean.length, 32, 32);
        Geometry g = Geometry.of(shape, layout);
        float[] x = TestData.channelData(g, 101 + layout.ordinal(), mean, std);
        assertMatchesReference(backend, layout, shape, x);
    }

    static Stream<Arguments> outlierCases() {
        List<Arguments> list = new ArrayList<>();
        for (Backend b : TestBackends.all()) {
            list.add(Arguments.of(b, Layout.CHANNELS_LAST, new int[]{64, 16, 16, 4}));
            list.add(Arguments.of(b, Layout.CHANNELS_FIRST, new int[]{16384, 4}));
            list.add(Arguments.of(b, Layout.CHANNELS_FIRST, new int[]{64, 4, 16, 16}));
            list.add(Arguments.of(b, Layout.CHANNELS_FIRST, new int[]{64, 4, 8, 8}));
        }
        return list.stream();
    }

    @ParameterizedTest(name = "{0} {1} {2}", autoCloseArguments = false)
    @MethodSource("outlierCases")
    void anOutlierAsTheFirstValueOfAChannelCostsNoPrecision(Backend backend, Layout layout, int[] shape) {
        // Each channel's first value sits 3e3 standard deviations out (it still dominates the variance).
        // Implementations that shift by a channel's first value and then sum x and x^2 in one sweep
        // (the Java backend's column and short-rows traversals without their pilot and running
        // shifts) lose the rest of the channel to cancellation: each run's sum of squares is then
        // ~1e7 times its squared deviations (measured: variance 2.7e-3 and 1.3e-4 off).
        Geometry g = Geometry.of(shape, layout);
        float[] x = TestData.channelData(g, 131, new double[]{0, 1, -2, 100}, new double[]{1, 1, 0.5, 0.01});
        for (int c = 0; c < g.channels(); c++) {
            x[c * g.inner()] += (float) (3e3 * (c == 3 ? 0.01 : 1));
        }
        assertMatchesReference(backend, layout, shape, x);
    }

    /** The two 2^24-value inputs, generated once and shared by every backend. */
    private static final Map<String, float[]> BIG = new ConcurrentHashMap<>();

    static Stream<Arguments> bigCases() {
        List<Arguments> list = new ArrayList<>();
        for (Backend b : TestBackends.all()) {
            list.add(Arguments.of(b, 5.0, 0.1));
            list.add(Arguments.of(b, 1e4, 1e-2));
        }
        return list.stream();
    }

    @ParameterizedTest(name = "{0} mean={1} std={2} shape (16,1,1024,1024)", autoCloseArguments = false)
    @MethodSource("bigCases")
    void twoToThe24ValuesInOneChannel(Backend backend, double mean, double std) {
        // N*H*W = 2^24 values in a single channel: float32 counters and plain float sums fail here
        // (a relative variance error of 13x at mean 5 with E[x^2]-E[x]^2, per REFERENCE.md).
        int[] shape = {16, 1, 1024, 1024};
        Geometry g = Geometry.of(shape, Layout.CHANNELS_FIRST);
        assertEquals(1L << 24, g.valuesPerChannel());
        float[] x = BIG.computeIfAbsent(mean + "/" + std,
                k -> TestData.channelData(g, 2024, new double[]{mean}, new double[]{std}));
        assertMatchesReference(backend, Layout.CHANNELS_FIRST, shape, x);
    }

    /**
     * Training forward with momentum 1 (so the running statistics are exactly this batch's mean and
     * unbiased variance) and checks: finite output; per channel output mean ~ 0 and output variance
     * var/(var+eps) (which is ~1 when var >> eps; the 1e6 channel is quantised by float32 to steps
     * of 0.0625, so its variance is only ~1e-5 and eps matters); batch variance within 1e-4
     * relative; the output elementwise within 2e-4 of the reference.
     */
    static void assertMatchesReference(Backend backend, Layout layout, int[] shape, float[] x) {
        Geometry g = Geometry.of(shape, layout);
        int nc = g.channels();
        ReferenceBatchNorm.Stats ref = ReferenceBatchNorm.stats(TestData.toDouble(x), g);
        try (BatchNorm bn = BatchNorm.builder(nc).momentum(1.0).backend(backend).build();
             Tensor xt = Tensor.upload(backend, x, layout, shape);
             Tensor yt = bn.forwardTraining(xt)) {
            float[] y = yt.download();
            float[] rm = bn.runningMean();
            float[] rv = bn.runningVar();
            for (int c = 0; c < nc; c++) {
                double[] yc = ReferenceBatchNorm.channel(y, g, c);
                double sum = 0;
                for (double v : yc) {
                    if (!Double.isFinite(v)) {
                        fail("channel " + c + ": non-finite output " + v + " on " + backend);
                    }
                    sum += v;
                }
                double ym = sum / yc.length;
                double ss = 0;
                for (double v : yc) {
                    ss += (v - ym) * (v - ym);
                }
                double yvar = ss / yc.length;
                double var = ref.var()[c];
                double expectedVar = var / (var + EPS);
                String where = "channel " + c + " (mean " + ref.mean()[c] + ", var " + var + ") on " + backend;
                // A mean off by d shifts the output mean by d*invstd; 1e-4 allows a batch mean error of
                // 1e-4 standard deviations, the same relative budget the issue gives the variance.
                assertEquals(0.0, ym, 1e-4, "output mean of " + where);
                // Output variance = var_true / (var_computed + eps): its relative error is at most the
                // batch variance's (1e-4).
                assertEquals(expectedVar, yvar, VAR_REL * expectedVar, "output variance of " + where);
                assertEquals(ref.unbiasedVar()[c], rv[c], VAR_REL * ref.unbiasedVar()[c],
                        "batch (unbiased) variance of " + where);
                // The float mean can be no closer than half an ulp of the true mean, plus the 1e-4 std budget.
                assertEquals(ref.mean()[c], rm[c], Math.ulp((float) ref.mean()[c]) + 1e-4 * Math.sqrt(var),
                        "batch mean of " + where);
            }
            double[] ones = new double[nc];
            Arrays.fill(ones, 1.0);
            double[] expected = ReferenceBatchNorm.normalize(TestData.toDouble(x), g, ref.mean(), ref.var(), ones,
                    new double[nc], EPS);
            assertClose(expected, y, TOL, "y on " + backend);
        }
    }

    // ------------------------------------------------------------------ constant channels

    @ParameterizedTest(name = "{0} {1}", autoCloseArguments = false)
    @MethodSource("backendsAndLayouts")
    void constantChannelOutputIsExactlyBetaAndGradientsAreFinite(Backend backend, Layout layout) {
        float[] constants = {0f, -3.5f, 1e6f, 1e19f, -1e19f, -3e38f};
        int nc = constants.length + 1;  // the last channel is ordinary data
        int[] shape = shape(layout, 6, nc, 5, 3);
        Geometry g = Geometry.of(shape, layout);
        float[] x = TestData.channelData(g, 7, 2.0, 0.5, 2.0);
        for (int c = 0; c < constants.length; c++) {
            TestData.fillChannel(x, g, c, constants[c]);
        }
        float[] dy = TestData.gaussian(x.length, 8);
        float[] gamma = TestData.uniform(nc, 9, 0.5, 1.5);
        float[] beta = TestData.uniform(nc, 10, -1, 1);
        try (BatchNorm bn = BatchNorm.builder(nc).backend(backend).build();
             Tensor xt = Tensor.upload(backend, x, layout, shape);
             Tensor dyt = Tensor.upload(backend, dy, layout, shape)) {
            bn.setWeight(gamma);
            bn.setBias(beta);
            float[] y;
            try (Tensor yt = bn.forwardTraining(xt)) {
                y = yt.download();
            }
            float[] dx;
            try (Tensor dxt = bn.backward(xt, dyt)) {
                dx = dxt.download();
            }
            float[] dgamma = bn.gradWeight();
            float[] dbeta = bn.gradBias();
            float[] rv = bn.runningVar();
            float[] rm = bn.runningMean();
            for (int c = 0; c < constants.length; c++) {
                String where = "constant channel " + c + " (" + constants[c] + ") on " + backend;
                int m = (int) g.valuesPerChannel();
                double sumDy = 0;
                for (int k = 0; k < m; k++) {
                    int at = TestData.indexOf(g, c, k);
                    // Bit-exact: xhat is exactly 0, so y = gamma * 0 + beta = beta.
                    assertEquals(beta[c], y[at], 0.0, "y of " + where + " at " + at);
                    sumDy += dy[at];
                }
                // The float64 reference with var = 0: xhat = 0, so dgamma = 0, dbeta = sum(dy) and
                // dx = gamma / sqrt(eps) * (dy - mean(dy)).
                assertTrue(Float.isFinite(dgamma[c]) && Float.isFinite(dbeta[c]), "gradients of " + where);
                assertEquals(0.0, dgamma[c], TOL, "dgamma of " + where);
                assertEquals(sumDy, dbeta[c], TOL, "dbeta of " + where);
                double scale = gamma[c] / Math.sqrt((float) EPS);
                for (int k = 0; k < m; k++) {
                    int at = TestData.indexOf(g, c, k);
                    double expected = scale * (dy[at] - sumDy / m);
                    // dx is ~300x dy here (1/sqrt(eps)); 2e-4 relative to that scale is the parity bound.
                    assertTrue(Float.isFinite(dx[at]), "dx of " + where);
                    assertEquals(expected, dx[at], TOL * scale, "dx of " + where + " at " + at);
                }
                double rmExpected = 0.1 * constants[c];  // 0.9 * 0 + 0.1 * batch mean, one step
                assertEquals(rmExpected, rm[c], 2 * Math.ulp((float) rmExpected), "running mean of " + where);
                assertEquals(0.9, rv[c], 1e-6, "running var of " + where + " (0.9 * 1 + 0.1 * 0)");
            }
            assertArrayEquals(new int[nc], bn.skippedUpdates(), "no channel is non-finite");
            // The ordinary channel still matches the reference.
            int last = nc - 1;
            ReferenceBatchNorm.Stats s = ReferenceBatchNorm.stats(TestData.toDouble(x), g);
            double[] yRef = ReferenceBatchNorm.normalize(TestData.toDouble(x), g, s.mean(), s.var(),
                    TestData.toDouble(gamma), TestData.toDouble(beta), EPS);
            assertClose(ReferenceBatchNorm.channel(yRef, g, last), floats(ReferenceBatchNorm.channel(y, g, last)),
                    TOL, "y of the ordinary channel on " + backend);
        }
    }

    // ------------------------------------------------------------------ |x| ~ 1e19

    @ParameterizedTest(name = "{0} {1}", autoCloseArguments = false)
    @MethodSource("backendsAndLayouts")
    void magnitudesNear1e19GiveFiniteCorrectStatistics(Backend backend, Layout layout) {
        // x^2 ~ 1e38 is at float32's edge and any sum of squares overflows: a float32 Welford/Chan
        // that accumulates M2 = sum (x - mean)^2 reaches +Inf and would normalise to 0 (invstd 0).
        int nc = 5;
        int[] shape = shape(layout, 16, nc, 8, 8);
        Geometry g = Geometry.of(shape, layout);
        double[] mean = {0, 1e19, -1e19, 0, 0.25};
        double[] std = {1e19, 1e18, 3e18, 1, 1};
        float[] x = TestData.channelData(g, 55, mean, std);
        // Channel 3: +-1e19 alternating (var = 1e38, unbiased var just above it).
        for (int k = 0; k < g.valuesPerChannel(); k++) {
            x[TestData.indexOf(g, 3, k)] = (k % 2 == 0 ? 1e19f : -1e19f) * (1 + 0.01f * (k % 7));
        }
        float[] dy = TestData.gaussian(x.length, 56);
        float[] gamma = TestData.uniform(nc, 57, 0.5, 1.5);
        float[] beta = TestData.uniform(nc, 58, -1, 1);
        double[] xd = TestData.toDouble(x);
        ReferenceBatchNorm.Stats s = ReferenceBatchNorm.stats(xd, g);
        try (BatchNorm bn = BatchNorm.builder(nc).backend(backend).build();
             Tensor xt = Tensor.upload(backend, x, layout, shape);
             Tensor dyt = Tensor.upload(backend, dy, layout, shape)) {
            bn.setWeight(gamma);
            bn.setBias(beta);
            float[] y;
            try (Tensor yt = bn.forwardTraining(xt)) {
                y = yt.download();
            }
            assertAllFinite(y, "y on " + backend);
            assertClose(ReferenceBatchNorm.normalize(xd, g, s.mean(), s.var(), TestData.toDouble(gamma),
                    TestData.toDouble(beta), EPS), y, TOL, "y on " + backend);

            double[] rm = new double[nc];
            double[] rv = new double[nc];
            Arrays.fill(rv, 1.0);
            ReferenceBatchNorm.updateRunning(rm, rv, s, 0.1);
            float[] saveMean = bn.savedMean();
            float[] saveInvstd = bn.savedInvstd();
            float[] runMean = bn.runningMean();
            float[] runVar = bn.runningVar();
            for (int c = 0; c < nc; c++) {
                double sd = Math.sqrt(s.var()[c]);
                String where = "channel " + c + " (mean " + s.mean()[c] + ", std " + sd + ") on " + backend;
                assertEquals(s.mean()[c], saveMean[c], Math.ulp((float) s.mean()[c]) + 1e-4 * sd, "mean of " + where);
                double invstd = 1.0 / Math.sqrt(s.var()[c] + EPS);
                assertEquals(invstd, saveInvstd[c], VAR_REL * invstd, "invstd of " + where);
                assertEquals(rm[c], runMean[c], Math.ulp((float) rm[c]) + 1e-4 * sd, "running mean of " + where);
                assertEquals(rv[c], runVar[c], VAR_REL * rv[c], "running var of " + where);
            }
            assertArrayEquals(new int[nc], bn.skippedUpdates(), "finite statistics are never skipped");

            float[] dx;
            try (Tensor dxt = bn.backward(xt, dyt)) {
                dx = dxt.download();
            }
            assertAllFinite(dx, "dx on " + backend);
            ReferenceBatchNorm.Grads r = ReferenceBatchNorm.backward(xd, TestData.toDouble(dy), g,
                    TestData.toDouble(gamma), EPS);
            for (int c = 0; c < nc; c++) {
                // dx scales with gamma * invstd (1e-19 for the huge channels): 2e-4 relative to that
                // scale is the parity bound of an O(1) channel.
                double scale = gamma[c] / Math.sqrt(s.var()[c] + EPS);
                assertClose(ReferenceBatchNorm.channel(r.dx(), g, c), floats(ReferenceBatchNorm.channel(dx, g, c)),
                        TOL * scale, "dx of channel " + c + " on " + backend);
            }
            ReferenceBatchNorm.GradMagnitudes mag = ReferenceBatchNorm.gradMagnitudes(xd, TestData.toDouble(dy), g, EPS);
            assertClose(r.dbeta(), bn.gradBias(), sumTolerance(mag.dbeta()), "dbeta on " + backend);
            assertClose(r.dgamma(), bn.gradWeight(), sumTolerance(mag.dgamma()), "dgamma on " + backend);
        }
    }

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void varianceBeyondFloatRangeStillNormalisesAndSkipsTheRunningUpdate(Backend backend) {
        // Channel 0 is +-1e20: its variance 1e40 exceeds float32's maximum (3.4e38), so the running
        // variance cannot hold it. The output is still exact (xhat = +-1); the running update of that
        // channel is skipped and counted, like any non-finite statistic; channel 1 is unaffected.
        int[] shape = {32, 2, 4};
        Geometry g = Geometry.of(shape, Layout.CHANNELS_FIRST);
        float[] x = TestData.channelData(g, 77, 1.0, 0.5, 2.0);
        for (int k = 0; k < g.valuesPerChannel(); k++) {
            x[TestData.indexOf(g, 0, k)] = k % 2 == 0 ? 1e20f : -1e20f;
        }
        double[] xd = TestData.toDouble(x);
        ReferenceBatchNorm.Stats s = ReferenceBatchNorm.stats(xd, g);
        try (BatchNorm bn = BatchNorm.builder(2).backend(backend).build();
             Tensor xt = Tensor.upload(backend, x, shape)) {
            float[] y;
            try (Tensor yt = bn.forwardTraining(xt)) {
                y = yt.download();
            }
            assertAllFinite(y, "y on " + backend);
            assertClose(ReferenceBatchNorm.normalize(xd, g, s.mean(), s.var(), new double[]{1, 1}, new double[2], EPS),
                    y, TOL, "y on " + backend);
            double invstd = 1.0 / Math.sqrt(s.var()[0]);
            assertEquals(invstd, bn.savedInvstd()[0], VAR_REL * invstd, "invstd of the 1e20 channel");
            assertArrayEquals(new int[]{1, 0}, bn.skippedUpdates(), "skip counted for the 1e20 channel only");
            assertEquals(0.0f, bn.runningMean()[0], "running mean of the 1e20 channel untouched");
            assertEquals(1.0f, bn.runningVar()[0], "running var of the 1e20 channel untouched");
            assertEquals(0.9 + 0.1 * s.unbiasedVar()[1], bn.runningVar()[1], TOL, "the other channel is updated");
        }
        try (BatchNorm strict = BatchNorm.builder(2).strictNonFinite(true).backend(backend).build();
             Tensor xt = Tensor.upload(backend, x, shape)) {
            ArithmeticException e = assertThrows(ArithmeticException.class, () -> strict.forwardTraining(xt).close());
            assertTrue(e.getMessage().contains("channel 0"), e.getMessage());
            assertEquals(1.0f, strict.runningVar()[0], "strict: running var of channel 0 untouched");
        }
    }

    // ------------------------------------------------------------------ variance never negative

    @ParameterizedTest(name = "{0} {1}", autoCloseArguments = false)
    @MethodSource("backendsAndLayouts")
    void varianceIsNeverNegative(Backend backend, Layout layout) {
        // Channels whose true variance is 0 or a few ulps^2 of a large mean: exactly where
        // E[x^2]-E[x]^2, or a merge that subtracts, goes negative and gives NaN.
        int nc = 6;
        int[] shape = shape(layout, 16, nc, 64, 64);  // 65536 values: many partials to merge
        Geometry g = Geometry.of(shape, layout);
        float[] x = new float[(int) g.elements()];
        int m = (int) g.valuesPerChannel();
        float a = 1e4f;
        float b = 1e6f;
        float h = 1e19f;
        for (int k = 0; k < m; k++) {
            x[TestData.indexOf(g, 0, k)] = k % 2 == 0 ? a : Math.nextUp(a);        // two neighbours
            x[TestData.indexOf(g, 1, k)] = k == m / 3 ? Math.nextDown(b) : b;       // one outlier ulp
            x[TestData.indexOf(g, 2, k)] = (k % 3 == 0) ? Math.nextUp(h) : h;      // huge, 1 ulp apart
            x[TestData.indexOf(g, 3, k)] = k % 5 == 0 ? 0.1f : 0.1f + 1e-8f * (k % 3); // tiny spread near 0.1
            x[TestData.indexOf(g, 4, k)] = 7.0f;                                     // constant
            x[TestData.indexOf(g, 5, k)] = k < m / 2 ? -b : Math.nextUp(-b);        // half and half
        }
        ReferenceBatchNorm.Stats s = ReferenceBatchNorm.stats(TestData.toDouble(x), g);
        try (BatchNorm bn = BatchNorm.builder(nc).momentum(1.0).backend(backend).build();
             Tensor xt = Tensor.upload(backend, x, layout, shape);
             Tensor yt = bn.forwardTraining(xt)) {
            assertAllFinite(yt.download(), "y on " + backend);
            float[] invstd = bn.savedInvstd();
            float[] rv = bn.runningVar();
            double maxInvstd = 1.0 / Math.sqrt((float) EPS);
            for (int c = 0; c < nc; c++) {
                String where = "channel " + c + " (var " + s.var()[c] + ") on " + backend;
                // invstd = 1/sqrt(var + eps) <= 1/sqrt(eps) exactly when var >= 0 (1e-6: float rounding).
                assertTrue(invstd[c] <= maxInvstd * (1 + 1e-6), "invstd " + invstd[c] + " > 1/sqrt(eps): negative var, "
                        + where);
                assertTrue(rv[c] >= 0, "batch variance " + rv[c] + " of " + where);
                // Variance within 1e-4 relative; 1e-20 absolute covers channels whose true variance is 0.
                assertEquals(s.unbiasedVar()[c], rv[c], VAR_REL * s.unbiasedVar()[c] + 1e-20, "batch variance of "
                        + where);
            }
        }
    }

    // ------------------------------------------------------------------ helpers

    private static void assertAllFinite(float[] v, String what) {
        for (int i = 0; i < v.length; i++) {
            if (!Float.isFinite(v[i])) {
                fail(what + "[" + i + "] = " + v[i] + " is not finite");
            }
        }
    }

    /** The float32 summation bound used by the parity test: 2e-4 + 2e-6 * sum(|terms|). */
    private static double[] sumTolerance(double[] magnitudes) {
        double[] t = new double[magnitudes.length];
        for (int c = 0; c < t.length; c++) {
            t[c] = TOL + 2e-6 * magnitudes[c];
        }
        return t;
    }

    private static float[] floats(double[] v) {
        float[] f = new float[v.length];
        for (int i = 0; i < v.length; i++) {
            f[i] = (float) v[i];
        }
        return f;
    }
}
