package dev.clnorm.backend;

/** bfloat16: the upper half of a float32's bits. The same conversions as the OpenCL kernels. */
public final class Bfloat16 {
    private Bfloat16() {
    }

    public static float toFloat(short bits) {
        return Float.intBitsToFloat((bits & 0xFFFF) << 16);
    }

    /** Round to nearest even; NaN stays a (quiet) NaN; overflow rounds to infinity as IEEE does. */
    public static short fromFloat(float v) {
        int u = Float.floatToRawIntBits(v);
        if (Float.isNaN(v)) {
            return (short) ((u >>> 16) | 0x40);
        }
        return (short) ((u + 0x7FFF + ((u >>> 16) & 1)) >>> 16);
    }
}
