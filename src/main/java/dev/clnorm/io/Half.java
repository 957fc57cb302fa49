package dev.clnorm.io;

/**
 * IEEE 754 binary16 ("half", NumPy's {@code float16}) conversions. Java 17 has no
 * {@code Float.float16ToFloat} (that arrived in Java 20), so this is done with bit operations.
 *
 * <p>{@link #toFloat} is exact (every half value is a float value). {@link #fromFloat} rounds to
 * nearest, ties to even, as NumPy does; values beyond the largest half (65504) round to infinity
 * from 65520 on, values below half the smallest subnormal (2^-25) round to a signed zero, and a
 * NaN keeps its sign and the top 10 bits of its payload (a payload that would vanish becomes 1, so
 * it stays a NaN). Every one of the 65536 half bit patterns survives {@code fromFloat(toFloat(h))}.
 */
public final class Half {
    private Half() {
    }

    /** The float value of the half with the given bits (low 16 bits of {@code h}). */
    public static float toFloat(short h) {
        int bits = h & 0xFFFF;
        int sign = (bits & 0x8000) << 16;
        int exp = (bits >>> 10) & 0x1F;
        int mant = bits & 0x3FF;
        if (exp == 0x1F) {                  // infinity or NaN: widen the payload
            return Float.intBitsToFloat(sign | 0x7F800000 | (mant << 13));
        }
        if (exp == 0) {                     // zero or subnormal: mant * 2^-24, exact in float
            float v = mant * 0x1p-24f;
            return sign != 0 ? -v : v;
        }
        return Float.intBitsToFloat(sign | ((exp - 15 + 127) << 23) | (mant << 13));
    }

    /** The half nearest to {@code f} (ties to even), as its 16 bits. */
    public static short fromFloat(float f) {
        int bits = Float.floatToRawIntBits(f);
        int sign = (bits >>> 16) & 0x8000;
        int exp = (bits >>> 23) & 0xFF;
        int mant = bits & 0x7FFFFF;
        if (exp == 0xFF) {
            if (mant == 0) {
                return (short) (sign | 0x7C00);                  // infinity
            }
            int payload = mant >>> 13;
            return (short) (sign | 0x7C00 | (payload == 0 ? 1 : payload));  // NaN stays NaN
        }
        int e = exp - 127 + 15;             // the half's biased exponent
        if (e >= 0x1F) {
            return (short) (sign | 0x7C00);                      // overflow: infinity
        }
        if (e <= 0) {
            // Half subnormal (or zero): value = m * 2^-24 with m = mant24 * 2^(e - 14).
            if (e < -10) {
                return (short) sign;        // below 2^-25: rounds to zero
            }
            int mant24 = mant | 0x800000;
            int shift = 14 - e;             // 14..24 bits are dropped
            int m = mant24 >>> shift;
            int rest = mant24 & ((1 << shift) - 1);
            int halfway = 1 << (shift - 1);
            if (rest > halfway || (rest == halfway && (m & 1) != 0)) {
                m++;                        // may carry into the smallest normal: still correct
            }
            return (short) (sign | m);
        }
        int h = (e << 10) | (mant >>> 13);
        int rest = mant & 0x1FFF;
        if (rest > 0x1000 || (rest == 0x1000 && (h & 1) != 0)) {
            h++;                            // a carry into the exponent is right; 0x7BFF + 1 is infinity
        }
        return (short) (sign | h);
    }

    /** {@code f} rounded to the nearest half value (ties to even), as a float. */
    public static float round(float f) {
        return toFloat(fromFloat(f));
    }
}
