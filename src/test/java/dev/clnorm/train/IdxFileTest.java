package dev.clnorm.train;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.zip.GZIPOutputStream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The IDX reader on generated files, good and bad, and the Fashion-MNIST loader's errors. */
class IdxFileTest {
    @TempDir
    Path dir;

    private static byte[] bytes(int n, int seed) {
        byte[] b = new byte[n];
        for (int i = 0; i < n; i++) {
            b[i] = (byte) (i * 31 + seed);
        }
        return b;
    }

    /** Header + data exactly as the format says, written by hand (not by IdxFile.write). */
    private static byte[] idx(int type, int[] dims, byte[] data) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(0);
        out.write(0);
        out.write(type);
        out.write(dims.length);
        for (int d : dims) {
            out.write(d >>> 24);
            out.write(d >>> 16);
            out.write(d >>> 8);
            out.write(d);
        }
        out.writeBytes(data);
        return out.toByteArray();
    }

    private static byte[] gzip(byte[] raw) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (GZIPOutputStream gz = new GZIPOutputStream(out)) {
            gz.write(raw);
        }
        return out.toByteArray();
    }

    private Path file(String name, byte[] content) throws IOException {
        Path p = dir.resolve(name);
        Files.write(p, content);
        return p;
    }

    @Test
    void readsRawAndGzipFiles() throws IOException {
        byte[] data = bytes(3 * 4 * 5, 7);
        byte[] raw = idx(0x08, new int[]{3, 4, 5}, data);
        for (Path p : new Path[]{file("plain-idx3-ubyte", raw), file("packed-idx3-ubyte.gz", gzip(raw)),
                file("gzip-without-suffix", gzip(raw))}) {
            IdxFile f = IdxFile.read(p);
            assertArrayEquals(new int[]{3, 4, 5}, f.dims(), p.toString());
            assertArrayEquals(data, f.data(), p.toString());
            assertEquals(60, f.count());
        }
        // Values >= 128 come back as the same bytes (read them with & 0xff).
        assertEquals(0xff & data[59], 0xff & IdxFile.read(dir.resolve("plain-idx3-ubyte")).data()[59]);
    }

    @Test
    void writerRoundTrips() throws IOException {
        byte[] data = bytes(10, 3);
        Path p = dir.resolve("labels.gz");
        IdxFile.write(p, new int[]{10}, data, true);
        assertArrayEquals(data, IdxFile.read(p).data());
        // Uncompressed, the writer's bytes are exactly the format's header and data.
        Path raw = dir.resolve("raw");
        IdxFile.write(raw, new int[]{2, 5}, data, false);
        assertArrayEquals(idx(0x08, new int[]{2, 5}, data), Files.readAllBytes(raw));
    }

    @Test
    void missingFileIsNoSuchFile() {
        assertThrows(NoSuchFileException.class, () -> IdxFile.read(dir.resolve("absent.gz")));
    }

    private String error(byte[] content) throws IOException {
        Path p = file("bad", content);
        IdxFile.IdxFormatException e = assertThrows(IdxFile.IdxFormatException.class, () -> IdxFile.read(p));
        assertTrue(e.getMessage().startsWith(p.toString()), "message names the file: " + e.getMessage());
        return e.getMessage();
    }

    @Test
    void badFilesSayWhatIsWrong() throws IOException {
        byte[] data = bytes(12, 1);
        assertTrue(error(new byte[0]).contains("4-byte magic"), "empty file");
        assertTrue(error("PK\u0003\u0004 not idx".getBytes()).contains("not an IDX file"), "bad magic");
        assertTrue(error(idx(0x0D, new int[]{3}, new byte[12])).contains("0x0d (float) is not supported"),
                "float element type");
        assertTrue(error(idx(0x08, new int[0], new byte[0])).contains("0 dimensions"), "rank 0");
        assertTrue(error(idx(0x08, new int[]{2, 10}, data)).contains("truncated"), "short data");
        assertTrue(error(idx(0x08, new int[]{2, 5}, data)).contains("2 bytes after"), "trailing bytes");
        assertTrue(error(idx(0x08, new int[]{-1}, data)).contains("negative"), "negative dimension");
        assertTrue(error(idx(0x08, new int[]{65536, 65536}, data)).contains("more than"), "absurd size");
        byte[] header = Arrays.copyOf(idx(0x08, new int[]{3, 4}, data), 7);
        assertTrue(error(header).contains("ends early"), "header cut short");
    }

    @Test
    void corruptGzipIsReported() throws IOException {
        byte[] packed = gzip(idx(0x08, new int[]{100}, bytes(100, 5)));
        byte[] cut = Arrays.copyOf(packed, packed.length / 2);
        assertTrue(error(cut).contains("gzip"), "truncated gzip stream");
        byte[] flipped = packed.clone();
        for (int i = 12; i < flipped.length - 8; i++) {
            flipped[i] ^= (byte) 0x5a;
        }
        String m = error(flipped);
        assertTrue(m.contains("gzip"), "corrupt deflate data: " + m);
    }

    private void writeSet(Path folder, String images, String labels, int n, int rows, int cols, int maxLabel)
            throws IOException {
        Files.createDirectories(folder);
        Files.write(folder.resolve(images + ".gz"), gzip(idx(0x08, new int[]{n, rows, cols}, bytes(n * rows * cols, 2))));
        byte[] lab = new byte[n];
        for (int i = 0; i < n; i++) {
            lab[i] = (byte) (i % (maxLabel + 1));
        }
        Files.write(folder.resolve(labels + ".gz"), gzip(idx(0x08, new int[]{n}, lab)));
    }

    @Test
    void fashionMnistLoadsGeneratedFiles() throws IOException {
        Path folder = dir.resolve("fm");
        writeSet(folder, FashionMnist.TRAIN_IMAGES, FashionMnist.TRAIN_LABELS, 6, 28, 28, 9);
        writeSet(folder, FashionMnist.TEST_IMAGES, FashionMnist.TEST_LABELS, 4, 28, 28, 9);
        FashionMnist.Split s = FashionMnist.load(folder);
        assertEquals(6, s.train().count());
        assertEquals(4, s.test().count());
        assertEquals(784, s.train().features());
        byte[] raw = bytes(6 * 784, 2);
        for (int i = 0; i < raw.length; i++) {
            assertEquals((raw[i] & 0xff) / 255.0f, s.train().images()[i], "pixel " + i + " scaled to [0, 1]");
        }
        assertArrayEquals(new int[]{0, 1, 2, 3, 4, 5}, s.train().labels());
    }

    @Test
    void fashionMnistErrorsTellHowToInstall() throws IOException {
        IllegalStateException noDir = assertThrows(IllegalStateException.class,
                () -> FashionMnist.load(dir.resolve("nowhere")));
        assertTrue(noDir.getMessage().contains("apt-get install dataset-fashion-mnist"), noDir.getMessage());
        assertTrue(noDir.getMessage().contains("--data"), noDir.getMessage());

        Path folder = dir.resolve("partial");
        writeSet(folder, FashionMnist.TRAIN_IMAGES, FashionMnist.TRAIN_LABELS, 6, 28, 28, 9);
        IllegalStateException missing = assertThrows(IllegalStateException.class, () -> FashionMnist.load(folder));
        assertTrue(missing.getMessage().contains(FashionMnist.TEST_IMAGES), missing.getMessage());
        assertTrue(missing.getMessage().contains("apt-get install dataset-fashion-mnist"), missing.getMessage());

        Path wrongShape = dir.resolve("shape");
        writeSet(wrongShape, FashionMnist.TRAIN_IMAGES, FashionMnist.TRAIN_LABELS, 6, 32, 32, 9);
        writeSet(wrongShape, FashionMnist.TEST_IMAGES, FashionMnist.TEST_LABELS, 4, 28, 28, 9);
        assertTrue(assertThrows(IdxFile.IdxFormatException.class, () -> FashionMnist.load(wrongShape)).getMessage()
                .contains("[n, 28, 28]"));

        Path badLabel = dir.resolve("label");
        writeSet(badLabel, FashionMnist.TRAIN_IMAGES, FashionMnist.TRAIN_LABELS, 12, 28, 28, 11);
        writeSet(badLabel, FashionMnist.TEST_IMAGES, FashionMnist.TEST_LABELS, 4, 28, 28, 9);
        assertTrue(assertThrows(IdxFile.IdxFormatException.class, () -> FashionMnist.load(badLabel)).getMessage()
                .contains("label 10"));
    }
}
