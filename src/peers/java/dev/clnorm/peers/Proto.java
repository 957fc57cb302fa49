package dev.clnorm.peers;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;

/**
 * The smallest protobuf writer that can spell an ONNX model: varint, fixed32 and length-delimited
 * fields (wire types 0, 5 and 2). Messages are built inside out: a nested message is written into
 * its own {@code Proto} and appended with {@link #message}.
 */
final class Proto {
    private final ByteArrayOutputStream out = new ByteArrayOutputStream();

    private void tag(int field, int wireType) {
        varint(((long) field << 3) | wireType);
    }

    private void varint(long v) {
        while ((v & ~0x7FL) != 0) {
            out.write((int) ((v & 0x7F) | 0x80));
            v >>>= 7;
        }
        out.write((int) v);
    }

    /** int32 / int64 / enum field (wire type 0). */
    Proto int64(int field, long value) {
        tag(field, 0);
        varint(value);
        return this;
    }

    /** float field (wire type 5, little-endian IEEE 754). */
    Proto float32(int field, float value) {
        tag(field, 5);
        int bits = Float.floatToRawIntBits(value);
        for (int i = 0; i < 4; i++) {
            out.write((bits >>> (8 * i)) & 0xFF);
        }
        return this;
    }

    Proto bytes(int field, byte[] value) {
        tag(field, 2);
        varint(value.length);
        out.writeBytes(value);
        return this;
    }

    Proto string(int field, String value) {
        return bytes(field, value.getBytes(StandardCharsets.UTF_8));
    }

    Proto message(int field, Proto value) {
        return bytes(field, value.toByteArray());
    }

    /** A packed repeated float field: one length-delimited run of little-endian floats. */
    Proto packedFloats(int field, float[] values) {
        byte[] b = new byte[values.length * 4];
        for (int i = 0; i < values.length; i++) {
            int bits = Float.floatToRawIntBits(values[i]);
            for (int k = 0; k < 4; k++) {
                b[4 * i + k] = (byte) (bits >>> (8 * k));
            }
        }
        return bytes(field, b);
    }

    byte[] toByteArray() {
        return out.toByteArray();
    }
}
