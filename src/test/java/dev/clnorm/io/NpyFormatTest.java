package dev.clnorm.io;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

import static dev.clnorm.io.IoTestFiles.floatsLE;
import static dev.clnorm.io.IoTestFiles.npy;
import static dev.clnorm.io.IoTestFiles.resource;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The NPY format itself: files built by hand from the format description (versions 1.0, 2.0, 3.0,
 * the header variants Python's literal syntax allows), files NumPy 2.4 wrote (test resources made by
 * scripts/numpy-crosscheck.py), the writer's header text and 64-byte alignment, and the clear
 * rejection of what is not supported.
 */
class NpyFormatTest {
    private static final float[] SIX = {-1f, 0.5f, 2f, 1e-3f, -7.25f, 3e8f};

    @Test
    void readsAHandBuiltVersion1FileWithOldSixteenByteAlignment() throws Exception {
        byte[] file = npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 16, floatsLE(SIX));
        assertEquals(0, (file.length - 24) % 16);
        NpyArray a = Npy.fromBytes(file, "hand.npy");
        assertEquals(NpyArray.DType.FLOAT32, a.dtype());
        assertArrayEquals(new int[]{2, 3}, a.shape());
        assertArrayEquals(SIX, a.toFloatArray());
    }

    @Test
    void acceptsTheHeaderVariantsPythonLiteralsAllow() throws Exception {
        String[] dicts = {
            "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2, 3)}",       // double quotes, no trailing comma
            "{'shape': (2,3), 'fortran_order': False, 'descr': '<f4'}",               // other key order, no spaces
            "{ 'descr' : '<f4' ,\n 'fortran_order' : False , 'shape' : ( 2 , 3 , ) , }", // spaces, newline, trailing commas
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3L), }",           // Python 2 longs
        };
        for (String d : dicts) {
            NpyArray a = Npy.fromBytes(npy(1, d, 64, floatsLE(SIX)), "variant.npy");
            assertArrayEquals(new int[]{2, 3}, a.shape(), d);
            assertArrayEquals(SIX, a.toFloatArray(), d);
        }
        String dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }";
        assertArrayEquals(SIX, Npy.fromBytes(npy(2, dict, 64, floatsLE(SIX)), "v2.npy").toFloatArray(), "version 2.0");
        assertArrayEquals(SIX, Npy.fromBytes(npy(3, dict, 64, floatsLE(SIX)), "v3.npy").toFloatArray(), "version 3.0");
    }

    @Test
    void readsBigEndianAndRejectsTheUnsupportedWithAClearMessage() throws Exception {
        ByteBuffer be = ByteBuffer.allocate(24).order(ByteOrder.BIG_ENDIAN);
        for (float f : SIX) {
            be.putFloat(f);
        }
        NpyArray a = Npy.fromBytes(npy(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (6,), }", 64, be.array()),
                "be.npy");
        assertArrayEquals(SIX, a.toFloatArray(), "big-endian float32 is read");

        String[][] rejected = {
            {"'<i4'", "int32"}, {"'|b1'", "bool"}, {"'<c8'", "complex64"}, {"'<U3'", "unicode"}, {"'|O'", "object"},
            {"'<u8'", "uint64"}, {"'<f16'", "longdouble"}, {"'=f4'", "native"}, {"'f4'", "'f4'"},
        };
        for (String[] r : rejected) {
            byte[] f = npy(1, "{'descr': " + r[0] + ", 'fortran_order': False, 'shape': (2,), }", 64, new byte[16]);
            NpyFormatException e = assertThrows(NpyFormatException.class, () -> Npy.fromBytes(f, "t.npy"), r[0]);
            assertTrue(e.getMessage().startsWith("t.npy: unsupported dtype " + r[0]), e.getMessage());
            assertTrue(e.getMessage().contains(r[1]), e.getMessage());
        }
        byte[] structured = npy(1, "{'descr': [('a', '<f4'), ('b', '<i4')], 'fortran_order': False, 'shape': (1,), }",
                64, new byte[8]);
        assertTrue(assertThrows(NpyFormatException.class, () -> Npy.fromBytes(structured, "s.npy")).getMessage()
                .contains("structured dtypes"));
        byte[] fortran = npy(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 64, floatsLE(SIX));
        assertTrue(assertThrows(NpyFormatException.class, () -> Npy.fromBytes(fortran, "f.npy")).getMessage()
                .contains("Fortran"));
    }

    @Test
    void rejectsMalformedHeaders() {
        String[][] cases = {
            {"{'descr': '<f4', 'shape': (6,), }", "exactly the keys"},
            {"{'descr': '<f4', 'fortran_order': False, 'shape': (6,), 'extra': 1, }", "exactly the keys"},
            {"{'descr': '<f4', 'fortran_order': False, 'shape': [6], }", "tuple"},
            {"{'descr': '<f4', 'fortran_order': False, 'shape': (6), }", "1-tuple"},
            {"{'descr': '<f4', 'fortran_order': False, 'shape': (-6,), }", "invalid dimension"},
            {"{'descr': '<f4', 'fortran_order': 0, 'shape': (6,), }", "True or False"},
            {"{'descr': '<f4', 'fortran_order': False, 'shape': (6,), 'shape': (6,)}", "duplicate key"},
            {"{'descr': '<f4', 'fortran_order': False, 'shape': (6,) ", "garbled"},
            {"{'descr': '<f4', 'fortran_order': False, 'shape': (6,), } junk", "garbled"},
            {"['descr', '<f4']", "not a dict"},
            {"{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000), }", "too many for a Java array"},
        };
        for (String[] c : cases) {
            byte[] f = npy(1, c[0], 64, floatsLE(SIX));
            NpyFormatException e = assertThrows(NpyFormatException.class, () -> Npy.fromBytes(f, "h.npy"), c[0]);
            assertTrue(e.getMessage().startsWith("h.npy: ") && e.getMessage().contains(c[1]),
                    c[0] + " -> " + e.getMessage());
        }
    }

    @Test
    void rejectsBadPreambleVersionLengthAndExtraData() {
        byte[] good = npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", 64, floatsLE(SIX));
        byte[] badMagic = good.clone();
        badMagic[1] = 'X';
        assertTrue(message(badMagic).contains("magic"));
        byte[] v4 = good.clone();
        v4[6] = 4;
        assertTrue(message(v4).contains("version 4.0"));
        byte[] extra = Arrays.copyOf(good, good.length + 1);
        assertTrue(message(extra).contains("1 unexpected bytes after the data"));
        byte[] hugeHeader = npy(2, "{}", 64, new byte[0]);
        ByteBuffer.wrap(hugeHeader).order(ByteOrder.LITTLE_ENDIAN).putInt(8, 0x7FFFFFF0);
        assertTrue(message(hugeHeader).contains("implausible"));
        assertTrue(message(new byte[0]).contains("empty"));
    }

    private static String message(byte[] file) {
        return assertThrows(NpyFormatException.class, () -> Npy.fromBytes(file, "p.npy")).getMessage();
    }

    @Test
    void writerHeaderIsNumpysTextAlignedTo64Bytes() {
        // Spelled out from the format: dict repr, 21 - len(str(shape[0])) spaces of room for axis 0 to grow
        // (NumPy >= 1.24), padding spaces, newline; magic + version + length + header = 128 here.
        byte[] h = Npy.header(NpyArray.DType.FLOAT32, new int[]{2, 3});
        String dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        int growth = 21 - "2".length();
        int pad = 64 - (10 + dict.length() + growth + 1) % 64;
        String expected = dict + " ".repeat(growth) + " ".repeat(pad) + "\n";
        assertEquals(128, h.length);
        assertArrayEquals(new byte[]{(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 118, 0}, Arrays.copyOf(h, 10));
        assertEquals(expected, new String(h, 10, h.length - 10, StandardCharsets.ISO_8859_1));

        String[] descrs = {"<f2", "<f4", "<f8", "<i8"};
        int[][] shapes = {{}, {7}, {2, 3}, {1, 2, 3}, {12345, 1, 2, 3}, {0, 1, 2, 3, 4}, {2147483647}};
        for (NpyArray.DType t : NpyArray.DType.values()) {
            for (int[] s : shapes) {
                byte[] hh = Npy.header(t, s);
                assertEquals(0, hh.length % Npy.ALIGN, "aligned " + t + " " + Arrays.toString(s));
                int len = (hh[8] & 0xFF) | (hh[9] & 0xFF) << 8;
                assertEquals(hh.length - 10, len);
                String text = new String(hh, 10, len, StandardCharsets.ISO_8859_1);
                String repr = s.length == 1 ? "(" + s[0] + ",)" : Arrays.toString(s).replace('[', '(').replace(']', ')');
                String d = "{'descr': '" + descrs[t.ordinal()] + "', 'fortran_order': False, 'shape': " + repr + ", }";
                assertTrue(text.startsWith(d), text);
                assertTrue(text.endsWith("\n") && text.substring(d.length(), text.length() - 1).isBlank(), text);
                int room = s.length == 0 ? 0 : 21 - Integer.toString(s[0]).length();
                assertTrue(text.length() - d.length() - 1 >= room, "room for axis 0 to grow");
            }
        }
    }

    @Test
    void readsWhatNumpyWroteAndWritesTheSameBytes() throws Exception {
        byte[] f32 = resource("f32_2x3.npy");
        NpyArray a = Npy.fromBytes(f32, "f32_2x3.npy");
        assertArrayEquals(new int[]{2, 3}, a.shape());
        float[] v = a.toFloatArray();
        for (int i = 0; i < 6; i++) {
            assertEquals(i * 0.5f - 1f, v[i]);
        }
        assertArrayEquals(f32, Npy.toBytes(a), "byte-identical to numpy.save");

        byte[] f16 = resource("f16_specials.npy");
        NpyArray h = Npy.fromBytes(f16, "f16_specials.npy");
        assertEquals(NpyArray.DType.FLOAT16, h.dtype());
        int[] bits = {0x0000, 0x8000, 0x3C00, 0x7BFF, 0x0001, 0x7C00, 0xFC00, 0x2E66, 0xC000};
        float[] hv = h.toFloatArray();
        for (int i = 0; i < bits.length; i++) {
            assertEquals(Float.floatToRawIntBits(Half.toFloat((short) bits[i])), Float.floatToRawIntBits(hv[i]), "f16 " + i);
        }
        assertArrayEquals(f16, Npy.toBytes(h));

        byte[] f64 = resource("f64_2x3x4.npy");
        NpyArray d = Npy.fromBytes(f64, "f64_2x3x4.npy");
        assertArrayEquals(new int[]{2, 3, 4}, d.shape());
        double[] dv = d.toDoubleArray();
        for (int i = 0; i < 24; i++) {
            assertEquals(i / 7.0, dv[i]);
        }
        assertArrayEquals(f64, Npy.toBytes(d));

        byte[] i8 = resource("i8_scalar.npy");
        NpyArray n = Npy.fromBytes(i8, "i8_scalar.npy");
        assertEquals(0, n.rank());
        assertArrayEquals(new long[]{123456789012L}, n.toLongArray());
        assertArrayEquals(i8, Npy.toBytes(n));

        byte[] empty = resource("f32_0x3.npy");
        NpyArray e = Npy.fromBytes(empty, "f32_0x3.npy");
        assertArrayEquals(new int[]{0, 3}, e.shape());
        assertEquals(0, e.size());
        assertArrayEquals(empty, Npy.toBytes(e));

        byte[] r5 = resource("f32_rank5.npy");
        NpyArray five = Npy.fromBytes(r5, "f32_rank5.npy");
        assertArrayEquals(new int[]{2, 1, 3, 2, 2}, five.shape());
        assertEquals(-5f, five.toFloatArray()[0]);
        assertEquals(18f, five.toFloatArray()[23]);
        assertArrayEquals(r5, Npy.toBytes(five));

        NpyArray be = Npy.fromBytes(resource("f32_bigendian.npy"), "f32_bigendian.npy");
        assertArrayEquals(new float[]{0.25f, 1.25f, 2.25f, 3.25f}, be.toFloatArray());

        assertTrue(assertThrows(NpyFormatException.class, () -> Npy.fromBytes(resource("f32_fortran.npy"), "f.npy"))
                .getMessage().contains("Fortran"));
        assertTrue(assertThrows(NpyFormatException.class, () -> Npy.fromBytes(resource("i4.npy"), "i4.npy"))
                .getMessage().contains("'<i4' (int32)"));
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 1, 16383, 16384, 16385, 100_000})
    void chunkBoundariesDoNotMatter(int n) throws Exception {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = i * 0.25f - 3f;
        }
        for (NpyArray.DType t : new NpyArray.DType[]{NpyArray.DType.FLOAT16, NpyArray.DType.FLOAT32,
                NpyArray.DType.FLOAT64}) {
            NpyArray a = NpyArray.of(t, v, n);
            NpyArray b = Npy.fromBytes(Npy.toBytes(a), "chunks.npy");
            assertTrue(a.bitEquals(b), t + " n=" + n);
        }
    }
}
