package dev.clnorm;

import dev.clnorm.backend.Backend;
import dev.clnorm.backend.DeviceInfo;
import dev.clnorm.backend.opencl.KernelStyle;
import dev.clnorm.backend.opencl.OpenClBackend;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;

import static dev.clnorm.Close.assertClose;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Every backend against the float64 reference, on every supported rank, in both layouts.
 *
 * <p>Tolerance: 2e-4 absolute for y, dx, batch and running statistics (PyTorch's CPU-vs-GPU bound).
 * dgamma and dbeta are sums over m values, so their float32 rounding grows with the sum's size:
 * they get 2e-4 + 2e-6 * sum(|term|), the usual error bound of a float32 sum (a few units of
 * 2^-24 per level of the summation tree, times the sum of magnitudes).
 */
class BatchNormParityTest {
    static final double TOL = 2e-4;

    static final int[][] SHAPES = {
            {4, 10}, {4, 5, 3}, {2, 3, 4, 5}, {1, 2, 3, 4}, {8, 3, 4, 8, 5}, {3, 7, 13, 17},
            {16, 512}, {2, 512, 3, 3}, {2, 3, 147, 147}, {64, 3, 9},
            // Short rows over several channel blocks and runs of the Java backend's short-rows traversal.
            {16, 40, 20, 25},
            // Rows under the Java backend's SPAN_ROWS (per-position span sums), with 2 threads: 4 channel
            // blocks and 3 training runs; then 4 blocks (the last shorter), 2 backward runs of gradient sums
            // and a sample count that is not a multiple of the kernels' four rows per step.
            {40, 100, 7, 7}, {90, 50, 7, 7},
    };

    static Stream<Arguments> cases() {
        List<Arguments> list = new ArrayList<>();
        for (Backend b : TestBackends.all()) {
            for (int[] shape : SHAPES) {
                for (Layout layout : Layout.values()) {
                    list.add(Arguments.of(b, layout, shape));
                }
            }
        }
        return list.stream();
    }

    static double[] ones(int n) {
        double[] v = new double[n];
        Arrays.fill(v, 1.0);
        return v;
    }

    static float[] floats(double[] v) {
        float[] f = new float[v.length];
        for (int i = 0; i < v.length; i++) {
            f[i] = (float) v[i];
        }
        return f;
    }

    @ParameterizedTest(name = "{0} {1} {2}", autoCloseArguments = false)
    @MethodSource("cases")
    void trainingForwardBackwardAndInferenceMatchReference(Backend backend, Layout layout, int[] shape) {
        checkAgainstReference(backend, layout, shape);
    }

    /** OpenCL CPU devices with their own (CPU) launch plans: the only ones with the channel-block backward. */
    static Stream<Backend> openClCpuBackends() {
        return TestBackends.openCl().stream().filter(b -> b.info().kind() == DeviceInfo.Kind.CPU
                && ((OpenClBackend) b).kernelStyle() != KernelStyle.GPU);
    }

    /**
     * On OpenCL CPU devices, short rows whose x and dy together exceed the device's cache take the
     * channel-block backward (one launch instead of the separate passes' two). The shape is sized
     * from the cache the device reports, so that this path runs wherever the test does.
     */
    @ParameterizedTest(name = "{0}", autoCloseArguments = false, allowZeroInvocations = true)
    @MethodSource("openClCpuBackends")
    void shortRowsBeyondTheDeviceCacheTakeTheChannelBlockBackward(Backend b) {
        int channels = 512;
        int inner = 49;
        long perSample = 2L * 4 * channels * inner;  // x and dy, float32
        int n = (int) (b.info().cacheBytes() / perSample + 2);
        int[] shape = {n, channels, 7, 7};
        try (BatchNorm bn = BatchNorm.builder(channels).backend(b).build();
             Tensor x = Tensor.upload(b, TestData.gaussian(n * channels * inner, 5), Layout.CHANNELS_FIRST, shape);
             Tensor dy = Tensor.upload(b, TestData.gaussian(n * channels * inner, 6), Layout.CHANNELS_FIRST, shape);
             Tensor y = Tensor.zeros(b, Layout.CHANNELS_FIRST, shape);
             Tensor dx = Tensor.zeros(b, Layout.CHANNELS_FIRST, shape)) {
            bn.forwardTraining(x, y);
            long before = b.kernelLaunches();
            bn.backward(x, dy, dx);
            b.finish();
            assertEquals(1, b.kernelLaunches() - before, "backward launches for " + n + "x512x7x7");
        }
        checkAgainstReference(b, Layout.CHANNELS_FIRST, shape);
    }

    static void checkAgainstReference(Backend backend, Layout layout, int[] shape) {
        Geometry g = Geometry.of(shape, layout);
        int nc = g.channels();
        long seed = Arrays.hashCode(shape) * 31L + layout.ordinal();
        float[] x = TestData.channelData(g, seed, 2.0, 0.5, 2.0);
        float[] dy = TestData.gaussian(x.length, seed + 1);
        float[] gamma = TestData.uniform(nc, seed + 2, 0.5, 1.5);
        float[] beta = TestData.uniform(nc, seed + 3, -1, 1);
        double eps = 1e-5;

        try (BatchNorm bn = BatchNorm.builder(nc).backend(backend).build();
             Tensor xt = Tensor.upload(backend, x, layout, shape);
             Tensor dyt = Tensor.upload(backend, dy, layout, shape)) {
            bn.setWeight(gamma);
            bn.setBias(beta);

            double[] xd = TestData.toDouble(x);
            double[] gd = TestData.toDouble(gamma);
            double[] bd = TestData.toDouble(beta);
            ReferenceBatchNorm.Stats s = ReferenceBatchNorm.stats(xd, g);

            try (Tensor y = bn.forwardTraining(xt)) {
                assertClose(ReferenceBatchNorm.normalize(xd, g, s.mean(), s.var(), gd, bd, eps), y.download(), TOL, "y");
            }
            assertClose(s.mean(), bn.savedMean(), TOL, "saved mean");
            double[] invstd = new double[nc];
            for (int c = 0; c < nc; c++) {
                invstd[c] = 1.0 / Math.sqrt(s.var()[c] + eps);
            }
            assertClose(invstd, bn.savedInvstd(), TOL, "saved invstd");
            double[] rm = new double[nc];
            double[] rv = ones(nc);
            ReferenceBatchNorm.updateRunning(rm, rv, s, 0.1);
            assertClose(rm, bn.runningMean(), TOL, "running mean");
            assertClose(rv, bn.runningVar(), TOL, "running var");

            try (Tensor dx = bn.backward(xt, dyt)) {
                double[] dyd = TestData.toDouble(dy);
                ReferenceBatchNorm.Grads r = ReferenceBatchNorm.backward(xd, dyd, g, gd, eps);
                assertClose(r.dx(), dx.download(), TOL, "dx");
                double[] tolBeta = new double[nc];
                double[] tolGamma = new double[nc];
                for (int c = 0; c < nc; c++) {
                    double[] dyc = ReferenceBatchNorm.channel(dyd, g, c);
                    double[] xc = ReferenceBatchNorm.channel(xd, g, c);
                    for (int k = 0; k < dyc.length; k++) {
                        tolBeta[c] += Math.abs(dyc[k]);
                        tolGamma[c] += Math.abs(dyc[k] * (xc[k] - s.mean()[c]) * invstd[c]);
                    }
                    tolBeta[c] = TOL + 2e-6 * tolBeta[c];
                    tolGamma[c] = TOL + 2e-6 * tolGamma[c];
                }
                assertClose(r.dbeta(), bn.gradBias(), tolBeta, "dbeta");
                assertClose(r.dgamma(), bn.gradWeight(), tolGamma, "dgamma");
            }

            try (Tensor y = bn.forwardInference(xt)) {
                assertClose(ReferenceBatchNorm.inference(xd, g, rm, rv, gd, bd, eps), y.download(), TOL, "inference y");
            }
            assertEquals(1, bn.numBatchesTracked());
        }
    }
}
