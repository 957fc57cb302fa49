package dev.clnorm.train;

import java.util.Arrays;

/**
 * Labelled samples on the host: {@code count} rows of {@code features} float32 values (row-major)
 * and one class label per row in [0, classes).
 */
public record Dataset(String name, float[] images, int[] labels, int count, int features, int classes) {

    public Dataset {
        if ((long) count * features != images.length) {
            throw new IllegalArgumentException(name + ": " + count + " x " + features + " values expected, got "
                    + images.length);
        }
        if (labels.length != count) {
            throw new IllegalArgumentException(name + ": " + count + " labels expected, got " + labels.length);
        }
        for (int i = 0; i < count; i++) {
            if (labels[i] < 0 || labels[i] >= classes) {
                throw new IllegalArgumentException(name + ": label " + labels[i] + " of sample " + i
                        + " is outside [0, " + classes + ")");
            }
        }
    }

    /** The first n samples (n <= count). */
    public Dataset head(int n) {
        if (n < 0 || n > count) {
            throw new IllegalArgumentException(name + " has " + count + " samples, cannot take " + n);
        }
        if (n == count) {
            return this;
        }
        return new Dataset(name, Arrays.copyOf(images, n * features), Arrays.copyOf(labels, n), n, features, classes);
    }
}
