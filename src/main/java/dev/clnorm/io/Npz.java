package dev.clnorm.io;

import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Enumeration;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;
import java.util.zip.ZipOutputStream;

/**
 * NumPy's {@code .npz}: a zip archive of {@code .npy} files, one per named array
 * ({@code numpy.savez} stores them, {@code numpy.savez_compressed} deflates them). Both stored and
 * deflated entries are read (with {@link ZipFile}, which also reads the zip64 records NumPy writes);
 * entry {@code name.npy} becomes the array {@code name}.
 */
public final class Npz {
    /** Deflate cannot expand data more than about 1032:1; a larger claimed ratio is a garbled header. */
    private static final long MAX_DEFLATE_RATIO = 1100;
    /** 1980-01-01 00:00 local time, the zip epoch, as NumPy's zipfile writes: saved files are reproducible. */
    private static final long ZIP_EPOCH = new java.util.GregorianCalendar(1980, 0, 1).getTimeInMillis();

    private Npz() {
    }

    /** Every array in the archive, in archive order, by name (without {@code .npy}). */
    public static Map<String, NpyArray> read(Path file) throws IOException {
        String name = file.toString();
        if (Files.isDirectory(file)) {
            throw new NpyFormatException(name + ": is a directory, not a .npz file");
        }
        if (!Files.exists(file)) {
            throw new NoSuchFileException(name, null, "no such file");
        }
        Map<String, NpyArray> out = new LinkedHashMap<>();
        ZipFile zip;
        try {
            zip = new ZipFile(file.toFile());
        } catch (IOException e) {
            throw new NpyFormatException(name + ": not a valid .npz (zip) file: " + describe(e), e);
        }
        try (zip) {
            Enumeration<? extends ZipEntry> entries = zip.entries();
            while (entries.hasMoreElements()) {
                ZipEntry e = entries.nextElement();
                String where = name + "[" + e.getName() + "]";
                if (e.isDirectory()) {
                    throw new NpyFormatException(where + ": a directory entry; a .npz holds only .npy files");
                }
                if (!e.getName().endsWith(".npy")) {
                    throw new NpyFormatException(where + ": not a .npy entry; a .npz holds only .npy files");
                }
                String key = e.getName().substring(0, e.getName().length() - 4);
                if (out.containsKey(key)) {
                    throw new NpyFormatException(name + ": the array '" + key + "' appears twice");
                }
                long size = e.getSize();
                long csize = e.getCompressedSize();
                if (size >= 0 && csize >= 0) {
                    if (e.getMethod() == ZipEntry.STORED && size != csize) {
                        throw new NpyFormatException(where + ": garbled zip entry (stored, but sizes " + size + " and "
                                + csize + " differ)");
                    }
                    if (size > csize * MAX_DEFLATE_RATIO + 1024) {
                        throw new NpyFormatException(where + ": garbled zip entry (claims " + size + " bytes from "
                                + csize + " compressed)");
                    }
                }
                try (InputStream in = zip.getInputStream(e)) {
                    out.put(key, Npy.read(in, size, where));
                } catch (NpyFormatException fe) {
                    throw fe;
                } catch (IOException ze) {
                    throw new NpyFormatException(where + ": corrupt zip data: " + describe(ze), ze);
                }
            }
        } catch (NpyFormatException fe) {
            throw fe;
        } catch (IOException ze) {
            throw new NpyFormatException(name + ": corrupt .npz (zip) file: " + describe(ze), ze);
        } catch (IllegalArgumentException | IllegalStateException | IndexOutOfBoundsException ex) {
            // The JDK's zip reader signals some malformed archives (bad entry names, bad extra fields)
            // this way; a file must only ever produce an IOException.
            throw new NpyFormatException(name + ": corrupt .npz (zip) file: " + ex.getMessage(), ex);
        }
        return out;
    }

    private static String describe(Throwable e) {
        if (e instanceof java.io.EOFException) {
            return "unexpected end of data" + (e.getMessage() == null ? "" : " (" + e.getMessage() + ")");
        }
        return e.getMessage() != null ? e.getMessage() : e.getClass().getSimpleName();
    }

    /**
     * Writes {@code arrays} as a {@code .npz} (entries {@code key.npy}), deflated when
     * {@code compressed} (like {@code numpy.savez_compressed}) else stored (like {@code numpy.savez}).
     * The file is written beside the target and moved into place, so a failed write leaves no
     * half-written archive.
     */
    public static void write(Path file, Map<String, NpyArray> arrays, boolean compressed) throws IOException {
        for (String key : arrays.keySet()) {
            if (key.isEmpty()) {
                throw new IllegalArgumentException("an array name must not be empty");
            }
        }
        Path dir = file.toAbsolutePath().getParent();
        Path tmp = Files.createTempFile(dir, "." + file.getFileName(), ".tmp");
        try {
            try (OutputStream os = new BufferedOutputStream(Files.newOutputStream(tmp), 1 << 16)) {
                write(os, arrays, compressed);
            }
            try {
                Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING);
            }
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    /** Writes the archive to a stream (closed by the caller; the zip is finished here). */
    public static void write(OutputStream os, Map<String, NpyArray> arrays, boolean compressed) throws IOException {
        ZipOutputStream zip = new ZipOutputStream(os);
        for (Map.Entry<String, NpyArray> a : arrays.entrySet()) {
            byte[] bytes = Npy.toBytes(a.getValue());
            ZipEntry e = new ZipEntry(a.getKey() + ".npy");
            e.setTime(ZIP_EPOCH);
            if (compressed) {
                e.setMethod(ZipEntry.DEFLATED);
            } else {
                CRC32 crc = new CRC32();
                crc.update(bytes);
                e.setMethod(ZipEntry.STORED);
                e.setSize(bytes.length);
                e.setCompressedSize(bytes.length);
                e.setCrc(crc.getValue());
            }
            zip.putNextEntry(e);
            zip.write(bytes);
            zip.closeEntry();
        }
        zip.finish();
    }
}
