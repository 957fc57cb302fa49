package dev.clnorm.backend;

/**
 * What a device buffer holds. Tensors are float32, float16 or bfloat16 (computed in float32 either
 * way, with float32 parameters and statistics), or float64 (computed in float64, with float64
 * parameters and statistics: a float64 layer); counters are int32.
 */
public enum ElementType {
    FLOAT32(4),
    INT32(4),
    /** IEEE 754 binary16. */
    FLOAT16(2),
    /** The upper 16 bits of a float32 (bfloat16). */
    BFLOAT16(2),
    /** IEEE 754 binary64; OpenCL devices need cl_khr_fp64. */
    FLOAT64(8);

    private final int bytes;

    ElementType(int bytes) {
        this.bytes = bytes;
    }

    public int bytes() {
        return bytes;
    }

    /** Whether tensors (x, y, dy, dx) may be stored in this type. */
    public boolean isTensorStorage() {
        return this != INT32;
    }

    /**
     * The type of the parameters and statistics that go with tensors of this type: FLOAT64 for
     * FLOAT64 tensors, FLOAT32 for every other tensor type.
     */
    public ElementType parameterType() {
        if (this == INT32) {
            throw new IllegalArgumentException("INT32 is not a tensor storage type");
        }
        return this == FLOAT64 ? FLOAT64 : FLOAT32;
    }

    /** The kernels' STORAGE option for a tensor type: 0 float32, 1 float16, 2 bfloat16, 3 float64. */
    public int storageCode() {
        return switch (this) {
            case FLOAT32 -> 0;
            case FLOAT16 -> 1;
            case BFLOAT16 -> 2;
            case FLOAT64 -> 3;
            case INT32 -> throw new IllegalArgumentException("INT32 is not a tensor storage type");
        };
    }

    /** Host float32 to this 16-bit type's bits (round to nearest even). */
    public short encode(float v) {
        return switch (this) {
            case FLOAT16 -> dev.clnorm.io.Half.fromFloat(v);
            case BFLOAT16 -> Bfloat16.fromFloat(v);
            default -> throw new IllegalArgumentException(this + " is not a 16-bit type");
        };
    }

    /** This 16-bit type's bits to float32 (exact). */
    public float decode(short bits) {
        return switch (this) {
            case FLOAT16 -> dev.clnorm.io.Half.toFloat(bits);
            case BFLOAT16 -> Bfloat16.toFloat(bits);
            default -> throw new IllegalArgumentException(this + " is not a 16-bit type");
        };
    }
}
