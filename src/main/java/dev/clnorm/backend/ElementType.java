package dev.clnorm.backend;

/**
 * What a device buffer holds. Tensors are float32, float16 or bfloat16 (computed in float32 either
 * way); parameters and statistics are float32; counters are int32.
 */
public enum ElementType {
    FLOAT32(4),
    INT32(4),
    /** IEEE 754 binary16. */
    FLOAT16(2),
    /** The upper 16 bits of a float32 (bfloat16). */
    BFLOAT16(2);

    private final int bytes;

    ElementType(int bytes) {
        this.bytes = bytes;
    }

    public int bytes() {
        return bytes;
    }

    /** Whether tensors (x, y, dy, dx) may be stored in this type. */
    public boolean isTensorStorage() {
        return this == FLOAT32 || this == FLOAT16 || this == BFLOAT16;
    }

    /** The kernels' STORAGE option for a tensor type: 0 float32, 1 float16, 2 bfloat16. */
    public int storageCode() {
        return switch (this) {
            case FLOAT32 -> 0;
            case FLOAT16 -> 1;
            case BFLOAT16 -> 2;
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
