package dev.clnorm.io;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * float16 conversions, exhaustively: every one of the 65536 half bit patterns decodes to the value
 * the IEEE 754 binary16 definition gives (computed independently in double) and encodes back to
 * the same bits; between every pair of adjacent finite halves the midpoint rounds to the even one
 * and the floats just below / above it round down / up (round to nearest, ties to even).
 */
class HalfTest {

    /** The binary16 value from its fields, by the definition: (-1)^s * 2^(e-15) * 1.m, or subnormal. */
    private static double definitionValue(int h) {
        int sign = (h >>> 15) & 1;
        int exp = (h >>> 10) & 0x1F;
        int mant = h & 0x3FF;
        double v = exp == 0 ? mant * Math.pow(2, -24) : (1 + mant / 1024.0) * Math.pow(2, exp - 15);
        return sign == 1 ? -v : v;
    }

    @Test
    void everyHalfDecodesToItsDefinedValueAndRoundTrips() {
        for (int h = 0; h < 65536; h++) {
            float f = Half.toFloat((short) h);
            int exp = (h >>> 10) & 0x1F;
            int mant = h & 0x3FF;
            if (exp == 0x1F) {
                if (mant == 0) {
                    assertEquals((h & 0x8000) != 0 ? Float.NEGATIVE_INFINITY : Float.POSITIVE_INFINITY, f, "half " + h);
                } else {
                    assertTrue(Float.isNaN(f), "half 0x" + Integer.toHexString(h) + " is a NaN");
                }
            } else {
                double expected = definitionValue(h);
                if (Double.compare(expected, f) != 0) {   // compare() also tells -0.0 from 0.0
                    fail("half 0x" + Integer.toHexString(h) + ": expected " + expected + ", decoded " + f);
                }
            }
            short back = Half.fromFloat(f);
            if ((back & 0xFFFF) != h) {
                fail("half 0x" + Integer.toHexString(h) + " -> " + f + " -> 0x" + Integer.toHexString(back & 0xFFFF));
            }
        }
    }

    @Test
    void roundsToNearestEvenBetweenEveryAdjacentPair() {
        for (int h = 0; h < 0x7C00; h++) {
            float lo = Half.toFloat((short) h);
            // Above the largest finite half (65504) the next step is where infinity begins: 65536.
            float hi = h == 0x7BFF ? 65536f : Half.toFloat((short) (h + 1));
            float mid = (lo + hi) / 2;       // exact: halves have 11 significant bits, floats 24
            assertEquals((double) lo + hi, 2.0 * mid, 0.0, "midpoint is exact");
            int even = (h & 1) == 0 ? h : h + 1;
            for (int sign : new int[]{0, 0x8000}) {
                float s = sign == 0 ? 1f : -1f;
                check(sign | h, s * lo);
                check(sign | even, s * mid);
                check(sign | h, s * Math.nextDown(mid));
                check(sign | (h + 1), s * Math.nextUp(mid));
            }
        }
    }

    private static void check(int expected, float f) {
        int got = Half.fromFloat(f) & 0xFFFF;
        if (got != expected) {
            fail(f + " (float bits 0x" + Integer.toHexString(Float.floatToRawIntBits(f)) + ") rounded to 0x"
                    + Integer.toHexString(got) + ", expected 0x" + Integer.toHexString(expected));
        }
    }

    @Test
    void knownEncodingsOverflowUnderflowAndNaN() {
        // Bit patterns from the binary16 definition (and what numpy.float16 stores).
        assertEquals(0x3C00, Half.fromFloat(1f) & 0xFFFF);
        assertEquals(0xC000, Half.fromFloat(-2f) & 0xFFFF);
        assertEquals(0x7BFF, Half.fromFloat(65504f) & 0xFFFF);
        assertEquals(0x0400, Half.fromFloat(0x1p-14f) & 0xFFFF, "smallest normal");
        assertEquals(0x0001, Half.fromFloat(0x1p-24f) & 0xFFFF, "smallest subnormal");
        assertEquals(0x2E66, Half.fromFloat(0.1f) & 0xFFFF);
        assertEquals(0x3555, Half.fromFloat(1f / 3) & 0xFFFF);
        assertEquals(0x8000, Half.fromFloat(-0f) & 0xFFFF);
        // Overflow: 65520 is the midpoint to "65536" and rounds to infinity (even); just below stays finite.
        assertEquals(0x7BFF, Half.fromFloat(Math.nextDown(65520f)) & 0xFFFF);
        assertEquals(0x7C00, Half.fromFloat(65520f) & 0xFFFF);
        assertEquals(0x7C00, Half.fromFloat(Float.MAX_VALUE) & 0xFFFF);
        assertEquals(0xFC00, Half.fromFloat(-1e10f) & 0xFFFF);
        assertEquals(0x7C00, Half.fromFloat(Float.POSITIVE_INFINITY) & 0xFFFF);
        // Underflow: 2^-25 is the midpoint between 0 and the smallest subnormal: ties to even (0).
        assertEquals(0x0000, Half.fromFloat(0x1p-25f) & 0xFFFF);
        assertEquals(0x0001, Half.fromFloat(Math.nextUp(0x1p-25f)) & 0xFFFF);
        assertEquals(0x0000, Half.fromFloat(Float.MIN_VALUE) & 0xFFFF);
        assertEquals(0x8000, Half.fromFloat(-Float.MIN_VALUE) & 0xFFFF);
        // NaN stays NaN, also when its payload sits only in bits that half drops.
        assertEquals(0x7C01, Half.fromFloat(Float.intBitsToFloat(0x7F800001)) & 0xFFFF);
        assertEquals(0x7E00, Half.fromFloat(Float.NaN) & 0xFFFF);
        assertEquals(0xFE00, Half.fromFloat(Float.intBitsToFloat(0xFFC00000)) & 0xFFFF);
    }
}
