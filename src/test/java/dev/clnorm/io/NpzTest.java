package dev.clnorm.io;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;
import java.util.zip.ZipOutputStream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * .npz archives: stored and deflated round trips (order, names, dtypes, bits), the entry method
 * actually used, NumPy's own savez / savez_compressed output (zip64 entries included), a hand-made
 * archive mixing both methods, reproducible bytes, and clear errors for non-.npy content.
 */
class NpzTest {

    private static Map<String, NpyArray> sample() {
        Map<String, NpyArray> m = new LinkedHashMap<>();
        m.put("weight", NpyArray.ofFloat32(new float[]{1f, -0f, Float.NaN, 3e-40f}, 4));
        m.put("half", NpyArray.ofFloat16(new float[]{0.1f, 65504f}, 2, 1));
        m.put("dbl", NpyArray.ofFloat64(new double[]{Math.E}));
        m.put("num_batches_tracked", NpyArray.scalar(Long.MAX_VALUE));
        m.put("empty", NpyArray.ofFloat32(new float[0], 0));
        return m;
    }

    @Test
    void storedAndDeflatedRoundTripsAreExact(@TempDir Path dir) throws Exception {
        for (boolean compressed : new boolean[]{false, true}) {
            Path file = dir.resolve(compressed ? "c.npz" : "s.npz");
            Map<String, NpyArray> m = sample();
            Npz.write(file, m, compressed);
            Map<String, NpyArray> back = Npz.read(file);
            assertEquals(new ArrayList<>(m.keySet()), new ArrayList<>(back.keySet()), "names and order");
            for (String k : m.keySet()) {
                assertTrue(m.get(k).bitEquals(back.get(k)), k + " compressed=" + compressed);
            }
            try (ZipFile z = new ZipFile(file.toFile())) {
                List<String> names = new ArrayList<>();
                z.stream().forEach(e -> {
                    names.add(e.getName());
                    assertEquals(compressed ? ZipEntry.DEFLATED : ZipEntry.STORED, e.getMethod(), e.getName());
                });
                assertEquals(List.of("weight.npy", "half.npy", "dbl.npy", "num_batches_tracked.npy", "empty.npy"), names);
            }
            try (var files = Files.list(dir)) {
                assertTrue(files.noneMatch(p -> p.getFileName().toString().endsWith(".tmp")), "no temporary file left");
            }
        }
    }

    @Test
    void readsNumpySavezAndSavezCompressed() throws Exception {
        for (String name : new String[]{"savez.npz", "savez_compressed.npz"}) {
            Path file = Path.of(NpzTest.class.getResource(name).toURI());
            Map<String, NpyArray> m = Npz.read(file);
            assertEquals(List.of("a", "n"), new ArrayList<>(m.keySet()), name);
            assertArrayEquals(new float[]{0f, 1f, 2f}, m.get("a").toFloatArray(), name);
            assertEquals(0, m.get("n").rank());
            assertArrayEquals(new long[]{5}, m.get("n").toLongArray(), name);
        }
    }

    @Test
    void readsAHandMadeArchiveMixingStoredAndDeflatedEntries(@TempDir Path dir) throws Exception {
        byte[] x = Npy.toBytes(NpyArray.ofFloat32(new float[]{1.5f, 2.5f}, 2));
        byte[] y = Npy.toBytes(NpyArray.ofFloat64(new double[]{-4.0}, 1));
        Path file = dir.resolve("mixed.npz");
        try (OutputStream os = Files.newOutputStream(file); ZipOutputStream zip = new ZipOutputStream(os)) {
            ZipEntry stored = new ZipEntry("x.npy");
            CRC32 crc = new CRC32();
            crc.update(x);
            stored.setMethod(ZipEntry.STORED);
            stored.setSize(x.length);
            stored.setCompressedSize(x.length);
            stored.setCrc(crc.getValue());
            zip.putNextEntry(stored);
            zip.write(x);
            zip.closeEntry();
            ZipEntry deflated = new ZipEntry("y.npy");
            deflated.setMethod(ZipEntry.DEFLATED);
            zip.putNextEntry(deflated);
            zip.write(y);
            zip.closeEntry();
        }
        Map<String, NpyArray> m = Npz.read(file);
        assertArrayEquals(new float[]{1.5f, 2.5f}, m.get("x").toFloatArray());
        assertArrayEquals(new double[]{-4.0}, m.get("y").toDoubleArray());
    }

    @Test
    void savingTwiceGivesIdenticalBytes(@TempDir Path dir) throws Exception {
        Npz.write(dir.resolve("a.npz"), sample(), true);
        Npz.write(dir.resolve("b.npz"), sample(), true);
        assertArrayEquals(Files.readAllBytes(dir.resolve("a.npz")), Files.readAllBytes(dir.resolve("b.npz")));
    }

    @Test
    void rejectsWhatIsNotAnNpz(@TempDir Path dir) throws Exception {
        Path notZip = dir.resolve("not.npz");
        Files.write(notZip, Npy.toBytes(NpyArray.scalar(1)));
        assertTrue(assertThrows(NpyFormatException.class, () -> Npz.read(notZip)).getMessage()
                .contains("not a valid .npz (zip) file"));

        Path other = dir.resolve("other.npz");
        try (OutputStream os = Files.newOutputStream(other); ZipOutputStream zip = new ZipOutputStream(os)) {
            zip.putNextEntry(new ZipEntry("readme.txt"));
            zip.write("hello".getBytes());
            zip.closeEntry();
        }
        assertTrue(assertThrows(NpyFormatException.class, () -> Npz.read(other)).getMessage()
                .contains("readme.txt]: not a .npy entry"));

        Path badEntry = dir.resolve("bad.npz");
        try (OutputStream os = Files.newOutputStream(badEntry); ZipOutputStream zip = new ZipOutputStream(os)) {
            zip.putNextEntry(new ZipEntry("x.npy"));
            zip.write(IoTestFiles.resource("i4.npy"));
            zip.closeEntry();
        }
        String msg = assertThrows(NpyFormatException.class, () -> Npz.read(badEntry)).getMessage();
        assertTrue(msg.contains("bad.npz[x.npy]: unsupported dtype '<i4'"), msg);

        assertThrows(NoSuchFileException.class, () -> Npz.read(dir.resolve("missing.npz")));
    }
}
