package dev.clnorm;

import dev.clnorm.backend.Backend;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

/** The same input twice gives bit-identical results on one device: no float atomics, fixed merge order. */
class DeterminismTest {

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void sameInputTwiceGivesBitIdenticalOutputs(Backend backend) {
        int[] shape = {16, 8, 61, 67};  // m = 65392 per channel: many work-groups per channel
        Geometry g = Geometry.of(shape, Layout.CHANNELS_FIRST);
        float[] x = TestData.channelData(g, 7, 4.0, 0.1, 3.0);
        float[] dy = TestData.gaussian(x.length, 8);
        float[][] first = run(backend, shape, x, dy);
        float[][] second = run(backend, shape, x, dy);
        String[] names = {"y", "saved mean", "saved invstd", "running mean", "running var", "dx", "dgamma", "dbeta"};
        for (int k = 0; k < names.length; k++) {
            assertFalse(first[k].length == 0);
            assertArrayEquals(first[k], second[k], names[k] + " differs between identical runs");
        }
    }

    private static float[][] run(Backend backend, int[] shape, float[] x, float[] dy) {
        try (BatchNorm bn = BatchNorm.builder(shape[1]).backend(backend).build();
             Tensor xt = Tensor.upload(backend, x, shape);
             Tensor dyt = Tensor.upload(backend, dy, shape);
             Tensor y = bn.forwardTraining(xt);
             Tensor dx = bn.backward(xt, dyt)) {
            return new float[][]{y.download(), bn.savedMean(), bn.savedInvstd(), bn.runningMean(), bn.runningVar(),
                    dx.download(), bn.gradWeight(), bn.gradBias()};
        }
    }
}
