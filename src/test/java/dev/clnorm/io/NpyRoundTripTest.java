package dev.clnorm.io;

import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Write then read, through a file and through memory, for every dtype and every rank 0 to 5 (and an
 * empty array per dtype): dtype, shape and every value's bits come back (NaN payloads, -0.0,
 * infinities and subnormals included), and the file is exactly header + size * itemsize bytes.
 */
class NpyRoundTripTest {

    static Stream<Arguments> cases() {
        List<Arguments> list = new ArrayList<>();
        for (NpyArray.DType t : NpyArray.DType.values()) {
            for (int rank = 0; rank <= 5; rank++) {
                int[] shape = new int[rank];
                Random r = new Random(rank * 31L + t.ordinal());
                for (int d = 0; d < rank; d++) {
                    shape[d] = 1 + r.nextInt(4);
                }
                list.add(Arguments.of(t, shape));
            }
            list.add(Arguments.of(t, new int[]{2, 0, 3}));
        }
        return list.stream();
    }

    private static NpyArray sample(NpyArray.DType t, int[] shape) {
        int n = 1;
        for (int d : shape) {
            n *= d;
        }
        Random r = new Random(n * 7L + t.ordinal());
        float[] specialsF = {-0f, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.intBitsToFloat(0x7FC00001),
            Float.MIN_VALUE, 0x1p-24f, 65504f};
        double[] specialsD = {-0.0, Double.POSITIVE_INFINITY, Double.longBitsToDouble(0x7FF0000000000123L),
            Double.MIN_VALUE, Double.MAX_VALUE};
        switch (t) {
            case FLOAT64: {
                double[] v = new double[n];
                for (int i = 0; i < n; i++) {
                    v[i] = i < specialsD.length ? specialsD[i] : r.nextGaussian() * 1e3;
                }
                return NpyArray.ofFloat64(v, shape);
            }
            case INT64: {
                long[] v = new long[n];
                for (int i = 0; i < n; i++) {
                    v[i] = i == 0 ? Long.MIN_VALUE : i == 1 ? Long.MAX_VALUE : r.nextLong();
                }
                return NpyArray.ofInt64(v, shape);
            }
            default: {
                float[] v = new float[n];
                for (int i = 0; i < n; i++) {
                    v[i] = i < specialsF.length ? specialsF[i] : (float) (r.nextGaussian() * 100);
                }
                return NpyArray.of(t, v, shape);
            }
        }
    }

    @ParameterizedTest(name = "{0} shape {1}")
    @MethodSource("cases")
    void roundTripIsBitExact(NpyArray.DType t, int[] shape, @TempDir Path dir) throws Exception {
        NpyArray a = sample(t, shape);
        Path file = dir.resolve("a.npy");
        Npy.write(file, a);
        byte[] header = Npy.header(t, shape);
        assertEquals(header.length + (long) a.size() * t.itemSize(), Files.size(file));
        NpyArray back = Npy.read(file);
        assertEquals(t, back.dtype());
        assertArrayEquals(shape, back.shape());
        assertTrue(a.bitEquals(back), "values differ after a file round trip");
        assertTrue(a.bitEquals(Npy.fromBytes(Npy.toBytes(a), "mem.npy")), "values differ after a memory round trip");
        assertArrayEquals(Files.readAllBytes(file), Npy.toBytes(back), "re-writing what was read gives the same bytes");
    }
}
