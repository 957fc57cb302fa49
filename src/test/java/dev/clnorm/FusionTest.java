package dev.clnorm;

import dev.clnorm.backend.Backend;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Fused ReLU and fused residual add + ReLU against the unfused composition on the same device:
 * a plain layer, then the add and the ReLU (or its mask) applied on the host. The fused kernels do
 * the same float operations in the same order, so forward results must be identical; backward
 * sums may associate differently between launch plans, so they get the parity tolerance.
 */
class FusionTest {

    static Stream<Arguments> cases() {
        List<Arguments> list = new ArrayList<>();
        int[][] shapes = {{8, 16, 12, 12}, {2, 3, 64, 64}, {256, 16}};
        for (Backend b : TestBackends.all()) {
            for (int[] shape : shapes) {
                list.add(Arguments.of(b, Layout.CHANNELS_FIRST, shape));
            }
            list.add(Arguments.of(b, Layout.CHANNELS_LAST, new int[]{4, 6, 5, 8}));
        }
        return list.stream();
    }

    private static float relu(float v) {
        return v < 0 ? 0f : v;
    }

    @ParameterizedTest(name = "{0} {1} {2}", autoCloseArguments = false)
    @MethodSource("cases")
    void fusedAddReluMatchesTheComposition(Backend b, Layout layout, int[] shape) {
        Geometry g = Geometry.of(shape, layout);
        int n = (int) g.elements();
        int c = g.channels();
        float[] x = TestData.channelData(g, 91, 1.0, 0.5, 2.0);
        float[] z = TestData.gaussian(n, 92);
        float[] dy = TestData.gaussian(n, 93);
        float[] gamma = TestData.uniform(c, 94, 0.5, 1.5);
        float[] beta = TestData.uniform(c, 95, -0.5, 0.5);
        try (BatchNorm plain = BatchNorm.builder(c).backend(b).build();
             BatchNorm fused = BatchNorm.builder(c).activation(Activation.RELU).backend(b).build();
             Tensor xt = Tensor.upload(b, x, layout, shape);
             Tensor zt = Tensor.upload(b, z, layout, shape);
             Tensor dyt = Tensor.upload(b, dy, layout, shape);
             Tensor yPlain = Tensor.zeros(b, layout, shape);
             Tensor yFused = Tensor.zeros(b, layout, shape);
             Tensor yRelu = Tensor.zeros(b, layout, shape);
             Tensor dxPlain = Tensor.zeros(b, layout, shape);
             Tensor dxFused = Tensor.zeros(b, layout, shape);
             Tensor dz = Tensor.zeros(b, layout, shape)) {
            for (BatchNorm bn : new BatchNorm[]{plain, fused}) {
                bn.setWeight(gamma);
                bn.setBias(beta);
            }
            // ReLU alone.
            fused.forwardTraining(xt, yRelu);
            plain.forwardTraining(xt, yPlain);
            float[] bnOut = yPlain.download();
            float[] reluOut = yRelu.download();
            for (int i = 0; i < n; i++) {
                assertEquals(relu(bnOut[i]), reluOut[i], 0f, "relu(bn(x))[" + i + "]");
            }
            // Residual add + ReLU (the plain layer takes a second step too, so running statistics agree).
            fused.forwardTraining(xt, zt, yFused);
            plain.forwardTraining(xt, yPlain);
            float[] y = yFused.download();
            int positive = 0;
            for (int i = 0; i < n; i++) {
                assertEquals(relu(bnOut[i] + z[i]), y[i], 0f, "relu(bn(x) + z)[" + i + "]");
                positive += y[i] > 0 ? 1 : 0;
            }
            assertTrue(positive > n / 5 && positive < n - n / 5, "the mask is neither all nor nothing");

            // Backward through the add + ReLU: the plain layer gets the mask applied on the host.
            fused.backward(xt, yFused, dyt, dxFused, dz);
            float[] masked = new float[n];
            for (int i = 0; i < n; i++) {
                masked[i] = y[i] > 0 ? dy[i] : 0f;
            }
            try (Tensor maskedT = Tensor.upload(b, masked, layout, shape)) {
                plain.backward(xt, maskedT, dxPlain);
            }
            assertArrayEquals(masked, dz.download(), "d(residual) is dy through the ReLU mask");
            Close.assertClose(ReferenceBatchNorm.toDouble(dxPlain.download()), dxFused.download(), 2e-4, "dx");
            Close.assertClose(ReferenceBatchNorm.toDouble(plain.gradWeight()), fused.gradWeight(), 2e-4 * n / c,
                    "dgamma (sums of m terms)");
            Close.assertClose(ReferenceBatchNorm.toDouble(plain.gradBias()), fused.gradBias(), 2e-4 * n / c,
                    "dbeta (sums of m terms)");

            // Inference applies the same epilogue.
            fused.forwardInference(xt, zt, yFused);
            plain.forwardInference(xt, yPlain);
            float[] inf = yPlain.download();
            float[] infFused = yFused.download();
            for (int i = 0; i < n; i++) {
                assertEquals(relu(inf[i] + z[i]), infFused[i], 0f, "inference relu(bn(x) + z)[" + i + "]");
            }
        }
    }

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void reluKeepsNaNAndBackwardNeedsTheOutput(Backend b) {
        int[] shape = {4, 2, 3};
        float[] x = TestData.gaussian(24, 5);
        x[0] = Float.NaN;  // channel 0
        try (BatchNorm fused = BatchNorm.builder(2).activation(Activation.RELU).backend(b).build();
             Tensor xt = Tensor.upload(b, x, shape);
             Tensor dyt = Tensor.upload(b, TestData.gaussian(24, 6), shape)) {
            float[] y = fused.forwardTraining(x, shape);
            for (int n = 0; n < 4; n++) {
                for (int i = 0; i < 3; i++) {
                    assertTrue(Float.isNaN(y[(n * 2) * 3 + i]), "NaN channel stays NaN through ReLU");
                    assertTrue(y[(n * 2 + 1) * 3 + i] >= 0, "clean channel is clamped at 0");
                }
            }
            fused.forwardTraining(xt).close();
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> fused.backward(xt, dyt));
            assertTrue(e.getMessage().contains("backward(x, y, dy, dx)"), e.getMessage());
        }
    }
}
