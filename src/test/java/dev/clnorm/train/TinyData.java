package dev.clnorm.train;

import dev.clnorm.backend.Backend;
import dev.clnorm.backend.DeviceBuffer;
import dev.clnorm.backend.ElementType;

import java.util.SplittableRandom;

/** Small seeded inputs for the training tests, on the host and resident on a device. */
final class TinyData implements AutoCloseable {
    final float[] x;
    final int[] labels;
    final int rows;
    final int features;
    final DeviceBuffer images;
    final DeviceBuffer labelBuffer;
    final DeviceBuffer order;

    /** {@code rows} samples of {@code features} values in [0, 1) with labels in [0, classes), on the device. */
    TinyData(Backend backend, int rows, int features, int classes, long seed) {
        this.rows = rows;
        this.features = features;
        x = uniform(rows * features, seed);
        labels = new int[rows];
        SplittableRandom r = new SplittableRandom(seed * 31 + 7);
        for (int i = 0; i < rows; i++) {
            labels[i] = r.nextInt(classes);
        }
        int[] identity = new int[rows];
        for (int i = 0; i < rows; i++) {
            identity[i] = i;
        }
        images = backend.allocate(x.length, ElementType.FLOAT32);
        labelBuffer = backend.allocate(rows, ElementType.INT32);
        order = backend.allocate(rows, ElementType.INT32);
        backend.upload(images, x);
        backend.uploadInts(labelBuffer, labels);
        backend.uploadInts(order, identity);
    }

    static float[] uniform(int n, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) r.nextDouble();
        }
        return v;
    }

    double[] xDouble() {
        double[] d = new double[x.length];
        for (int i = 0; i < d.length; i++) {
            d[i] = x[i];
        }
        return d;
    }

    @Override
    public void close() {
        images.close();
        labelBuffer.close();
        order.close();
    }
}
