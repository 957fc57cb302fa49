package dev.clnorm;

import dev.clnorm.backend.Backend;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Channels-last gives the channels-first results on the same data, on every backend: inference
 * bit for bit (the same per-element arithmetic whichever traversal runs it), training within
 * float32 reduction tolerance (the statistics are sums taken in a different order): |Δy| and
 * |Δdx| at most 1e-5 of the values' scale, running statistics within 1e-6 relative.
 */
class LayoutEquivalenceTest {

    static Stream<Arguments> cases() {
        List<Arguments> list = new ArrayList<>();
        for (Backend b : TestBackends.all()) {
            list.add(Arguments.of(b, new int[]{16, 24, 50}));          // (N, C, L)
            list.add(Arguments.of(b, new int[]{8, 32, 7, 7}));          // (N, C, H, W), short rows
            list.add(Arguments.of(b, new int[]{4, 16, 20, 24}));        // long rows
            list.add(Arguments.of(b, new int[]{2, 8, 3, 5, 6}));        // (N, C, D, H, W)
            list.add(Arguments.of(b, new int[]{4, 12, 1, 1}));          // spatial 1x1
        }
        return list.stream();
    }

    /** Index of (n, c, spatial s) in channels-first and channels-last storage. */
    private static float[] toChannelsLast(float[] x, int[] shape) {
        int n = shape[0];
        int c = shape[1];
        int spatial = x.length / (n * c);
        float[] out = new float[x.length];
        for (int i = 0; i < n; i++) {
            for (int ch = 0; ch < c; ch++) {
                for (int s = 0; s < spatial; s++) {
                    out[(i * spatial + s) * c + ch] = x[(i * c + ch) * spatial + s];
                }
            }
        }
        return out;
    }

    private static int[] lastShape(int[] shape) {
        int[] s = new int[shape.length];
        s[0] = shape[0];
        System.arraycopy(shape, 2, s, 1, shape.length - 2);
        s[shape.length - 1] = shape[1];
        return s;
    }

    @ParameterizedTest(name = "{0} {1}", autoCloseArguments = false)
    @MethodSource("cases")
    void channelsLastMatchesChannelsFirst(Backend b, int[] shape) {
        Geometry g = Geometry.of(shape, Layout.CHANNELS_FIRST);
        int c = g.channels();
        float[] x = TestData.channelData(g, 5, 20, 0.1, 3);
        float[] dy = TestData.gaussian(x.length, 6);
        float[] gamma = TestData.uniform(c, 7, 0.5, 1.5);
        float[] beta = TestData.uniform(c, 8, -1, 1);
        float[] rm = TestData.uniform(c, 9, -5, 5);
        float[] rv = TestData.uniform(c, 10, 0.5, 4);
        int[] last = lastShape(shape);
        try (BatchNorm first = layer(b, c, gamma, beta, rm, rv); BatchNorm lastBn = layer(b, c, gamma, beta, rm, rv);
             Tensor xf = Tensor.upload(b, x, Layout.CHANNELS_FIRST, shape);
             Tensor xl = Tensor.upload(b, toChannelsLast(x, shape), Layout.CHANNELS_LAST, last);
             Tensor dyf = Tensor.upload(b, dy, Layout.CHANNELS_FIRST, shape);
             Tensor dyl = Tensor.upload(b, toChannelsLast(dy, shape), Layout.CHANNELS_LAST, last)) {
            try (Tensor yf = first.forwardInference(xf); Tensor yl = lastBn.forwardInference(xl)) {
                float[] expected = toChannelsLast(yf.download(), shape);
                float[] got = yl.download();
                for (int i = 0; i < got.length; i++) {
                    if (Float.floatToIntBits(expected[i]) != Float.floatToIntBits(got[i])) {
                        fail("inference y[" + i + "] (channels-last order): channels-first gives " + expected[i]
                                + ", channels-last " + got[i]);
                    }
                }
            }
            try (Tensor yf = first.forwardTraining(xf); Tensor yl = lastBn.forwardTraining(xl);
                 Tensor dxf = first.backward(xf, dyf); Tensor dxl = lastBn.backward(xl, dyl)) {
                assertClose(toChannelsLast(yf.download(), shape), yl.download(), 1e-5, "training y");
                assertClose(toChannelsLast(dxf.download(), shape), dxl.download(), 1e-5, "dx");
            }
            assertRelative(first.runningMean(), lastBn.runningMean(), "running_mean");
            assertRelative(first.runningVar(), lastBn.runningVar(), "running_var");
            assertRelative(first.gradWeight(), lastBn.gradWeight(), "dgamma");
            assertRelative(first.gradBias(), lastBn.gradBias(), "dbeta");
        }
    }

    private static BatchNorm layer(Backend b, int c, float[] gamma, float[] beta, float[] rm, float[] rv) {
        BatchNorm bn = BatchNorm.builder(c).backend(b).build();
        bn.setWeight(gamma);
        bn.setBias(beta);
        bn.setRunningMean(rm);
        bn.setRunningVar(rv);
        return bn;
    }

    /** |Δ| <= rel x the largest |value|: outputs of O(1) normalised values. */
    private static void assertClose(float[] expected, float[] actual, double rel, String what) {
        assertEquals(expected.length, actual.length, what);
        double scale = 0;
        for (float v : expected) {
            scale = Math.max(scale, Math.abs(v));
        }
        for (int i = 0; i < expected.length; i++) {
            if (!(Math.abs(expected[i] - actual[i]) <= rel * scale)) {
                fail(what + "[" + i + "]: channels-first " + expected[i] + ", channels-last " + actual[i]);
            }
        }
    }

    /**
     * Sums over the batch in another order: within 1e-6 relative, plus 1e-5 of the largest value
     * for values that are themselves sums cancelling to near 0 (dbeta, dgamma).
     */
    private static void assertRelative(float[] expected, float[] actual, String what) {
        double scale = 0;
        for (float v : expected) {
            scale = Math.max(scale, Math.abs(v));
        }
        for (int i = 0; i < expected.length; i++) {
            double tol = 1e-6 * Math.abs(expected[i]) + 1e-5 * scale;
            if (!(Math.abs(expected[i] - actual[i]) <= tol)) {
                fail(what + "[" + i + "]: channels-first " + expected[i] + ", channels-last " + actual[i]);
            }
        }
    }
}
