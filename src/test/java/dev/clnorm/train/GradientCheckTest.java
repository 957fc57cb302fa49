package dev.clnorm.train;

import dev.clnorm.backend.Backend;
import dev.clnorm.backend.java.JavaBackend;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Gradients of the dense + batch norm + ReLU stack (and the softmax cross-entropy on top) against
 * central finite differences of the loss, on a tiny network: first the float64 reference's
 * analytic backward, then the gradients each device computes in a training step.
 */
class GradientCheckTest {
    private static final int[] WIDTHS = {5, 6, 4, 3};
    private static final int ROWS = 7;
    /** Central-difference step in float64: truncation error ~h^2 (1e-10), rounding ~1e-16/h (1e-11). */
    private static final double H = 1e-5;

    /** Central differences of the float64 reference's training-mode loss for every parameter entry. */
    private static Map<String, double[]> finiteDifferences(ReferenceMlp ref, double[] x, int[] labels) {
        Map<String, double[]> fd = new LinkedHashMap<>();
        for (Map.Entry<String, double[]> e : ref.params.entrySet()) {
            double[] p = e.getValue();
            double[] g = new double[p.length];
            for (int k = 0; k < p.length; k++) {
                double keep = p[k];
                p[k] = keep + H;
                double up = ref.loss(x, labels, ROWS);
                p[k] = keep - H;
                double down = ref.loss(x, labels, ROWS);
                p[k] = keep;
                g[k] = (up - down) / (2 * H);
            }
            fd.put(e.getKey(), g);
        }
        return fd;
    }

    /** The reference's analytic gradients equal finite differences to ~1e-8: its backward is right. */
    @ParameterizedTest(name = "batch norm {0}")
    @ValueSource(booleans = {true, false})
    void referenceBackwardMatchesFiniteDifferences(boolean batchNorm) {
        try (JavaBackend backend = new JavaBackend(1);
             TrainOps ops = TrainOps.of(backend);
             Mlp model = new Mlp(ops, WIDTHS, batchNorm, 3, Mlp.Adam.of(1e-3));
             TinyData data = new TinyData(backend, ROWS, WIDTHS[0], WIDTHS[3], 5)) {
            ReferenceMlp ref = new ReferenceMlp(WIDTHS, batchNorm, model.state());
            double[] x = data.xDouble();
            Map<String, double[]> analytic = ref.backward(ref.forward(x, data.labels, ROWS, true, false), ROWS);
            Map<String, double[]> fd = finiteDifferences(ref, x, data.labels);
            assertEquals(fd.keySet(), analytic.keySet(), "every parameter has a gradient");
            assertEquals(batchNorm, analytic.containsKey("bn1.weight"));
            assertEquals(!batchNorm, analytic.containsKey("fc1.bias"), "dense layers before batch norm have no bias");
            double largest = 0;
            for (String name : fd.keySet()) {
                double[] a = analytic.get(name);
                double[] f = fd.get(name);
                for (int k = 0; k < a.length; k++) {
                    largest = Math.max(largest, Math.abs(a[k]));
                    // float64 throughout: the finite difference is good to ~1e-10 (see H), so 1e-8 is loose
                    // yet would catch any wrong term (they are of the gradients' size, 1e-3..1e-1).
                    if (Math.abs(a[k] - f[k]) > 1e-8 + 1e-6 * Math.abs(f[k])) {
                        fail(name + "[" + k + "]: analytic " + a[k] + ", finite difference " + f[k]);
                    }
                }
            }
            assertTrue(largest > 1e-3, "gradients are not trivially zero (largest " + largest + ")");
        }
    }

    /**
     * Each device's float32 gradients from a training step equal finite differences of the float64
     * loss at the same starting parameters.
     */
    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void deviceGradientsMatchFiniteDifferences(Backend backend) {
        for (boolean batchNorm : new boolean[]{true, false}) {
            try (TrainOps ops = TrainOps.of(backend);
                 Mlp model = new Mlp(ops, WIDTHS, batchNorm, 3, Mlp.Adam.of(1e-3));
                 TinyData data = new TinyData(backend, ROWS, WIDTHS[0], WIDTHS[3], 5)) {
                ReferenceMlp ref = new ReferenceMlp(WIDTHS, batchNorm, model.state());
                Map<String, double[]> fd = finiteDifferences(ref, data.xDouble(), data.labels);
                model.trainStep(data.images, data.labelBuffer, data.order, 0, ROWS);
                Map<String, Mlp.Named> grads = model.gradients();
                assertEquals(fd.keySet(), grads.keySet(), "gradient names (" + batchNorm + ")");
                for (String name : fd.keySet()) {
                    float[] g = grads.get(name).values();
                    double[] f = fd.get(name);
                    for (int k = 0; k < g.length; k++) {
                        // float32 sums of a few dozen terms of size <= 1: error ~1e-7 each, ~1e-6 in all;
                        // 1e-5 absolute keeps a 10x margin, 1e-4 relative covers the larger entries.
                        if (Math.abs(g[k] - f[k]) > 1e-5 + 1e-4 * Math.abs(f[k])) {
                            fail(backend.info().id() + " " + name + "[" + k + "] (batch norm " + batchNorm
                                    + "): device " + g[k] + ", finite difference " + f[k]);
                        }
                    }
                }
            }
        }
    }
}
