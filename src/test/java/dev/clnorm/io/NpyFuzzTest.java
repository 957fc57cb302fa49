package dev.clnorm.io;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Truncated and garbled files. Every truncation of a valid .npy / .npz must fail with an
 * IOException that has a message (never succeed: the reader checks sizes, and never throw anything
 * else); random byte edits must either read (the edit hit the values or the padding) or fail with an
 * IOException. Seeded, so a failure reproduces; the failing input is printed in hex.
 */
class NpyFuzzTest {

    private static List<byte[]> validImages() {
        List<byte[]> images = new ArrayList<>();
        images.add(Npy.toBytes(NpyArray.ofFloat32(new float[]{1, 2, 3, 4, 5, 6}, 2, 3)));
        images.add(Npy.toBytes(NpyArray.ofFloat16(new float[]{0.5f, -1f, 65504f}, 3)));
        images.add(Npy.toBytes(NpyArray.ofFloat64(new double[]{Math.PI}))); // rank 0
        images.add(Npy.toBytes(NpyArray.scalar(42)));
        images.add(Npy.toBytes(NpyArray.ofFloat32(new float[0], 0, 4)));
        images.add(IoTestFiles.npy(2, "{'descr': '>f8', 'fortran_order': False, 'shape': (2,), }", 16, new byte[16]));
        images.add(IoTestFiles.resource("f32_2x3.npy"));
        return images;
    }

    @Test
    void everyTruncationOfANpyFileIsAnIOException() {
        int checked = 0;
        for (byte[] image : validImages()) {
            for (int len = 0; len < image.length; len++) {
                byte[] cut = Arrays.copyOf(image, len);
                try {
                    NpyArray a = Npy.fromBytes(cut, "cut.npy");
                    fail("a truncation to " + len + " of " + image.length + " bytes was read as " + a + ": " + hex(cut));
                } catch (IOException e) {
                    assertNotNull(e.getMessage());
                    assertTrue(e.getMessage().startsWith("cut.npy: "), e.getMessage());
                } catch (RuntimeException | Error e) {
                    throw new AssertionError("truncation to " + len + " bytes threw " + e + ": " + hex(cut), e);
                }
                checked++;
            }
        }
        assertTrue(checked > 700, "checked " + checked + " truncations");
    }

    @Test
    void garbledNpyFilesReadOrFailWithAnIOException() {
        SplittableRandom r = new SplittableRandom(20240611);
        List<byte[]> images = validImages();
        int failures = 0;
        for (int round = 0; round < 20_000; round++) {
            byte[] b = images.get(r.nextInt(images.size())).clone();
            b = mutate(b, r);
            try {
                Npy.fromBytes(b, "garbled.npy");
            } catch (IOException e) {
                assertNotNull(e.getMessage());
                failures++;
            } catch (RuntimeException | Error e) {
                throw new AssertionError("garbled input threw " + e + ": " + hex(b), e);
            }
        }
        assertTrue(failures > 1000, "the mutations should break most files, broke " + failures);
    }

    /** One to four random edits: set a byte, flip a bit, delete or insert a byte, or write a header-ish token. */
    private static byte[] mutate(byte[] b, SplittableRandom r) {
        int edits = 1 + r.nextInt(4);
        String[] tokens = {"(", ")", "{", "}", "'", ",", "True", "-1", "99999999999", "[", "'<i4'", "\\", "L", "::"};
        for (int k = 0; k < edits && b.length > 0; k++) {
            // Aim most edits at the preamble and header, where the parser lives.
            int at = r.nextInt(4) == 0 ? r.nextInt(b.length) : r.nextInt(Math.min(b.length, 128));
            switch (r.nextInt(5)) {
                case 0:
                    b[at] = (byte) r.nextInt(256);
                    break;
                case 1:
                    b[at] ^= (byte) (1 << r.nextInt(8));
                    break;
                case 2: {
                    byte[] c = new byte[b.length - 1];
                    System.arraycopy(b, 0, c, 0, at);
                    System.arraycopy(b, at + 1, c, at, b.length - at - 1);
                    b = c;
                    break;
                }
                case 3: {
                    byte[] c = new byte[b.length + 1];
                    System.arraycopy(b, 0, c, 0, at);
                    c[at] = (byte) r.nextInt(256);
                    System.arraycopy(b, at, c, at + 1, b.length - at);
                    b = c;
                    break;
                }
                default: {
                    byte[] t = tokens[r.nextInt(tokens.length)].getBytes();
                    for (int i = 0; i < t.length && at + i < b.length; i++) {
                        b[at + i] = t[i];
                    }
                }
            }
        }
        return b;
    }

    private static byte[] npzImage(boolean compressed) throws IOException {
        Map<String, NpyArray> m = new LinkedHashMap<>();
        m.put("weight", NpyArray.ofFloat32(new float[]{1, 2, 3}, 3));
        m.put("num_batches_tracked", NpyArray.scalar(3));
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        Npz.write(out, m, compressed);
        return out.toByteArray();
    }

    @Test
    void everyTruncationOfAnNpzFileIsAnIOException(@TempDir Path dir) throws Exception {
        // NumPy's own archives: one stored (with zip64 extra fields), one deflated. (Opening a zip costs a
        // few ms, so the archives written by Npz itself are left to the garbling test.)
        List<byte[]> images = List.of(IoTestFiles.resource("savez.npz"), IoTestFiles.resource("savez_compressed.npz"));
        Path file = dir.resolve("cut.npz");
        for (byte[] image : images) {
            for (int len = 0; len < image.length; len++) {
                byte[] cut = Arrays.copyOf(image, len);
                Files.write(file, cut);
                try {
                    Map<String, NpyArray> m = Npz.read(file);
                    fail("a truncation to " + len + " of " + image.length + " bytes was read: " + m.keySet());
                } catch (IOException e) {
                    assertNotNull(e.getMessage());
                } catch (RuntimeException | Error e) {
                    throw new AssertionError("truncation to " + len + " bytes threw " + e + ": " + hex(cut), e);
                }
            }
        }
    }

    @Test
    void garbledNpzFilesReadOrFailWithAnIOException(@TempDir Path dir) throws Exception {
        SplittableRandom r = new SplittableRandom(7);
        List<byte[]> images = List.of(npzImage(false), npzImage(true), IoTestFiles.resource("savez_compressed.npz"));
        Path file = dir.resolve("garbled.npz");
        for (int round = 0; round < 600; round++) {
            byte[] b = images.get(r.nextInt(images.size())).clone();
            for (int k = 1 + r.nextInt(3); k > 0; k--) {
                b[r.nextInt(b.length)] = (byte) r.nextInt(256);
            }
            Files.write(file, b);
            try {
                Npz.read(file);
            } catch (IOException e) {
                if (e.getMessage() == null) {
                    throw new AssertionError("an IOException without a message: " + hex(b), e);
                }
            } catch (RuntimeException | Error e) {
                throw new AssertionError("garbled .npz threw " + e + ": " + hex(b), e);
            }
        }
    }

    private static String hex(byte[] b) {
        return HexFormat.of().formatHex(b);
    }
}
