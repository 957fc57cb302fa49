package dev.clnorm.train;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * Fashion-MNIST (Xiao, Rasul & Vollgraf 2017) as Debian's {@code dataset-fashion-mnist} package
 * installs it: four gzip-compressed IDX files in {@value #DEFAULT_DIR}. Images are 28x28 unsigned
 * bytes, scaled to [0, 1]; labels are 0..9. Uncompressed copies (the same names without
 * {@code .gz}) are read too.
 */
public final class FashionMnist {
    public static final String DEFAULT_DIR = "/usr/share/datasets/fashion-mnist";
    public static final String PACKAGE = "dataset-fashion-mnist";
    public static final int ROWS = 28;
    public static final int COLS = 28;
    public static final int CLASSES = 10;
    public static final String TRAIN_IMAGES = "train-images-idx3-ubyte";
    public static final String TRAIN_LABELS = "train-labels-idx1-ubyte";
    public static final String TEST_IMAGES = "t10k-images-idx3-ubyte";
    public static final String TEST_LABELS = "t10k-labels-idx1-ubyte";

    private FashionMnist() {
    }

    /** The training (60,000) and test (10,000) sets. */
    public record Split(Dataset train, Dataset test) {
    }

    /** How to get the data, for error messages. */
    public static String installHint(Path dir) {
        return "install Debian's package with `sudo apt-get install " + PACKAGE + "` (it puts the IDX files in "
                + DEFAULT_DIR + "), or pass --data DIR naming a folder with " + TRAIN_IMAGES + ".gz, " + TRAIN_LABELS
                + ".gz, " + TEST_IMAGES + ".gz and " + TEST_LABELS + ".gz (looked in " + dir.toAbsolutePath() + ")";
    }

    /** Loads both sets from a folder; a missing folder or file is an IllegalStateException saying how to install it. */
    public static Split load(Path dir) throws IOException {
        if (!Files.isDirectory(dir)) {
            throw new IllegalStateException("Fashion-MNIST not found: " + dir + " is not a folder; " + installHint(dir));
        }
        Dataset train = load(dir, "train", TRAIN_IMAGES, TRAIN_LABELS);
        Dataset test = load(dir, "test", TEST_IMAGES, TEST_LABELS);
        return new Split(train, test);
    }

    private static Dataset load(Path dir, String name, String images, String labels) throws IOException {
        IdxFile img = readEither(dir, images);
        IdxFile lab = readEither(dir, labels);
        if (img.dims().length != 3 || img.dims()[1] != ROWS || img.dims()[2] != COLS) {
            throw new IdxFile.IdxFormatException(img.path() + ": expected images of shape [n, " + ROWS + ", " + COLS
                    + "], the header says " + Arrays.toString(img.dims()));
        }
        if (lab.dims().length != 1) {
            throw new IdxFile.IdxFormatException(lab.path() + ": expected a 1-dimensional label file, the header says "
                    + Arrays.toString(lab.dims()));
        }
        int n = img.dims()[0];
        if (lab.dims()[0] != n) {
            throw new IdxFile.IdxFormatException(lab.path() + " has " + lab.dims()[0] + " labels but " + img.path()
                    + " has " + n + " images");
        }
        byte[] raw = img.data();
        float[] x = new float[raw.length];
        for (int i = 0; i < raw.length; i++) {
            x[i] = (raw[i] & 0xff) / 255.0f;
        }
        int[] y = new int[n];
        for (int i = 0; i < n; i++) {
            y[i] = lab.data()[i] & 0xff;
            if (y[i] >= CLASSES) {
                throw new IdxFile.IdxFormatException(lab.path() + ": label " + y[i] + " at index " + i
                        + " is not a Fashion-MNIST class (0.." + (CLASSES - 1) + ")");
            }
        }
        return new Dataset("fashion-mnist " + name, x, y, n, ROWS * COLS, CLASSES);
    }

    /** name.gz if present, else the uncompressed name; neither is an error with the install hint. */
    private static IdxFile readEither(Path dir, String name) throws IOException {
        Path gz = dir.resolve(name + ".gz");
        Path plain = dir.resolve(name);
        Path file = Files.exists(gz) ? gz : Files.exists(plain) ? plain : null;
        if (file == null) {
            throw new IllegalStateException("Fashion-MNIST file " + gz + " is missing; " + installHint(dir));
        }
        if (!Files.isReadable(file)) {
            throw new IllegalStateException("Fashion-MNIST file " + file + " is not readable by this user");
        }
        return IdxFile.read(file);
    }
}
