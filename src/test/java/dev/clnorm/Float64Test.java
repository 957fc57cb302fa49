package dev.clnorm;

import dev.clnorm.backend.Backend;
import dev.clnorm.backend.DeviceInfo;
import dev.clnorm.backend.ElementType;
import dev.clnorm.backend.java.JavaBackend;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * float64 layers (float64 tensors, parameters, statistics and arithmetic) against the float64
 * reference, on every backend that reports double precision.
 *
 * <p>The data are chosen so that float32 anywhere would fail by orders of magnitude: channel means
 * up to 1e6 with standard deviations down to 1e-2 (float32's spacing at 1e6 is 0.0625, wider than
 * the spread), and values that are not float32 numbers at all.
 *
 * <p>Tolerances: two correct float64 computations of x̂ = (x - mean) * invstd differ by the rounding
 * of the mean, a few units in the last place of |mean|, times invstd; 8 ulp(|mean|) * invstd plus
 * 1e-12 bounds that with margin (for the 1e6 / 1e-2 channels, about 1e-7; for the rest about 1e-12).
 * Sums (dgamma, dbeta) are bounded by 1e-12 of the sum of their terms' magnitudes.
 */
class Float64Test {
    private static final double EPS = 1e-5;

    static Stream<Arguments> cases() {
        List<Arguments> list = new ArrayList<>();
        for (Backend b : TestBackends.fp64Backends().toList()) {
            list.add(Arguments.of(b, Layout.CHANNELS_FIRST, new int[]{4, 8, 9, 11}));
            list.add(Arguments.of(b, Layout.CHANNELS_FIRST, new int[]{2, 3, 64, 65}));
            list.add(Arguments.of(b, Layout.CHANNELS_FIRST, new int[]{16, 4, 1024}));
            list.add(Arguments.of(b, Layout.CHANNELS_FIRST, new int[]{8, 64, 16, 16}));
            list.add(Arguments.of(b, Layout.CHANNELS_LAST, new int[]{6, 5, 7, 16}));
            list.add(Arguments.of(b, Layout.CHANNELS_LAST, new int[]{300, 8}));
            list.add(Arguments.of(b, Layout.CHANNELS_FIRST, new int[]{33, 10}));
        }
        return list.stream();
    }

    /** Per-channel mean up to ±1e6 and std in [1e-2, 10], values drawn in double. */
    static double[] data(Geometry g, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        int nc = g.channels();
        double[] mean = new double[nc];
        double[] std = new double[nc];
        for (int c = 0; c < nc; c++) {
            mean[c] = (c % 2 == 0 ? 1e6 : -3e3) * r.nextDouble();
            std[c] = Math.pow(10, -2 + 3 * r.nextDouble());
        }
        double[] x = new double[(int) g.elements()];
        for (int o = 0; o < g.outer(); o++) {
            for (int c = 0; c < nc; c++) {
                for (int i = 0; i < g.inner(); i++) {
                    x[(o * nc + c) * g.inner() + i] = mean[c] + std[c] * TestData.gaussian(r);
                }
            }
        }
        return x;
    }

    static double[] values(int n, long seed, double lo, double hi) {
        SplittableRandom r = new SplittableRandom(seed);
        double[] v = new double[n];
        for (int i = 0; i < n; i++) {
            v[i] = lo + (hi - lo) * r.nextDouble();
        }
        return v;
    }

    @ParameterizedTest(name = "{0} {1} {2}", autoCloseArguments = false)
    @MethodSource("cases")
    void trainingInferenceAndBackwardMatchTheFloat64Reference(Backend b, Layout layout, int[] shape) {
        Geometry g = Geometry.of(shape, layout);
        int nc = g.channels();
        double[] x = data(g, 11);
        double[] gamma = values(nc, 12, 0.5, 1.5);
        double[] beta = values(nc, 13, -1, 1);
        double[] rm = values(nc, 14, -1, 1);
        double[] rv = values(nc, 15, 0.5, 2);
        try (BatchNorm bn = BatchNorm.builder(nc).backend(b).dtype(ElementType.FLOAT64).eps(EPS).build()) {
            bn.setWeight(gamma);
            bn.setBias(beta);
            bn.setRunningMean(rm);
            bn.setRunningVar(rv);
            ReferenceBatchNorm.Stats s = ReferenceBatchNorm.stats(x, g);
            double[] yTol = new double[nc];
            for (int c = 0; c < nc; c++) {
                double invstd = 1.0 / Math.sqrt(s.var()[c] + EPS);
                yTol[c] = 1e-12 + 8 * Math.ulp(Math.abs(s.mean()[c])) * invstd * Math.abs(gamma[c]);
            }
            assertFloat32MissesTheBound(b, g, layout, shape, x, gamma, beta, s, yTol);
            try (Tensor xt = Tensor.upload(b, x, layout, ElementType.FLOAT64, shape)) {
                for (int step = 0; step < 3; step++) {
                    try (Tensor y = bn.forwardTraining(xt)) {
                        assertEquals(ElementType.FLOAT64, y.dtype());
                        assertClose(ReferenceBatchNorm.normalize(x, g, s.mean(), s.var(), gamma, beta, EPS),
                                y.downloadDoubles(), g, yTol, "training y, step " + step);
                    }
                    ReferenceBatchNorm.updateRunning(rm, rv, s, 0.1);
                }
                assertRelative(rm, bn.runningMeanDouble(), 1e-12, "running_mean");
                assertRelative(rv, bn.runningVarDouble(), 1e-12, "running_var");
                double[] dy = values((int) g.elements(), 16, -1, 1);
                try (Tensor dyt = Tensor.upload(b, dy, layout, ElementType.FLOAT64, shape);
                     Tensor dx = bn.backward(xt, dyt)) {
                    ReferenceBatchNorm.Grads r = ReferenceBatchNorm.backward(x, dy, g, gamma, EPS);
                    ReferenceBatchNorm.GradMagnitudes mag = ReferenceBatchNorm.gradMagnitudes(x, dy, g, EPS);
                    double[] dbTol = new double[nc];
                    double[] dgTol = new double[nc];
                    double[] dxTol = new double[nc];
                    for (int c = 0; c < nc; c++) {
                        dbTol[c] = 1e-12 * (1 + mag.dbeta()[c]);
                        // x̂'s error (above) enters dgamma once per term.
                        dgTol[c] = 1e-12 * (1 + mag.dgamma()[c]) + mag.dbeta()[c] * yTol[c] / Math.abs(gamma[c]);
                        double invstd = 1.0 / Math.sqrt(s.var()[c] + EPS);
                        dxTol[c] = 1e-10 * Math.abs(gamma[c]) * invstd + 2 * yTol[c] * invstd;
                    }
                    assertClose(r.dbeta(), bn.gradBiasDouble(), dbTol, "dbeta");
                    assertClose(r.dgamma(), bn.gradWeightDouble(), dgTol, "dgamma");
                    assertClose(r.dx(), dx.downloadDoubles(), g, dxTol, "dx");
                }
                try (Tensor y = bn.forwardInference(xt)) {
                    // Inference of |x| ~ 1e6 against running means near 0 gives |y| ~ 1e6: a relative bound.
                    double[] expected = ReferenceBatchNorm.inference(x, g, rm, rv, gamma, beta, EPS);
                    double[] got = y.downloadDoubles();
                    for (int i = 0; i < expected.length; i++) {
                        double tol = 1e-12 + 1e-14 * Math.abs(expected[i]);
                        if (!(Math.abs(expected[i] - got[i]) <= tol)) {
                            fail("inference y[" + i + "]: expected " + expected[i] + ", got " + got[i]);
                        }
                    }
                }
            }
        }
    }

    /** The bound above is one that a float32 layer on the same data misses by far: it tests precision. */
    private static void assertFloat32MissesTheBound(Backend b, Geometry g, Layout layout, int[] shape, double[] x,
                                                    double[] gamma, double[] beta, ReferenceBatchNorm.Stats s,
                                                    double[] yTol) {
        float[] x32 = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            x32[i] = (float) x[i];
        }
        double[] expected = ReferenceBatchNorm.normalize(x, g, s.mean(), s.var(), gamma, beta, EPS);
        try (BatchNorm f32 = BatchNorm.builder(g.channels()).backend(b).eps(EPS).build();
             Tensor xt = Tensor.upload(b, x32, layout, shape)) {
            f32.setWeight(gamma);
            f32.setBias(beta);
            try (Tensor y = f32.forwardTraining(xt)) {
                float[] got = y.download();
                double worst = 0;
                for (int i = 0; i < got.length; i++) {
                    int c = (int) ((i / g.inner()) % g.channels());
                    worst = Math.max(worst, Math.abs(expected[i] - got[i]) / yTol[c]);
                }
                assertTrue(worst > 1000, "float32 stays within " + worst + " x the float64 bound");
            }
        }
    }

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#fp64Backends")
    void fusedResidualReluEqualsTheComposition(Backend b) {
        int[] shape = {4, 6, 10, 12};
        Geometry g = Geometry.of(shape, Layout.CHANNELS_FIRST);
        double[] x = values((int) g.elements(), 21, -2, 2);
        double[] z = values((int) g.elements(), 22, -1, 1);
        double[] dy = values((int) g.elements(), 23, -1, 1);
        try (BatchNorm fused = BatchNorm.builder(6).backend(b).dtype(ElementType.FLOAT64)
                .activation(Activation.RELU).build();
             BatchNorm plain = BatchNorm.builder(6).backend(b).dtype(ElementType.FLOAT64).build();
             Tensor xt = Tensor.upload(b, x, Layout.CHANNELS_FIRST, ElementType.FLOAT64, shape);
             Tensor zt = Tensor.upload(b, z, Layout.CHANNELS_FIRST, ElementType.FLOAT64, shape);
             Tensor dyt = Tensor.upload(b, dy, Layout.CHANNELS_FIRST, ElementType.FLOAT64, shape);
             Tensor y = Tensor.zeros(b, Layout.CHANNELS_FIRST, ElementType.FLOAT64, shape);
             Tensor dx = Tensor.zeros(b, Layout.CHANNELS_FIRST, ElementType.FLOAT64, shape);
             Tensor dz = Tensor.zeros(b, Layout.CHANNELS_FIRST, ElementType.FLOAT64, shape)) {
            fused.forwardTraining(xt, zt, y);
            fused.backward(xt, y, dyt, dx, dz);
            double[] yf = y.downloadDoubles();
            double[] masked = new double[dy.length];
            double[] expectedY = new double[dy.length];
            try (Tensor bnOut = plain.forwardTraining(xt)) {
                double[] u = bnOut.downloadDoubles();
                for (int i = 0; i < u.length; i++) {
                    double v = u[i] + z[i];
                    expectedY[i] = v < 0 ? 0 : v;
                    masked[i] = v > 0 ? dy[i] : 0;
                }
            }
            assertArrayEquals(expectedY, yf, 1e-15, "y = relu(bn(x) + z)");
            assertArrayEquals(masked, dz.downloadDoubles(), 0.0, "dresidual = dy masked by y > 0");
            try (Tensor m = Tensor.upload(b, masked, Layout.CHANNELS_FIRST, ElementType.FLOAT64, shape);
                 Tensor dxPlain = plain.backward(xt, m)) {
                assertArrayEquals(dxPlain.downloadDoubles(), dx.downloadDoubles(), 1e-13, "dx");
            }
        }
    }

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#fp64Backends")
    void precisionMismatchesAreRejectedBeforeDeviceWork(Backend b) {
        int[] shape = {4, 3, 5};
        float[] x = TestData.gaussian(60, 1);
        try (BatchNorm f32 = BatchNorm.builder(3).backend(b).build();
             BatchNorm f64 = BatchNorm.builder(3).backend(b).dtype(ElementType.FLOAT64).build();
             Tensor x64 = Tensor.upload(b, x, Layout.CHANNELS_FIRST, ElementType.FLOAT64, shape);
             Tensor x32 = Tensor.upload(b, x, Layout.CHANNELS_FIRST, ElementType.FLOAT32, shape)) {
            long launches = b.kernelLaunches();
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> f32.forwardTraining(x64));
            assertTrue(e.getMessage().contains("got FLOAT64") && e.getMessage().contains("dtype(ElementType.FLOAT64)"),
                    e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> f64.forwardInference(x32));
            assertTrue(e.getMessage().contains("float64 layer expects FLOAT64 input tensors, got FLOAT32"),
                    e.getMessage());
            assertEquals(launches, b.kernelLaunches(), "no kernel ran");
            assertEquals(0, f64.numBatchesTracked());
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> BatchNorm.builder(3).backend(b).dtype(ElementType.FLOAT16).build());
        assertTrue(e.getMessage().contains("FLOAT32 or FLOAT64, got FLOAT16"), e.getMessage());
    }

    @Test
    void aDeviceWithoutDoublePrecisionRefusesAFloat64Layer() {
        try (JavaBackend java = new JavaBackend(1)) {
            Backend noFp64 = withoutFp64(java);
            long buffers = java.liveBuffers();
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> BatchNorm.builder(3).backend(noFp64).dtype(ElementType.FLOAT64).build());
            assertTrue(e.getMessage().contains("cl_khr_fp64") && e.getMessage().contains("does not report"),
                    e.getMessage());
            assertEquals(buffers, java.liveBuffers(), "nothing allocated");
        }
    }

    /** The same backend, except that its DeviceInfo says it has no double precision. */
    private static Backend withoutFp64(Backend inner) {
        DeviceInfo i = inner.info();
        DeviceInfo info = new DeviceInfo(i.id(), DeviceInfo.Kind.GPU, i.platform(), i.vendor(), "no-fp64 device",
                i.version(), i.computeUnits(), i.globalMemBytes(), i.maxAllocBytes(), i.maxWorkGroupSize(), false,
                i.fp16(), i.cacheBytes());
        return (Backend) Proxy.newProxyInstance(Backend.class.getClassLoader(), new Class<?>[]{Backend.class},
                (proxy, method, args) -> {
                    if (method.getName().equals("info")) {
                        return info;
                    }
                    try {
                        return method.invoke(inner, args);
                    } catch (InvocationTargetException ex) {
                        throw ex.getCause();
                    }
                });
    }

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#fp64Backends")
    void stateKeepsEveryBitOfADouble(Backend b) {
        double[] mean = {0.1, 1.0 / 3, Math.PI * 1e7};
        double[] var = {0.2, 2.0 / 3, Math.E};
        try (BatchNorm f64 = BatchNorm.builder(3).backend(b).dtype(ElementType.FLOAT64).build();
             BatchNorm f32 = BatchNorm.builder(3).backend(b).build()) {
            f64.setRunningMean(mean);
            f64.setRunningVar(var);
            assertArrayEquals(mean, f64.runningMeanDouble(), 0.0);
            assertArrayEquals(var, f64.runningVarDouble(), 0.0);
            f32.setRunningMean(mean);
            double[] rounded = f32.runningMeanDouble();
            for (int c = 0; c < 3; c++) {
                assertEquals((float) mean[c], rounded[c], 0.0, "a float32 layer rounds once");
            }
            // 1e300 is finite as a double but Inf as a float32: only the float64 layer accepts it.
            double[] huge = {1e300, 1, 1};
            f64.setRunningVar(huge);
            assertThrows(IllegalArgumentException.class, () -> f32.setRunningVar(huge));
        }
    }

    private static void assertClose(double[] expected, double[] actual, Geometry g, double[] tolPerChannel,
                                    String what) {
        assertEquals(expected.length, actual.length, what + " length");
        for (int i = 0; i < expected.length; i++) {
            int c = (int) ((i / g.inner()) % g.channels());
            if (!(Math.abs(expected[i] - actual[i]) <= tolPerChannel[c])) {
                fail(what + "[" + i + "] (channel " + c + "): expected " + expected[i] + ", got " + actual[i]
                        + " (tolerance " + tolPerChannel[c] + ")");
            }
        }
    }

    private static void assertClose(double[] expected, double[] actual, double[] tol, String what) {
        for (int c = 0; c < expected.length; c++) {
            if (!(Math.abs(expected[c] - actual[c]) <= tol[c])) {
                fail(what + "[" + c + "]: expected " + expected[c] + ", got " + actual[c] + " (tolerance " + tol[c] + ")");
            }
        }
    }

    private static void assertRelative(double[] expected, double[] actual, double rel, String what) {
        for (int c = 0; c < expected.length; c++) {
            double tol = rel * Math.max(1, Math.abs(expected[c]));
            if (!(Math.abs(expected[c] - actual[c]) <= tol)) {
                fail(what + "[" + c + "]: expected " + expected[c] + ", got " + actual[c] + " (tolerance " + tol + ")");
            }
        }
    }
}
