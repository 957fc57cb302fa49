package dev.clnorm;

import dev.clnorm.backend.Backend;
import dev.clnorm.backend.Bfloat16;
import dev.clnorm.backend.ElementType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * float16 and bfloat16 tensor storage (float32 arithmetic, float32 parameters and statistics).
 *
 * <p>Two checks. Exact: a 16-bit layer computes what a float32 layer computes on the same (rounded)
 * input, then rounds once to nearest even, so its stored output must equal the float32 output
 * rounded on the host, bit for bit. Against the float64 reference on the rounded inputs: outputs
 * within 2e-4 plus half a unit in the last place of the storage type (float16 2^-11, bfloat16
 * 2^-8 relative), the rounding of the final store.
 */
class PrecisionTest {

    static Stream<Arguments> cases() {
        List<Arguments> list = new ArrayList<>();
        for (Backend b : TestBackends.all()) {
            for (ElementType t : new ElementType[]{ElementType.FLOAT16, ElementType.BFLOAT16}) {
                list.add(Arguments.of(b, t, Layout.CHANNELS_FIRST, new int[]{4, 8, 9, 11}));
                list.add(Arguments.of(b, t, Layout.CHANNELS_FIRST, new int[]{2, 3, 64, 65}));
                list.add(Arguments.of(b, t, Layout.CHANNELS_LAST, new int[]{6, 5, 7, 16}));
                list.add(Arguments.of(b, t, Layout.CHANNELS_FIRST, new int[]{33, 10}));
            }
        }
        return list.stream();
    }

    private static float[] rounded(float[] v, ElementType t) {
        float[] out = new float[v.length];
        for (int i = 0; i < v.length; i++) {
            out[i] = t.decode(t.encode(v[i]));
        }
        return out;
    }

    private static double relativeStep(ElementType t) {
        return t == ElementType.FLOAT16 ? Math.scalb(1.0, -11) : Math.scalb(1.0, -8);
    }

    @ParameterizedTest(name = "{0} {1} {2} {3}", autoCloseArguments = false)
    @MethodSource("cases")
    void sixteenBitStorageRoundsTheFloat32ResultOnce(Backend b, ElementType t, Layout layout, int[] shape) {
        Geometry g = Geometry.of(shape, layout);
        int c = g.channels();
        float[] x = rounded(TestData.channelData(g, 301, 2.0, 0.5, 2.0), t);
        float[] dy = rounded(TestData.gaussian(x.length, 302), t);
        float[] gamma = TestData.uniform(c, 303, 0.5, 1.5);
        float[] beta = TestData.uniform(c, 304, -0.5, 0.5);
        try (BatchNorm half = BatchNorm.builder(c).backend(b).build();
             BatchNorm full = BatchNorm.builder(c).backend(b).build();
             Tensor xh = Tensor.upload(b, x, layout, t, shape);
             Tensor dyh = Tensor.upload(b, dy, layout, t, shape);
             Tensor xf = Tensor.upload(b, x, layout, shape);
             Tensor dyf = Tensor.upload(b, dy, layout, shape);
             Tensor yh = Tensor.zeros(b, layout, t, shape);
             Tensor yf = Tensor.zeros(b, layout, shape);
             Tensor dxh = Tensor.zeros(b, layout, t, shape);
             Tensor dxf = Tensor.zeros(b, layout, shape)) {
            assertEquals(t, yh.dtype());
            for (BatchNorm bn : new BatchNorm[]{half, full}) {
                bn.setWeight(gamma);
                bn.setBias(beta);
            }
            half.forwardTraining(xh, yh);
            full.forwardTraining(xf, yf);
            assertRoundedOnce(yf.download(), yh.download(), t, "training y");
            assertEquals(0, Float.compare(full.runningMean()[0], half.runningMean()[0]), "same statistics");

            half.backward(xh, dyh, dxh);
            full.backward(xf, dyf, dxf);
            assertRoundedOnce(dxf.download(), dxh.download(), t, "dx");
            float[] dgH = half.gradWeight();
            float[] dgF = full.gradWeight();
            for (int i = 0; i < c; i++) {
                assertEquals(dgF[i], dgH[i], 0f, "dgamma is float32 and computed from the same values");
            }

            half.forwardInference(xh, yh);
            full.forwardInference(xf, yf);
            assertRoundedOnce(yf.download(), yh.download(), t, "inference y");

            // And against the float64 reference on the rounded input.
            ReferenceBatchNorm.Stats s = ReferenceBatchNorm.stats(TestData.toDouble(x), g);
            double[] ref = ReferenceBatchNorm.normalize(TestData.toDouble(x), g, s.mean(), s.var(),
                    TestData.toDouble(gamma), TestData.toDouble(beta), 1e-5);
            half.forwardTraining(xh, yh);
            float[] got = yh.download();
            for (int i = 0; i < ref.length; i++) {
                double tol = 2e-4 + Math.abs(ref[i]) * relativeStep(t);
                if (!(Math.abs(ref[i] - got[i]) <= tol)) {
                    fail(t + " y[" + i + "]: expected " + ref[i] + ", got " + got[i] + " (tolerance " + tol + ")");
                }
            }
        }
    }

    private static void assertRoundedOnce(float[] full, float[] half, ElementType t, String what) {
        for (int i = 0; i < full.length; i++) {
            short expected = t.encode(full[i]);
            short actual = t.encode(half[i]);  // half[i] is exactly representable, so this is its bits
            if (expected != actual) {
                fail(what + "[" + i + "] stored as " + t + ": expected " + t.decode(expected) + " (float32 "
                        + full[i] + " rounded), got " + half[i]);
            }
        }
    }

    @Test
    void bfloat16RoundsToNearestEvenAndKeepsSpecials() {
        assertEquals(1.0f, Bfloat16.toFloat(Bfloat16.fromFloat(1.0f)));
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even (1.0).
        assertEquals(1.0f, Bfloat16.toFloat(Bfloat16.fromFloat(1.0f + 0x1p-8f)));
        // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: ties go to even (1 + 2^-6).
        assertEquals(1.0f + 0x1p-6f, Bfloat16.toFloat(Bfloat16.fromFloat(1.0f + 3 * 0x1p-8f)));
        assertTrue(Float.isNaN(Bfloat16.toFloat(Bfloat16.fromFloat(Float.NaN))));
        assertEquals(Float.POSITIVE_INFINITY, Bfloat16.toFloat(Bfloat16.fromFloat(Float.MAX_VALUE)));
        assertEquals(Float.NEGATIVE_INFINITY, Bfloat16.toFloat(Bfloat16.fromFloat(Float.NEGATIVE_INFINITY)));
    }

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void mixedStorageIsRejectedBeforeDeviceWork(Backend b) {
        int[] shape = {4, 2, 3};
        try (BatchNorm bn = BatchNorm.builder(2).backend(b).build();
             Tensor x = Tensor.upload(b, TestData.gaussian(24, 1), Layout.CHANNELS_FIRST, ElementType.FLOAT16, shape);
             Tensor y = Tensor.zeros(b, Layout.CHANNELS_FIRST, ElementType.BFLOAT16, shape)) {
            long launches = b.kernelLaunches();
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> bn.forwardTraining(x, y));
            assertTrue(e.getMessage().contains("expected FLOAT16, got BFLOAT16"), e.getMessage());
            assertEquals(launches, b.kernelLaunches());
            assertEquals(0L, bn.numBatchesTracked());
        }
        assertThrows(IllegalArgumentException.class,
                () -> Tensor.zeros(b, Layout.CHANNELS_FIRST, ElementType.INT32, 2, 2));
    }
}
