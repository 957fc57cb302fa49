package dev.clnorm.io;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Reads and writes NumPy's {@code .npy} format (NEP 1, versions 1.0, 2.0 and 3.0): a 6-byte magic
 * string {@code \x93NUMPY}, a version, a little-endian header length, a Python dict literal
 * {@code {'descr': ..., 'fortran_order': ..., 'shape': ...}} padded with spaces and a newline, then
 * the raw values in C order.
 *
 * <p>Reading accepts float16, float32, float64 and int64, little-endian ({@code <}) or big-endian
 * ({@code >}). Everything else is a clear {@link NpyFormatException} naming the file: Fortran order,
 * other dtypes (bool, int8..int32, unsigned, complex, strings, objects, structured dtypes),
 * truncated or garbled files, and data after the array. Every failure to read is an
 * {@code IOException}; nothing a file contains makes the reader throw anything else or allocate
 * more than the file can hold.
 *
 * <p>Writing produces exactly the bytes {@code numpy.save} (NumPy 2.x) writes for a C-ordered
 * little-endian array: version 1.0 (2.0 when the header exceeds 65535 bytes), the header padded so
 * the data starts at a multiple of 64 bytes, including NumPy's spare room for the first axis to grow.
 */
public final class Npy {
    static final byte[] MAGIC = {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y'};
    /** The data of a written file starts at a multiple of this (NumPy's ARRAY_ALIGN). */
    public static final int ALIGN = 64;
    /** Headers longer than this are refused as garbled (NumPy itself refuses above 10000 by default). */
    static final int MAX_HEADER_BYTES = 1 << 20;
    /** NumPy leaves room in the header for the first axis to grow to this many digits. */
    private static final int GROWTH_AXIS_MAX_DIGITS = 21;
    private static final int CHUNK = 1 << 16;

    private Npy() {
    }

    // ------------------------------------------------------------------------------------ reading

    /** Reads a {@code .npy} file. */
    public static NpyArray read(Path file) throws IOException {
        String name = file.toString();
        if (Files.isDirectory(file)) {
            throw new NpyFormatException(name + ": is a directory, not a .npy file");
        }
        long length;
        try {
            length = Files.size(file);
        } catch (NoSuchFileException e) {
            throw new NoSuchFileException(name, null, "no such file");
        }
        try (InputStream in = new BufferedInputStream(Files.newInputStream(file), CHUNK)) {
            return read(in, length, name);
        }
    }

    /** Reads a whole {@code .npy} image held in memory. */
    public static NpyArray fromBytes(byte[] bytes, String name) throws IOException {
        return read(new ByteArrayInputStream(bytes), bytes.length, name);
    }

    /**
     * Reads one array from a stream that holds exactly {@code length} bytes (the file or zip entry
     * size; -1 when unknown, in which case the stream is first read to its end). {@code name} is
     * used in error messages. The stream must end right after the data.
     */
    public static NpyArray read(InputStream in, long length, String name) throws IOException {
        if (length < 0) {
            byte[] all = in.readAllBytes();
            return read(new ByteArrayInputStream(all), all.length, name);
        }
        if (length == 0) {
            throw new NpyFormatException(name + ": empty file, not a .npy array");
        }
        byte[] pre = readUpTo(in, 8);
        if (pre.length < MAGIC.length && startsWithMagic(pre)) {
            throw truncated(name, "the magic string");
        }
        if (pre.length < MAGIC.length || !startsWithMagic(pre)) {
            throw new NpyFormatException(name + ": not a .npy file (it does not start with the \\x93NUMPY magic string)");
        }
        if (pre.length < 8) {
            throw truncated(name, "the version bytes");
        }
        int major = pre[6] & 0xFF;
        int minor = pre[7] & 0xFF;
        if (major < 1 || major > 3 || minor != 0) {
            throw new NpyFormatException(name + ": unsupported .npy format version " + major + "." + minor
                    + " (1.0, 2.0 and 3.0 are supported)");
        }
        int lenBytes = major == 1 ? 2 : 4;
        byte[] lb = readUpTo(in, lenBytes);
        if (lb.length < lenBytes) {
            throw truncated(name, "the header length");
        }
        long headerLength = (lb[0] & 0xFFL) | (lb[1] & 0xFFL) << 8;
        if (lenBytes == 4) {
            headerLength |= (lb[2] & 0xFFL) << 16 | (lb[3] & 0xFFL) << 24;
        }
        long prefix = 8 + lenBytes;
        if (headerLength > MAX_HEADER_BYTES) {
            throw new NpyFormatException(name + ": header length " + headerLength + " bytes is implausible (more than "
                    + MAX_HEADER_BYTES + "); the file is garbled");
        }
        if (prefix + headerLength > length) {
            throw truncated(name, "the " + headerLength + "-byte header (the file has " + length + " bytes)");
        }
        byte[] hb = readUpTo(in, (int) headerLength);
        if (hb.length < headerLength) {
            throw truncated(name, "the " + headerLength + "-byte header");
        }
        String headerText = new String(hb, major == 3 ? StandardCharsets.UTF_8 : StandardCharsets.ISO_8859_1);
        Header h = parseHeader(headerText, name);

        long available = length - prefix - headerLength;
        long needed = (long) h.count * h.dtype.itemSize();
        if (available < needed) {
            throw new NpyFormatException(name + ": truncated: shape " + NpyArray.shapeString(h.shape) + " of "
                    + h.dtype + " needs " + needed + " bytes of data, the file has " + available);
        }
        if (available > needed) {
            throw new NpyFormatException(name + ": " + (available - needed) + " unexpected bytes after the data of shape "
                    + NpyArray.shapeString(h.shape) + " " + h.dtype + " (the file is garbled or not one array)");
        }
        NpyArray a = readData(in, h, name);
        if (in.read() != -1) {
            throw new NpyFormatException(name + ": unexpected bytes after the data of shape "
                    + NpyArray.shapeString(h.shape) + " " + h.dtype);
        }
        return a;
    }

    /** Whether b (possibly shorter than the magic string) agrees with it on every byte it has. */
    private static boolean startsWithMagic(byte[] b) {
        for (int i = 0; i < MAGIC.length && i < b.length; i++) {
            if (b[i] != MAGIC[i]) {
                return false;
            }
        }
        return true;
    }

    private static NpyFormatException truncated(String name, String what) {
        return new NpyFormatException(name + ": truncated .npy file: it ends inside " + what);
    }

    private static byte[] readUpTo(InputStream in, int n) throws IOException {
        return in.readNBytes(n);
    }

    private static NpyArray readData(InputStream in, Header h, String name) throws IOException {
        int n = h.count;
        int item = h.dtype.itemSize();
        float[] floats = null;
        double[] doubles = null;
        long[] longs = null;
        switch (h.dtype) {
            case FLOAT16:
            case FLOAT32:
                floats = new float[n];
                break;
            case FLOAT64:
                doubles = new double[n];
                break;
            default:
                longs = new long[n];
        }
        byte[] chunk = new byte[CHUNK];
        ByteBuffer bb = ByteBuffer.wrap(chunk).order(h.order);
        int done = 0;
        while (done < n) {
            int count = Math.min(n - done, CHUNK / item);
            int bytes = count * item;
            int got = in.readNBytes(chunk, 0, bytes);
            if (got < bytes) {
                throw new NpyFormatException(name + ": truncated: the data ends after " + ((long) done * item + got)
                        + " of " + (long) n * item + " bytes");
            }
            bb.clear();
            switch (h.dtype) {
                case FLOAT16:
                    for (int i = 0; i < count; i++) {
                        floats[done + i] = Half.toFloat(bb.getShort());
                    }
                    break;
                case FLOAT32:
                    for (int i = 0; i < count; i++) {
                        floats[done + i] = Float.intBitsToFloat(bb.getInt());
                    }
                    break;
                case FLOAT64:
                    for (int i = 0; i < count; i++) {
                        doubles[done + i] = Double.longBitsToDouble(bb.getLong());
                    }
                    break;
                default:
                    for (int i = 0; i < count; i++) {
                        longs[done + i] = bb.getLong();
                    }
            }
            done += count;
        }
        return NpyArray.wrap(h.dtype, h.shape, floats, doubles, longs);
    }

    /** What a header says. */
    private record Header(NpyArray.DType dtype, ByteOrder order, int[] shape, int count) {
    }

    private static Header parseHeader(String text, String name) throws NpyFormatException {
        Object parsed;
        try {
            PyLiteral p = new PyLiteral(text);
            parsed = p.parseAll();
        } catch (IllegalArgumentException e) {
            throw new NpyFormatException(name + ": garbled .npy header (" + e.getMessage() + "): " + excerpt(text));
        }
        if (!(parsed instanceof Map)) {
            throw new NpyFormatException(name + ": the .npy header is not a dict: " + excerpt(text));
        }
        Map<?, ?> d = (Map<?, ?>) parsed;
        List<String> keys = new ArrayList<>();
        for (Object k : d.keySet()) {
            keys.add(String.valueOf(k));
        }
        if (d.size() != 3 || !d.containsKey("descr") || !d.containsKey("fortran_order") || !d.containsKey("shape")) {
            throw new NpyFormatException(name + ": the .npy header must have exactly the keys descr, fortran_order "
                    + "and shape, found " + keys);
        }
        Object descr = d.get("descr");
        if (descr instanceof List) {
            throw new NpyFormatException(name + ": structured dtypes (a list of fields as descr) are not supported; "
                    + "expected float16, float32, float64 or int64");
        }
        if (!(descr instanceof String)) {
            throw new NpyFormatException(name + ": descr must be a dtype string such as '<f4', found " + descr);
        }
        String ds = (String) descr;
        NpyArray.DType dtype = null;
        ByteOrder order = null;
        if (ds.length() >= 2) {
            char o = ds.charAt(0);
            dtype = NpyArray.DType.ofCode(ds.substring(1));
            if (o == '<') {
                order = ByteOrder.LITTLE_ENDIAN;
            } else if (o == '>') {
                order = ByteOrder.BIG_ENDIAN;
            }
        }
        if (dtype == null || order == null) {
            throw new NpyFormatException(name + ": unsupported dtype '" + ds + "'" + describeDtype(ds)
                    + "; supported: float16 '<f2', float32 '<f4', float64 '<f8' (and big-endian '>'), int64 '<i8'");
        }
        Object fortran = d.get("fortran_order");
        if (!(fortran instanceof Boolean)) {
            throw new NpyFormatException(name + ": fortran_order must be True or False, found " + fortran);
        }
        if ((Boolean) fortran) {
            throw new NpyFormatException(name + ": the array is in Fortran (column-major) order, which is not "
                    + "supported; save a C-ordered copy, e.g. numpy.save(path, numpy.ascontiguousarray(a))");
        }
        Object shapeObj = d.get("shape");
        if (!(shapeObj instanceof PyLiteral.Tuple)) {
            throw new NpyFormatException(name + ": shape must be a tuple of integers, found " + shapeObj);
        }
        List<Object> dims = ((PyLiteral.Tuple) shapeObj).items();
        int[] shape = new int[dims.size()];
        for (int i = 0; i < shape.length; i++) {
            Object v = dims.get(i);
            if (!(v instanceof Long)) {
                throw new NpyFormatException(name + ": shape must be a tuple of integers, found " + shapeObj);
            }
            long dim = (Long) v;
            if (dim < 0 || dim > Integer.MAX_VALUE) {
                throw new NpyFormatException(name + ": invalid dimension " + dim + " in shape " + shapeObj);
            }
            shape[i] = (int) dim;
        }
        long count;
        try {
            count = NpyArray.elementCount(shape);
        } catch (IllegalArgumentException e) {
            throw new NpyFormatException(name + ": " + e.getMessage());
        }
        return new Header(dtype, order, shape, (int) count);
    }

    private static String excerpt(String header) {
        String t = header.strip();
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < t.length() && sb.length() < 100; i++) {
            char c = t.charAt(i);
            sb.append(c >= 0x20 && c < 0x7F ? c : '?');
        }
        return sb.length() < t.length() ? sb + "..." : sb.toString();
    }

    /** " (int32)" and the like for common NumPy codes, to make the error message concrete. */
    private static String describeDtype(String descr) {
        String code = descr.length() > 1 && "<>|=".indexOf(descr.charAt(0)) >= 0 ? descr.substring(1) : descr;
        Map<String, String> known = new LinkedHashMap<>();
        known.put("b1", "bool");
        known.put("i1", "int8");
        known.put("i2", "int16");
        known.put("i4", "int32");
        known.put("i8", "int64");
        known.put("u1", "uint8");
        known.put("u2", "uint16");
        known.put("u4", "uint32");
        known.put("u8", "uint64");
        known.put("f2", "float16");
        known.put("f4", "float32");
        known.put("f8", "float64");
        known.put("f16", "longdouble");
        known.put("c8", "complex64");
        known.put("c16", "complex128");
        known.put("O", "object");
        String n = known.get(code);
        if (n == null && !code.isEmpty()) {
            switch (code.charAt(0)) {
                case 'U':
                    n = "unicode string";
                    break;
                case 'S':
                    n = "bytes";
                    break;
                case 'V':
                    n = "void/structured";
                    break;
                case 'M':
                    n = "datetime64";
                    break;
                case 'm':
                    n = "timedelta64";
                    break;
                default:
                    break;
            }
        }
        String order = descr.isEmpty() ? "" : switch (descr.charAt(0)) {
            case '>' -> ", big-endian";
            case '=' -> ", native byte order";
            case '|' -> ", no byte order";
            default -> "";
        };
        return n == null ? "" : " (" + n + order + ")";
    }

    // ------------------------------------------------------------------------------------ writing

    /** Writes {@code a} to {@code file} (replacing it), in the bytes {@code numpy.save} would write. */
    public static void write(Path file, NpyArray a) throws IOException {
        try (OutputStream out = new BufferedOutputStream(Files.newOutputStream(file), CHUNK)) {
            write(out, a);
        }
    }

    /** The whole {@code .npy} image of {@code a}. */
    public static byte[] toBytes(NpyArray a) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(128 + a.size() * a.dtype().itemSize());
        try {
            write(out, a);
        } catch (IOException e) {
            throw new AssertionError("ByteArrayOutputStream does not throw", e);
        }
        return out.toByteArray();
    }

    /** Writes header and data of {@code a}; does not close the stream. */
    public static void write(OutputStream out, NpyArray a) throws IOException {
        out.write(header(a.dtype(), a.shape()));
        NpyArray.DType t = a.dtype();
        int item = t.itemSize();
        int n = a.size();
        byte[] chunk = new byte[CHUNK];
        ByteBuffer bb = ByteBuffer.wrap(chunk).order(ByteOrder.LITTLE_ENDIAN);
        float[] f = a.floatData();
        double[] d = a.doubleData();
        long[] l = a.longData();
        for (int done = 0; done < n; ) {
            int count = Math.min(n - done, CHUNK / item);
            bb.clear();
            switch (t) {
                case FLOAT16:
                    for (int i = 0; i < count; i++) {
                        bb.putShort(Half.fromFloat(f[done + i]));
                    }
                    break;
                case FLOAT32:
                    for (int i = 0; i < count; i++) {
                        bb.putInt(Float.floatToRawIntBits(f[done + i]));
                    }
                    break;
                case FLOAT64:
                    for (int i = 0; i < count; i++) {
                        bb.putLong(Double.doubleToRawLongBits(d[done + i]));
                    }
                    break;
                default:
                    for (int i = 0; i < count; i++) {
                        bb.putLong(l[done + i]);
                    }
            }
            out.write(chunk, 0, count * item);
            done += count;
        }
    }

    /**
     * Magic, version, header length and the padded header dict: everything before the data, as
     * NumPy 2.x writes it. The total is a multiple of {@link #ALIGN}.
     */
    public static byte[] header(NpyArray.DType dtype, int[] shape) {
        StringBuilder dict = new StringBuilder("{'descr': '").append(dtype.descr())
                .append("', 'fortran_order': False, 'shape': ").append(NpyArray.shapeString(shape)).append(", }");
        if (shape.length > 0) {
            dict.append(" ".repeat(GROWTH_AXIS_MAX_DIGITS - Integer.toString(shape[0]).length()));
        }
        int hlen = dict.length() + 1;   // + the final newline
        int major = 1;
        int prefix = 10;
        int pad = ALIGN - (prefix + hlen) % ALIGN;
        if (hlen + pad > 0xFFFF) {
            major = 2;
            prefix = 12;
            pad = ALIGN - (prefix + hlen) % ALIGN;
        }
        int total = hlen + pad;
        ByteBuffer bb = ByteBuffer.allocate(prefix + total).order(ByteOrder.LITTLE_ENDIAN);
        bb.put(MAGIC).put((byte) major).put((byte) 0);
        if (major == 1) {
            bb.putShort((short) total);
        } else {
            bb.putInt(total);
        }
        bb.put(dict.toString().getBytes(StandardCharsets.ISO_8859_1));
        for (int i = 0; i < pad; i++) {
            bb.put((byte) ' ');
        }
        bb.put((byte) '\n');
        return bb.array();
    }
}
