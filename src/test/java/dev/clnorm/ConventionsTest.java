package dev.clnorm;

import dev.clnorm.backend.Backend;
import org.junit.jupiter.api.Test;
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

/** Framework conventions: each profile's formula on hand-computable inputs and over several steps. */
class ConventionsTest {

    static Stream<Arguments> backendsAndConventions() {
        List<Arguments> list = new ArrayList<>();
        for (Backend b : TestBackends.all()) {
            for (Convention c : Convention.values()) {
                list.add(Arguments.of(b, c));
            }
        }
        return list.stream();
    }

    /**
     * Channel 0 holds 1, 2, 3, 4 (mean 2.5, biased var 1.25, unbiased 5/3); channel 1 holds 10, 10,
     * 14, 14 (mean 12, biased var 4, unbiased 16/3). One step from running mean 0 and variance 1.
     * The expected running values are the framework's own float32 formula: Keras
     * {@code moving * momentum + batch * (1 - momentum)}, PyTorch
     * {@code (1 - momentum) * running + momentum * batch}. With the biased variance (Keras, ONNX) the
     * batch statistics are exact in float32, so the update must match bit for bit; the unbiased
     * variance 5/3 is rounded differently by var * m/(m-1) and by a direct division, so PyTorch and
     * cuDNN get one float32 ulp.
     */
    @ParameterizedTest(name = "{0} {1}", autoCloseArguments = false)
    @MethodSource("backendsAndConventions")
    void oneStepOnHandComputableInput(Backend backend, Convention convention) {
        float[] x = {1, 10, 2, 10, 3, 14, 4, 14};  // shape (4, 2)
        float[] mean = {2.5f, 12f};
        float[] biased = {1.25f, 4f};
        float[] unbiased = {5f / 3f, 16f / 3f};
        try (BatchNorm bn = BatchNorm.builder(2).convention(convention).backend(backend).build()) {
            assertEquals((float) convention.defaultEps(), bn.eps());
            float[] y = bn.forwardTraining(x, 4, 2);
            float m = (float) convention.defaultMomentum();
            float[] rm = bn.runningMean();
            float[] rv = bn.runningVar();
            for (int c = 0; c < 2; c++) {
                float fed = convention.unbiasedRunningVar() ? unbiased[c] : biased[c];
                float expMean;
                float expVar;
                if (convention.momentumIsDecay()) {
                    expMean = 0f * m + mean[c] * (1f - m);
                    expVar = 1f * m + fed * (1f - m);
                } else {
                    expMean = (1f - m) * 0f + m * mean[c];
                    expVar = (1f - m) * 1f + m * fed;
                }
                assertEquals(expMean, rm[c], 0f, convention + " running mean " + c);
                float ulps = convention.unbiasedRunningVar() ? Math.ulp(expVar) : 0f;
                assertEquals(expVar, rv[c], ulps, convention + " running var " + c);
                for (int n = 0; n < 4; n++) {
                    double expected = (x[n * 2 + c] - mean[c]) / Math.sqrt(biased[c] + convention.defaultEps());
                    assertEquals(expected, y[n * 2 + c], 1e-6, convention + " y");
                }
            }
        }
    }

    /** Several steps on random batches against the float64 reference driven by the convention's weights. */
    @ParameterizedTest(name = "{0} {1}", autoCloseArguments = false)
    @MethodSource("backendsAndConventions")
    void runningStatisticsOverSeveralSteps(Backend backend, Convention convention) {
        int[] shape = {6, 4, 5, 3};
        Geometry g = Geometry.of(shape, Layout.CHANNELS_FIRST);
        double[] rm = new double[4];
        double[] rv = new double[4];
        Arrays.fill(rv, 1.0);
        Double momentum = convention.momentumIsDecay() ? 0.8 : 0.3;
        try (BatchNorm bn = BatchNorm.builder(4).convention(convention).momentum(momentum).backend(backend).build()) {
            for (int step = 0; step < 4; step++) {
                float[] x = TestData.channelData(g, 70 + step, 2.0, 0.5, 2.0);
                bn.forwardTraining(x, shape);
                ReferenceBatchNorm.Stats s = ReferenceBatchNorm.stats(TestData.toDouble(x), g);
                double f = convention.batchWeight(momentum, step + 1);
                for (int c = 0; c < 4; c++) {
                    double fed = convention.unbiasedRunningVar() ? s.unbiasedVar()[c] : s.var()[c];
                    rm[c] = (1 - f) * rm[c] + f * s.mean()[c];
                    rv[c] = (1 - f) * rv[c] + f * fed;
                }
            }
            assertClose(rm, bn.runningMean(), 2e-4, convention + " running mean");
            assertClose(rv, bn.runningVar(), 2e-4, convention + " running var");
        }
    }

    /**
     * ONNX BatchNormalization, training_mode = 1 (opset 15): y = (x - mean) / sqrt(var + eps) * scale + B
     * with the batch's mean and biased variance; running_mean = input_mean * momentum +
     * current_mean * (1 - momentum), running_var likewise with the biased variance. On (2,3,4,5).
     */
    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void onnxTrainingModeFormula(Backend backend) {
        int[] shape = {2, 3, 4, 5};
        Geometry g = Geometry.of(shape, Layout.CHANNELS_FIRST);
        float[] x = TestData.channelData(g, 15, 1.5, 0.5, 2.0);
        float[] scale = {0.5f, 1.5f, -1f};
        float[] bias = {0.1f, -0.2f, 0.3f};
        float[] inputMean = {0.3f, -0.1f, 2f};
        float[] inputVar = {1.5f, 0.7f, 2.2f};
        double momentum = 0.9;
        double eps = 1e-5;
        try (BatchNorm bn = BatchNorm.builder(3).convention(Convention.ONNX).backend(backend).build()) {
            assertEquals(momentum, bn.momentum());
            bn.setWeight(scale);
            bn.setBias(bias);
            bn.setRunningMean(inputMean);
            bn.setRunningVar(inputVar);
            float[] y = bn.forwardTraining(x, shape);
            double[] xd = TestData.toDouble(x);
            ReferenceBatchNorm.Stats s = ReferenceBatchNorm.stats(xd, g);
            double[] expY = ReferenceBatchNorm.normalize(xd, g, s.mean(), s.var(), TestData.toDouble(scale),
                    TestData.toDouble(bias), eps);
            assertClose(expY, y, 2e-4, "onnx y");
            double[] expMean = new double[3];
            double[] expVar = new double[3];
            for (int c = 0; c < 3; c++) {
                expMean[c] = inputMean[c] * momentum + s.mean()[c] * (1 - momentum);
                expVar[c] = inputVar[c] * momentum + s.var()[c] * (1 - momentum);
            }
            assertClose(expMean, bn.runningMean(), 2e-4, "onnx running mean");
            assertClose(expVar, bn.runningVar(), 2e-4, "onnx running var");
        }
    }

    /**
     * REFERENCE.md §2's worked numbers: nn.BatchNorm2d(64) on torch.rand(32,64,68,68) in training mode
     * gives output mean ~ -4.7e-9 and unbiased std ~ 0.99994, because U(0,1) has variance 1/12 and
     * sqrt((1/12) / (1/12 + 1e-5)) ~ 0.99994.
     */
    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void pytorchBatchNorm2dOnUniformData(Backend backend) {
        int[] shape = {32, 64, 68, 68};
        float[] x = TestData.uniform(32 * 64 * 68 * 68, 2024, 0.0, 1.0);
        try (BatchNorm bn = BatchNorm.builder(64).convention(Convention.PYTORCH).backend(backend).build()) {
            float[] y = bn.forwardTraining(x, shape);
            double sum = 0;
            for (float v : y) {
                sum += v;
            }
            double mean = sum / y.length;
            double ss = 0;
            for (float v : y) {
                ss += (v - mean) * (v - mean);
            }
            double std = Math.sqrt(ss / (y.length - 1));
            assertTrue(Math.abs(mean) < 1e-6, "output mean " + mean);
            assertEquals(0.99994, std, 2e-5, "output unbiased std");
        }
    }

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void scaleAndShiftAreIndependent(Backend backend) {
        int[] shape = {5, 2, 3};
        Geometry g = Geometry.of(shape, Layout.CHANNELS_FIRST);
        float[] x = TestData.channelData(g, 33, 1.0, 0.5, 1.5);
        try (BatchNorm noShift = BatchNorm.builder(2).convention(Convention.KERAS).useShift(false).backend(backend)
                .build();
             BatchNorm noScale = BatchNorm.builder(2).useScale(false).backend(backend).build()) {
            assertThrows(IllegalStateException.class, () -> noShift.setBias(new float[]{1, 1}));
            assertThrows(IllegalStateException.class, () -> noScale.setWeight(new float[]{2, 2}));
            noShift.setWeight(new float[]{2, -1});
            noScale.setBias(new float[]{0.5f, -0.5f});
            float[] a = noShift.forwardTraining(x, shape);
            float[] b = noScale.forwardTraining(x, shape);
            ReferenceBatchNorm.Stats s = ReferenceBatchNorm.stats(TestData.toDouble(x), g);
            assertClose(ReferenceBatchNorm.normalize(TestData.toDouble(x), g, s.mean(), s.var(), new double[]{2, -1},
                    new double[2], 1e-3), a, 2e-4, "gamma only (Keras center=false)");
            assertClose(ReferenceBatchNorm.normalize(TestData.toDouble(x), g, s.mean(), s.var(), new double[]{1, 1},
                    new double[]{0.5, -0.5}, 1e-5), b, 2e-4, "beta only (scale=false)");
        }
    }

    /**
     * useGlobalStats: the training forward equals inference, leaves the running statistics alone, and
     * its backward is dx = gamma * dy / sqrt(running_var + eps), dgamma = sum(dy * xhat), dbeta = sum(dy)
     * with xhat from the running statistics.
     */
    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void frozenLayerUsesRunningStatistics(Backend backend) {
        int[] shape = {4, 3, 6, 5};
        Geometry g = Geometry.of(shape, Layout.CHANNELS_FIRST);
        float[] x = TestData.channelData(g, 41, 1.0, 0.5, 1.5);
        float[] dy = TestData.gaussian(x.length, 42);
        float[] rm = {0.5f, -0.25f, 1f};
        float[] rv = {2f, 0.5f, 1.25f};
        float[] gamma = {1.5f, -0.5f, 0.75f};
        try (BatchNorm bn = BatchNorm.builder(3).useGlobalStats(true).backend(backend).build()) {
            bn.setRunningMean(rm);
            bn.setRunningVar(rv);
            bn.setWeight(gamma);
            float[] yTrain = bn.forwardTraining(x, shape);
            float[] yEval = bn.forwardInference(x, shape);
            assertArrayEquals(yEval, yTrain, "frozen training forward equals inference");
            assertArrayEquals(rm, bn.runningMean());
            assertArrayEquals(rv, bn.runningVar());
            assertEquals(0, bn.numBatchesTracked());
            bn.forwardTraining(x, shape);
            float[] dx = bn.backward(x, dy, shape);
            double[] expDx = new double[x.length];
            double[] expDgamma = new double[3];
            double[] expDbeta = new double[3];
            for (int o = 0; o < g.outer(); o++) {
                for (int c = 0; c < 3; c++) {
                    double invstd = 1.0 / Math.sqrt(rv[c] + 1e-5);
                    for (int i = 0; i < g.inner(); i++) {
                        int at = (o * 3 + c) * g.inner() + i;
                        expDx[at] = gamma[c] * invstd * dy[at];
                        expDgamma[c] += dy[at] * (x[at] - rm[c]) * invstd;
                        expDbeta[c] += dy[at];
                    }
                }
            }
            assertClose(expDx, dx, 2e-4, "frozen dx");
            assertClose(expDgamma, bn.gradWeight(), 1e-3, "frozen dgamma (a sum of 120 terms)");
            assertClose(expDbeta, bn.gradBias(), 1e-3, "frozen dbeta (a sum of 120 terms)");
        }
    }

    @Test
    void conventionsValidateTheirMomentum() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> BatchNorm.builder(2).convention(Convention.KERAS).momentum(null).build());
        assertTrue(e.getMessage().contains("decay"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> BatchNorm.builder(2).convention(Convention.ONNX).momentum(1.5).build());
        assertTrue(e.getMessage().contains("got 1.5"), e.getMessage());
        assertEquals(0.99, Convention.KERAS.defaultMomentum());
        assertEquals(0.01, Convention.KERAS.batchWeight(0.99, 1), 1e-15);
        assertEquals(0.25, Convention.CUDNN.batchWeight(null, 4), 0);
    }
}
