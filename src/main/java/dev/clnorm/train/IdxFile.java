package dev.clnorm.train;

import java.io.BufferedInputStream;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.zip.GZIPInputStream;
import java.util.zip.ZipException;

/**
 * One file in the IDX format of MNIST and Fashion-MNIST (LeCun et al.): two zero bytes, a type byte,
 * the number of dimensions, each dimension as a big-endian 32-bit integer, then the values in
 * row-major order. Files may be gzip-compressed (detected from the content, not the name). Only
 * unsigned-byte data (type 0x08, what both data sets use) is read; anything else, a truncated or
 * over-long file, or a broken gzip stream is an {@link IdxFormatException} naming the file and
 * what is wrong.
 *
 * @param dims the dimensions from the header, e.g. [60000, 28, 28]
 * @param data the values, unsigned bytes (use {@code data[i] & 0xff})
 */
public record IdxFile(Path path, int[] dims, byte[] data) {
    /** Type code of unsigned bytes. */
    public static final int UBYTE = 0x08;
    /** Java arrays are int-indexed, with a little headroom the VM reserves. */
    private static final long MAX_VALUES = Integer.MAX_VALUE - 8L;

    /** An IDX file that cannot be read as one: the message names the file and the problem. */
    public static final class IdxFormatException extends IllegalArgumentException {
        private static final long serialVersionUID = 1L;

        public IdxFormatException(String message) {
            super(message);
        }
    }

    /** Number of values: the product of the dimensions. */
    public long count() {
        long n = 1;
        for (int d : dims) {
            n *= d;
        }
        return n;
    }

    /** Reads and validates the whole file. A missing file is a {@link NoSuchFileException}. */
    public static IdxFile read(Path path) throws IOException {
        if (Files.isDirectory(path)) {
            throw new IdxFormatException(path + ": is a directory, not an IDX file");
        }
        try (InputStream raw = new BufferedInputStream(Files.newInputStream(path), 1 << 16)) {
            return read(path, raw);
        }
    }

    /** Reads from a stream (gzip-compressed or not); {@code path} only names it in messages. */
    static IdxFile read(Path path, InputStream in) throws IOException {
        InputStream content = in.markSupported() ? in : new BufferedInputStream(in);
        content.mark(2);
        int b0 = content.read();
        int b1 = content.read();
        content.reset();
        boolean gzip = b0 == 0x1f && b1 == 0x8b;
        if (gzip) {
            try {
                content = new GZIPInputStream(content, 1 << 16);
            } catch (ZipException | EOFException e) {
                throw new IdxFormatException(path + ": broken gzip header (" + e.getMessage() + ")");
            }
        }
        try {
            return parse(path, new DataInputStream(content), gzip);
        } catch (ZipException e) {
            throw new IdxFormatException(path + ": corrupt gzip data (" + e.getMessage() + ")");
        } catch (EOFException e) {
            throw new IdxFormatException(path + ": " + (gzip ? "gzip stream ends early" : "file ends early")
                    + " (" + e.getMessage() + ")");
        }
    }

    private static IdxFile parse(Path path, DataInputStream in, boolean gzip) throws IOException {
        byte[] magic = in.readNBytes(4);
        if (magic.length < 4) {
            throw new IdxFormatException(path + ": " + magic.length + " bytes" + (gzip ? " after gunzip" : "")
                    + "; an IDX file starts with a 4-byte magic number");
        }
        if (magic[0] != 0 || magic[1] != 0) {
            throw new IdxFormatException(String.format("%s: not an IDX file (magic number starts 0x%02x 0x%02x, "
                    + "expected 0x00 0x00)", path, magic[0] & 0xff, magic[1] & 0xff));
        }
        int type = magic[2] & 0xff;
        int rank = magic[3] & 0xff;
        if (type != UBYTE) {
            throw new IdxFormatException(String.format("%s: IDX element type 0x%02x (%s) is not supported; "
                    + "only unsigned bytes (0x08) are read", path, type, typeName(type)));
        }
        if (rank == 0) {
            throw new IdxFormatException(path + ": IDX header declares 0 dimensions");
        }
        int[] dims = new int[rank];
        long count = 1;
        for (int d = 0; d < rank; d++) {
            dims[d] = in.readInt();
            if (dims[d] < 0) {
                throw new IdxFormatException(path + ": dimension " + d + " is negative (" + (dims[d] & 0xffffffffL)
                        + " read as unsigned); the header is corrupt");
            }
            count *= dims[d];
            if (count > MAX_VALUES) {
                throw new IdxFormatException(path + ": dimensions " + Arrays.toString(Arrays.copyOf(dims, d + 1))
                        + "... describe more than " + MAX_VALUES + " values; the header is corrupt");
            }
        }
        byte[] data = in.readNBytes((int) count);
        if (data.length < count) {
            throw new IdxFormatException(path + ": truncated: the header " + Arrays.toString(dims) + " needs " + count
                    + " bytes of data, the file" + (gzip ? " (after gunzip)" : "") + " holds " + data.length);
        }
        long extra = 0;
        byte[] tail = new byte[8192];
        for (int r; (r = in.read(tail)) > 0; ) {
            extra += r;
        }
        if (extra > 0) {
            throw new IdxFormatException(path + ": " + extra + " bytes after the " + count + " values the header "
                    + Arrays.toString(dims) + " describes; the file is corrupt or not what its header says");
        }
        return new IdxFile(path, dims, data);
    }

    private static String typeName(int type) {
        return switch (type) {
            case 0x08 -> "unsigned byte";
            case 0x09 -> "signed byte";
            case 0x0B -> "short";
            case 0x0C -> "int";
            case 0x0D -> "float";
            case 0x0E -> "double";
            default -> "unknown";
        };
    }

    /** Writes an unsigned-byte IDX file (optionally gzip-compressed): for tests and tools. */
    public static void write(Path path, int[] dims, byte[] data, boolean gzip) {
        long n = 1;
        for (int d : dims) {
            n *= d;
        }
        if (n != data.length) {
            throw new IllegalArgumentException("dims " + Arrays.toString(dims) + " need " + n + " values, got "
                    + data.length);
        }
        try (java.io.OutputStream file = Files.newOutputStream(path);
             java.io.OutputStream os = gzip ? new java.util.zip.GZIPOutputStream(file) : file;
             java.io.DataOutputStream out = new java.io.DataOutputStream(new java.io.BufferedOutputStream(os))) {
            out.writeByte(0);
            out.writeByte(0);
            out.writeByte(UBYTE);
            out.writeByte(dims.length);
            for (int d : dims) {
                out.writeInt(d);
            }
            out.write(data);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + path, e);
        }
    }

    /** Whether an exception from {@link #read} means the file is absent or unreadable rather than malformed. */
    static boolean isMissing(IOException e) {
        return e instanceof NoSuchFileException || e instanceof AccessDeniedException;
    }
}
