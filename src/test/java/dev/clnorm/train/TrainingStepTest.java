package dev.clnorm.train;

import dev.clnorm.TestBackends;
import dev.clnorm.backend.Backend;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.Arrays;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Training steps on every backend against the float64 reference: loss, gradients, parameters after
 * Adam and batch-norm running statistics. Also: the same seed gives bit-identical initial parameters
 * on every device, and training steps make no host transfer.
 */
class TrainingStepTest {
    private static final int[] WIDTHS = {12, 16, 8, 4};
    private static final int ROWS = 16;
    private static final double LR = 1e-2;

    private static void close(String what, double expected, double actual, double abs, double rel) {
        if (!(Math.abs(expected - actual) <= abs + rel * Math.abs(expected))) {
            fail(what + ": expected " + expected + ", got " + actual + " (|diff| " + Math.abs(expected - actual) + ")");
        }
    }

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void stepsMatchTheFloat64Reference(Backend backend) {
        for (boolean batchNorm : new boolean[]{true, false}) {
            try (TrainOps ops = TrainOps.of(backend);
                 Mlp model = new Mlp(ops, WIDTHS, batchNorm, 11, Mlp.Adam.of(LR));
                 TinyData data = new TinyData(backend, ROWS * 3, WIDTHS[0], WIDTHS[3], 12)) {
                ReferenceMlp ref = new ReferenceMlp(WIDTHS, batchNorm, model.state());
                String tag = backend.info().id() + " (batch norm " + batchNorm + ")";
                double[] x = data.xDouble();
                Map<String, double[]> smallestGradient = new java.util.HashMap<>();
                for (int step = 0; step < 3; step++) {
                    int offset = step * ROWS;
                    double[] xb = Arrays.copyOfRange(x, offset * WIDTHS[0], (offset + ROWS) * WIDTHS[0]);
                    int[] yb = Arrays.copyOfRange(data.labels, offset, offset + ROWS);
                    double[] loss = new double[1];
                    Map<String, double[]> g = ref.step(xb, yb, ROWS, Mlp.Adam.of(LR), loss);
                    model.trainStep(data.images, data.labelBuffer, data.order, offset, ROWS);

                    // Loss: float32 softmax of 4 logits per row; errors ~1e-7 relative.
                    close(tag + " loss at step " + step, loss[0], model.takeLoss(), 1e-6, 1e-5);
                    Map<String, Mlp.Named> dg = model.gradients();
                    for (String name : g.keySet()) {
                        double[] e = g.get(name);
                        double[] smallest = smallestGradient.computeIfAbsent(name, n -> {
                            double[] v = new double[e.length];
                            Arrays.fill(v, Double.POSITIVE_INFINITY);
                            return v;
                        });
                        for (int k = 0; k < e.length; k++) {
                            smallest[k] = Math.min(smallest[k], Math.abs(e[k]));
                        }
                        float[] a = dg.get(name).values();
                        for (int k = 0; k < e.length; k++) {
                            // Same bound as the gradient check: float32 sums of <= 16 terms of size <= 1.
                            close(tag + " gradient " + name + "[" + k + "] at step " + step, e[k], a[k], 1e-5, 1e-4);
                        }
                    }
                    Map<String, Mlp.Named> state = model.state();
                    for (Map.Entry<String, double[]> p : ref.params.entrySet()) {
                        double[] e = p.getValue();
                        float[] a = state.get(p.getKey()).values();
                        double[] smallest = smallestGradient.get(p.getKey());
                        for (int k = 0; k < e.length; k++) {
                            // Adam's step lr * m/(sqrt(v) + eps) does not depend on the gradients' scale, so
                            // a relative gradient error d moves it by about lr * d per step: d is at most
                            // the gradient bound above over the smallest |g| seen (capped at 2, a flipped
                            // sign), times the 3 steps; float32 storage of values <= 1 adds ~1e-7.
                            double d = Math.min(2, (1e-5 + 1e-4 * smallest[k]) / smallest[k]);
                            close(tag + " " + p.getKey() + "[" + k + "] after step " + step, e[k], a[k],
                                    2e-7 + 3 * LR * d, 0);
                        }
                    }
                    for (String bn : ref.runningMean.keySet()) {
                        double[] rm = ref.runningMean.get(bn);
                        double[] rv = ref.runningVar.get(bn);
                        float[] am = state.get(bn + ".running_mean").values();
                        float[] av = state.get(bn + ".running_var").values();
                        for (int c = 0; c < rm.length; c++) {
                            // PyTorch's parity bound for float32 batch-norm results vs float64 (REFERENCE.md).
                            close(tag + " " + bn + ".running_mean[" + c + "]", rm[c], am[c], 2e-4, 0);
                            close(tag + " " + bn + ".running_var[" + c + "]", rv[c], av[c], 2e-4, 0);
                        }
                        assertEquals(step + 1, state.get(bn + ".num_batches_tracked").values()[0], tag);
                    }
                }
                // The test is not vacuous: three steps at lr 1e-2 moved the first weight matrix.
                assertTrue(maxDiff(ref.params.get("fc1.weight"), new ReferenceMlp(WIDTHS, batchNorm,
                        freshState(backend, batchNorm)).params.get("fc1.weight")) > 1e-3, tag);
            }
        }
    }

    private static Map<String, Mlp.Named> freshState(Backend backend, boolean batchNorm) {
        try (TrainOps ops = TrainOps.of(backend); Mlp m = new Mlp(ops, WIDTHS, batchNorm, 11, Mlp.Adam.of(LR))) {
            return m.state();
        }
    }

    private static double maxDiff(double[] a, double[] b) {
        double d = 0;
        for (int i = 0; i < a.length; i++) {
            d = Math.max(d, Math.abs(a[i] - b[i]));
        }
        return d;
    }

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void sameSeedGivesTheSameNetworkOnEveryDevice(Backend backend) {
        Backend java = TestBackends.all().get(0);
        Map<String, Mlp.Named> here = freshState(backend, true);
        Map<String, Mlp.Named> there = freshState(java, true);
        assertEquals(there.keySet(), here.keySet());
        for (String name : here.keySet()) {
            assertArrayEquals(there.get(name).values(), here.get(name).values(), name);
            assertArrayEquals(there.get(name).shape(), here.get(name).shape(), name);
        }
        try (TrainOps ops = TrainOps.of(backend); Mlp other = new Mlp(ops, WIDTHS, true, 12, Mlp.Adam.of(LR))) {
            assertNotEquals(here.get("fc1.weight").values()[0], other.state().get("fc1.weight").values()[0],
                    "another seed gives another network");
        }
    }

    /**
     * setLearningRate sets the rate of the following Adam steps: at 0 a step moves no parameter (while
     * the Adam moments still advance), back at LR it moves them; bad rates are refused.
     */
    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void theLearningRateCanChangeBetweenSteps(Backend backend) {
        try (TrainOps ops = TrainOps.of(backend);
             Mlp model = new Mlp(ops, WIDTHS, true, 5, Mlp.Adam.of(LR));
             TinyData data = new TinyData(backend, ROWS * 2, WIDTHS[0], WIDTHS[3], 6)) {
            String tag = backend.info().id();
            assertEquals(LR, model.learningRate());
            Map<String, Mlp.Named> before = model.state();
            model.setLearningRate(0.0);
            model.trainStep(data.images, data.labelBuffer, data.order, 0, ROWS);
            Map<String, Mlp.Named> after = model.state();
            for (String name : new String[]{"fc1.weight", "fc3.bias", "bn1.weight", "bn2.bias"}) {
                assertArrayEquals(before.get(name).values(), after.get(name).values(), tag + " " + name + " at lr 0");
            }
            model.setLearningRate(LR);
            model.trainStep(data.images, data.labelBuffer, data.order, ROWS, ROWS);
            assertTrue(maxDiff(toDouble(before.get("fc1.weight").values()),
                    toDouble(model.state().get("fc1.weight").values())) > 1e-3, tag + ": a step at LR moves fc1");
            for (double bad : new double[]{-1e-3, Double.NaN, Double.POSITIVE_INFINITY}) {
                IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(
                        IllegalArgumentException.class, () -> model.setLearningRate(bad));
                assertTrue(e.getMessage().contains("learning rate must be a finite number >= 0, got " + bad),
                        e.getMessage());
            }
            assertEquals(LR, model.learningRate(), "a refused rate changes nothing");
        }
    }

    private static double[] toDouble(float[] v) {
        double[] d = new double[v.length];
        for (int i = 0; i < v.length; i++) {
            d[i] = v[i];
        }
        return d;
    }

    /** Between steps nothing crosses to the host; reading the loss is exactly one transfer. */
    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void trainingStepsMakeNoHostTransfers(Backend backend) {
        try (TrainOps ops = TrainOps.of(backend);
             Mlp model = new Mlp(ops, WIDTHS, true, 5, Mlp.Adam.of(LR));
             TinyData data = new TinyData(backend, ROWS * 4, WIDTHS[0], WIDTHS[3], 6)) {
            model.trainStep(data.images, data.labelBuffer, data.order, 0, ROWS);  // allocates the workspace
            backend.finish();
            long transfers = backend.transferCount();
            long launches = backend.kernelLaunches();
            for (int s = 1; s < 4; s++) {
                model.trainStep(data.images, data.labelBuffer, data.order, s * ROWS, ROWS);
            }
            backend.finish();
            assertEquals(transfers, backend.transferCount(), "host-device transfers during 3 training steps");
            // Per step at least: gather, 3 forward GEMMs, 2 batch norms, 2 ReLUs, bias, loss, 5 backward
            // GEMMs, ... and 7 Adam updates: far more than 3 x 20 launches.
            assertTrue(backend.kernelLaunches() - launches >= 60, "the steps ran on the device: "
                    + (backend.kernelLaunches() - launches) + " launches");
            double loss = model.takeLoss();
            assertEquals(transfers + 1, backend.transferCount(), "reading the loss is one transfer");
            assertTrue(loss > 0 && Double.isFinite(loss), "accumulated loss " + loss);
            assertEquals(0.0, model.takeLoss(), "taking the loss resets the accumulator");
        }
    }
}
