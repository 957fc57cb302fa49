package dev.clnorm.io;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

/** Hand-built .npy images (per the NPY format spec) and the NumPy-made fixtures in test resources. */
final class IoTestFiles {
    private IoTestFiles() {
    }

    /**
     * A .npy image built by hand: magic, version major.0, the header length (2 bytes little-endian
     * for version 1, 4 for 2 and 3), {@code dict} padded with spaces and a newline so that the data
     * starts at a multiple of {@code align}, then {@code data}.
     */
    static byte[] npy(int major, String dict, int align, byte[] data) {
        int prefix = major == 1 ? 10 : 12;
        int len = dict.getBytes(StandardCharsets.UTF_8).length + 1;
        int pad = (align - (prefix + len) % align) % align;
        String header = dict + " ".repeat(pad) + "\n";
        byte[] hb = header.getBytes(major == 3 ? StandardCharsets.UTF_8 : StandardCharsets.ISO_8859_1);
        ByteBuffer bb = ByteBuffer.allocate(prefix + hb.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        bb.put(new byte[]{(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', (byte) major, 0});
        if (major == 1) {
            bb.putShort((short) hb.length);
        } else {
            bb.putInt(hb.length);
        }
        bb.put(hb).put(data);
        return bb.array();
    }

    static byte[] floatsLE(float... v) {
        ByteBuffer bb = ByteBuffer.allocate(4 * v.length).order(ByteOrder.LITTLE_ENDIAN);
        for (float f : v) {
            bb.putFloat(f);
        }
        return bb.array();
    }

    static byte[] resource(String name) {
        try (InputStream in = IoTestFiles.class.getResourceAsStream(name)) {
            if (in == null) {
                throw new IllegalStateException("missing test resource " + name);
            }
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            in.transferTo(out);
            return out.toByteArray();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
