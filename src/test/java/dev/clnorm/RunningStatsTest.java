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
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Running statistics after several training steps on different batches, for momentum 0.1, 0, 1
 * and the cumulative average (momentum null), against the float64 reference; then inference with
 * them. Tolerance 2e-4 absolute (values are O(1..4)).
 */
class RunningStatsTest {
    private static final int STEPS = 5;

    static Stream<Arguments> cases() {
        List<Arguments> list = new ArrayList<>();
        Double[] momenta = {0.1, 0.0, 1.0, null};
        for (Backend b : TestBackends.all()) {
            for (Double m : momenta) {
                list.add(Arguments.of(b, m, new int[]{8, 6, 5, 7}));
                list.add(Arguments.of(b, m, new int[]{32, 3}));
            }
        }
        return list.stream();
    }

    @ParameterizedTest(name = "{0} momentum={1} {2}", autoCloseArguments = false)
    @MethodSource("cases")
    void runningStatisticsFollowTheReference(Backend backend, Double momentum, int[] shape) {
        Geometry g = Geometry.of(shape, Layout.CHANNELS_FIRST);
        int nc = g.channels();
        double[] rm = new double[nc];
        double[] rv = new double[nc];
        Arrays.fill(rv, 1.0);
        try (BatchNorm bn = BatchNorm.builder(nc).momentum(momentum).backend(backend).build()) {
            float[] last = null;
            for (int step = 1; step <= STEPS; step++) {
                float[] x = TestData.channelData(g, 1000 + step, 3.0, 0.5, 2.0);
                try (Tensor xt = Tensor.upload(backend, x, shape); Tensor y = bn.forwardTraining(xt)) {
                    assertEquals(x.length, y.elements());
                }
                ReferenceBatchNorm.Stats s = ReferenceBatchNorm.stats(TestData.toDouble(x), g);
                double factor = momentum == null ? 1.0 / step : momentum;
                ReferenceBatchNorm.updateRunning(rm, rv, s, factor);
                last = x;
            }
            assertEquals(STEPS, bn.numBatchesTracked());
            assertClose(rm, bn.runningMean(), 2e-4, "running mean");
            assertClose(rv, bn.runningVar(), 2e-4, "running var");

            double[] ones = new double[nc];
            Arrays.fill(ones, 1.0);
            try (Tensor xt = Tensor.upload(backend, last, shape); Tensor y = bn.forwardInference(xt)) {
                double[] expected = ReferenceBatchNorm.inference(TestData.toDouble(last), g, rm, rv, ones,
                        new double[nc], 1e-5);
                assertClose(expected, y.download(), 2e-4, "inference y");
            }
        }
    }
}
