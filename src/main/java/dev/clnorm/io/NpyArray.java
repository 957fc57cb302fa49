package dev.clnorm.io;

import java.util.Arrays;
import java.util.Locale;

/**
 * An n-dimensional array as stored in a NumPy {@code .npy} file: a dtype, a shape (C order) and
 * the values. Floating dtypes keep their values in a {@code float[]} (float16, float32) or
 * {@code double[]} (float64); int64 (used for counters such as PyTorch's
 * {@code num_batches_tracked}) in a {@code long[]}. Instances are immutable: factories copy
 * their input and accessors return copies.
 */
public final class NpyArray {

    /** The element types clnorm reads and writes. Files are written little-endian. */
    public enum DType {
        FLOAT16("f2", 2, "float16"),
        FLOAT32("f4", 4, "float32"),
        FLOAT64("f8", 8, "float64"),
        INT64("i8", 8, "int64");

        private final String code;
        private final int itemSize;
        private final String numpyName;

        DType(String code, int itemSize, String numpyName) {
            this.code = code;
            this.itemSize = itemSize;
            this.numpyName = numpyName;
        }

        /** NumPy's type code without byte order, e.g. {@code f4}. */
        public String code() {
            return code;
        }

        /** The little-endian descr written to headers, e.g. {@code <f4}. */
        public String descr() {
            return "<" + code;
        }

        public int itemSize() {
            return itemSize;
        }

        /** NumPy's name, e.g. {@code float32}. */
        public String numpyName() {
            return numpyName;
        }

        public boolean isFloating() {
            return this != INT64;
        }

        /** The dtype for a code without byte order ({@code f4}), or null. */
        static DType ofCode(String code) {
            for (DType d : values()) {
                if (d.code.equals(code)) {
                    return d;
                }
            }
            return null;
        }

        /** The dtype for a NumPy name ({@code float32}), case-insensitive, or null. */
        public static DType ofName(String name) {
            for (DType d : values()) {
                if (d.numpyName.equalsIgnoreCase(name)) {
                    return d;
                }
            }
            return null;
        }

        @Override
        public String toString() {
            return numpyName;
        }
    }

    /** The largest element count a Java array can hold on common JVMs. */
    public static final int MAX_ELEMENTS = Integer.MAX_VALUE - 8;

    private final DType dtype;
    private final int[] shape;
    private final float[] floats;   // FLOAT16 (already rounded to half values) and FLOAT32
    private final double[] doubles; // FLOAT64
    private final long[] longs;     // INT64

    private NpyArray(DType dtype, int[] shape, float[] floats, double[] doubles, long[] longs) {
        this.dtype = dtype;
        this.shape = shape;
        this.floats = floats;
        this.doubles = doubles;
        this.longs = longs;
    }

    /** A float32 array; {@code data} is copied. */
    public static NpyArray ofFloat32(float[] data, int... shape) {
        int[] s = checkShape(shape, data.length);
        return new NpyArray(DType.FLOAT32, s, data.clone(), null, null);
    }

    /** A float16 array; each value is rounded to the nearest half value (ties to even). */
    public static NpyArray ofFloat16(float[] data, int... shape) {
        int[] s = checkShape(shape, data.length);
        float[] v = new float[data.length];
        for (int i = 0; i < v.length; i++) {
            v[i] = Half.round(data[i]);
        }
        return new NpyArray(DType.FLOAT16, s, v, null, null);
    }

    /** A float64 array; {@code data} is copied. */
    public static NpyArray ofFloat64(double[] data, int... shape) {
        int[] s = checkShape(shape, data.length);
        return new NpyArray(DType.FLOAT64, s, null, data.clone(), null);
    }

    /** An int64 array; {@code data} is copied. */
    public static NpyArray ofInt64(long[] data, int... shape) {
        int[] s = checkShape(shape, data.length);
        return new NpyArray(DType.INT64, s, null, null, data.clone());
    }

    /** A 0-d int64 array (shape {@code ()}), like a PyTorch integer scalar tensor. */
    public static NpyArray scalar(long value) {
        return new NpyArray(DType.INT64, new int[0], null, null, new long[]{value});
    }

    /** {@code float[]} data converted to {@code dtype} (float64 widens exactly, float16 rounds). */
    public static NpyArray of(DType dtype, float[] data, int... shape) {
        switch (dtype) {
            case FLOAT16:
                return ofFloat16(data, shape);
            case FLOAT32:
                return ofFloat32(data, shape);
            case FLOAT64: {
                double[] d = new double[data.length];
                for (int i = 0; i < d.length; i++) {
                    d[i] = data[i];
                }
                return new NpyArray(DType.FLOAT64, checkShape(shape, data.length), null, d, null);
            }
            default:
                throw new IllegalArgumentException("cannot store float values as " + dtype);
        }
    }

    /** Wraps arrays the reader filled; no copies. */
    static NpyArray wrap(DType dtype, int[] shape, float[] floats, double[] doubles, long[] longs) {
        return new NpyArray(dtype, shape, floats, doubles, longs);
    }

    private static int[] checkShape(int[] shape, int length) {
        if (shape == null) {
            throw new NullPointerException("shape is null");
        }
        long n = elementCount(shape);
        if (n != length) {
            throw new IllegalArgumentException("shape " + shapeString(shape) + " holds " + n + " values, got "
                    + length);
        }
        return shape.clone();
    }

    /** Product of the dimensions; every dimension must be >= 0 and the product at most MAX_ELEMENTS. */
    static long elementCount(int[] shape) {
        for (int d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException("negative dimension in shape " + shapeString(shape));
            }
            if (d == 0) {
                return 0;
            }
        }
        long n = 1;
        for (int d : shape) {
            n *= d;
            if (n > MAX_ELEMENTS) {
                throw new IllegalArgumentException("shape " + shapeString(shape) + " has more than " + MAX_ELEMENTS
                        + " elements, too many for a Java array");
            }
        }
        return n;
    }

    public DType dtype() {
        return dtype;
    }

    public int[] shape() {
        return shape.clone();
    }

    public int rank() {
        return shape.length;
    }

    /** Number of elements (1 for a 0-d array). */
    public int size() {
        if (floats != null) {
            return floats.length;
        }
        return doubles != null ? doubles.length : longs.length;
    }

    /** The values as float32 (a new array). float64 values are rounded to the nearest float. */
    public float[] toFloatArray() {
        switch (dtype) {
            case FLOAT16:
            case FLOAT32:
                return floats.clone();
            case FLOAT64: {
                float[] f = new float[doubles.length];
                for (int i = 0; i < f.length; i++) {
                    f[i] = (float) doubles[i];
                }
                return f;
            }
            default:
                throw new IllegalStateException("an " + dtype + " array has no float values; expected a floating dtype");
        }
    }

    /** The values as float64 (a new array); exact for every floating dtype. */
    public double[] toDoubleArray() {
        switch (dtype) {
            case FLOAT16:
            case FLOAT32: {
                double[] d = new double[floats.length];
                for (int i = 0; i < d.length; i++) {
                    d[i] = floats[i];
                }
                return d;
            }
            case FLOAT64:
                return doubles.clone();
            default:
                throw new IllegalStateException("an " + dtype + " array has no float values; expected a floating dtype");
        }
    }

    /** The values of an int64 array (a new array). */
    public long[] toLongArray() {
        if (dtype != DType.INT64) {
            throw new IllegalStateException("a " + dtype + " array is not an int64 array");
        }
        return longs.clone();
    }

    // Direct views for the writer (package-private, not copied).
    float[] floatData() {
        return floats;
    }

    double[] doubleData() {
        return doubles;
    }

    long[] longData() {
        return longs;
    }

    /** Python's tuple notation, as in NumPy headers: {@code ()}, {@code (3,)}, {@code (2, 3)}. */
    public static String shapeString(int[] shape) {
        if (shape.length == 1) {
            return "(" + shape[0] + ",)";
        }
        StringBuilder sb = new StringBuilder("(");
        for (int i = 0; i < shape.length; i++) {
            sb.append(i == 0 ? "" : ", ").append(shape[i]);
        }
        return sb.append(')').toString();
    }

    /** True when both arrays have the same dtype, shape and bit-identical values (NaN payloads included). */
    public boolean bitEquals(NpyArray other) {
        if (other == null || dtype != other.dtype || !Arrays.equals(shape, other.shape)) {
            return false;
        }
        switch (dtype) {
            case FLOAT16:
            case FLOAT32:
                for (int i = 0; i < floats.length; i++) {
                    if (Float.floatToRawIntBits(floats[i]) != Float.floatToRawIntBits(other.floats[i])) {
                        return false;
                    }
                }
                return true;
            case FLOAT64:
                for (int i = 0; i < doubles.length; i++) {
                    if (Double.doubleToRawLongBits(doubles[i]) != Double.doubleToRawLongBits(other.doubles[i])) {
                        return false;
                    }
                }
                return true;
            default:
                return Arrays.equals(longs, other.longs);
        }
    }

    @Override
    public String toString() {
        return String.format(Locale.ROOT, "NpyArray[%s %s]", dtype, shapeString(shape));
    }
}
