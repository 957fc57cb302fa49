package dev.clnorm;

import dev.clnorm.backend.Backend;
import dev.clnorm.backend.DeviceBuffer;
import dev.clnorm.backend.ElementType;

import java.util.Arrays;

/**
 * A float32 tensor resident on one device: a device buffer plus its shape and layout. Data moves
 * to or from the host only through {@link #upload} and {@link #download}; everything else stays
 * on the device. Closing frees the device memory; a closed tensor refuses every use.
 */
public final class Tensor implements AutoCloseable {
    private final Backend backend;
    private final DeviceBuffer buffer;
    private final int[] shape;
    private final Layout layout;

    private Tensor(Backend backend, DeviceBuffer buffer, int[] shape, Layout layout) {
        this.backend = backend;
        this.buffer = buffer;
        this.shape = shape;
        this.layout = layout;
    }

    /** A zero-filled float32 tensor on the device. */
    public static Tensor zeros(Backend backend, Layout layout, int... shape) {
        return zeros(backend, layout, ElementType.FLOAT32, shape);
    }

    /**
     * A zero-filled tensor stored as {@code dtype}: FLOAT32, FLOAT16 or BFLOAT16 (16-bit tensors are
     * computed in float32; parameters and statistics stay float32), or FLOAT64 (for a float64 layer,
     * {@code BatchNorm.Builder#dtype}).
     */
    public static Tensor zeros(Backend backend, Layout layout, ElementType dtype, int... shape) {
        checkStorage(dtype);
        int[] s = shape.clone();
        long n = checkedElements(s);
        return new Tensor(backend, backend.allocate(n, dtype), s, layout);
    }

    /** Copies host data to a new float32 device tensor (one host-to-device transfer). */
    public static Tensor upload(Backend backend, float[] data, Layout layout, int... shape) {
        return upload(backend, data, layout, ElementType.FLOAT32, shape);
    }

    /**
     * Copies host data to a new device tensor stored as {@code dtype}; float16 and bfloat16 values are
     * rounded to nearest even on the host, float64 values are exact (one host-to-device transfer).
     */
    public static Tensor upload(Backend backend, float[] data, Layout layout, ElementType dtype, int... shape) {
        Tensor t = allocateFor(backend, data.length, layout, dtype, shape);
        try {
            t.write(data);
        } catch (RuntimeException e) {
            t.close();
            throw e;
        }
        return t;
    }

    /**
     * Copies float64 host data to a new device tensor stored as {@code dtype} (FLOAT64 keeps every
     * value; other types round each value once, to nearest even).
     */
    public static Tensor upload(Backend backend, double[] data, Layout layout, ElementType dtype, int... shape) {
        Tensor t = allocateFor(backend, data.length, layout, dtype, shape);
        try {
            t.write(data);
        } catch (RuntimeException e) {
            t.close();
            throw e;
        }
        return t;
    }

    /** A new tensor for {@code length} host values, after checking that they fill the shape exactly. */
    private static Tensor allocateFor(Backend backend, int length, Layout layout, ElementType dtype, int[] shape) {
        checkStorage(dtype);
        int[] s = shape.clone();
        long n = checkedElements(s);
        if (n != length) {
            throw new IllegalArgumentException("shape " + Arrays.toString(s) + " needs " + n
                    + " values, got an array of " + length);
        }
        return new Tensor(backend, backend.allocate(n, dtype), s, layout);
    }

    private static void checkStorage(ElementType dtype) {
        if (dtype == null || !dtype.isTensorStorage()) {
            throw new IllegalArgumentException("tensors are stored as FLOAT32, FLOAT16, BFLOAT16 or FLOAT64, got "
                    + dtype);
        }
    }

    private void write(double[] data) {
        if (buffer.type() == ElementType.FLOAT64) {
            backend.uploadDoubles(buffer, data);
            return;
        }
        float[] narrow = new float[data.length];
        for (int i = 0; i < data.length; i++) {
            narrow[i] = (float) data[i];
        }
        write(narrow);
    }

    private void write(float[] data) {
        if (buffer.type() == ElementType.FLOAT32) {
            backend.upload(buffer, data);
            return;
        }
        if (buffer.type() == ElementType.FLOAT64) {
            double[] wide = new double[data.length];
            for (int i = 0; i < data.length; i++) {
                wide[i] = data[i];
            }
            backend.uploadDoubles(buffer, wide);
            return;
        }
        short[] bits = new short[data.length];
        for (int i = 0; i < data.length; i++) {
            bits[i] = buffer.type().encode(data[i]);
        }
        backend.uploadShorts(buffer, bits);
    }

    /** Channels-first upload, the PyTorch layout. */
    public static Tensor upload(Backend backend, float[] data, int... shape) {
        return upload(backend, data, Layout.CHANNELS_FIRST, shape);
    }

    private static long checkedElements(int[] shape) {
        long n = 1;
        for (int d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException("negative dimension in shape " + Arrays.toString(shape));
            }
            n *= d;
            if (n > Geometry.MAX_ELEMENTS) {
                throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " has more than "
                        + Geometry.MAX_ELEMENTS + " elements (over " + Geometry.MAX_ELEMENTS * 4L
                        + " bytes as float32); the kernels index tensors with 32-bit integers");
            }
        }
        return n;
    }

    /**
     * Copies the whole tensor to a new float32 host array (one device-to-host transfer); FLOAT64
     * values are rounded to float32 (see {@link #downloadDoubles()}).
     */
    public float[] download() {
        checkOpen();
        float[] out = new float[(int) buffer.elements()];
        if (buffer.type() == ElementType.FLOAT32) {
            backend.download(buffer, out);
            return out;
        }
        if (buffer.type() == ElementType.FLOAT64) {
            double[] wide = downloadDoubles();
            for (int i = 0; i < out.length; i++) {
                out[i] = (float) wide[i];
            }
            return out;
        }
        short[] bits = new short[out.length];
        backend.downloadShorts(buffer, bits);
        for (int i = 0; i < out.length; i++) {
            out[i] = buffer.type().decode(bits[i]);
        }
        return out;
    }

    /** Copies the whole tensor to a new float64 host array, exactly (one device-to-host transfer). */
    public double[] downloadDoubles() {
        checkOpen();
        double[] out = new double[(int) buffer.elements()];
        if (buffer.type() == ElementType.FLOAT64) {
            backend.downloadDoubles(buffer, out);
            return out;
        }
        float[] narrow = download();
        for (int i = 0; i < out.length; i++) {
            out[i] = narrow[i];
        }
        return out;
    }

    /** How the values are stored: FLOAT32, FLOAT16, BFLOAT16 or FLOAT64. */
    public ElementType dtype() {
        return buffer.type();
    }

    /** Overwrites the tensor with float64 host data of the same length (one host-to-device transfer). */
    public void upload(double[] data) {
        checkOpen();
        if (data.length != buffer.elements()) {
            throw new IllegalArgumentException("tensor of shape " + Arrays.toString(shape) + " holds "
                    + buffer.elements() + " values, got an array of " + data.length);
        }
        write(data);
    }

    /** Overwrites the tensor with host data of the same length (one host-to-device transfer). */
    public void upload(float[] data) {
        checkOpen();
        if (data.length != buffer.elements()) {
            throw new IllegalArgumentException("tensor of shape " + Arrays.toString(shape) + " holds "
                    + buffer.elements() + " values, got an array of " + data.length);
        }
        write(data);
    }

    public int[] shape() {
        return shape.clone();
    }

    public Layout layout() {
        return layout;
    }

    public long elements() {
        return buffer.elements();
    }

    public Backend backend() {
        return backend;
    }

    /** The device buffer; for backends and tools. Owned by this tensor. */
    public DeviceBuffer buffer() {
        checkOpen();
        return buffer;
    }

    public boolean isClosed() {
        return buffer.isClosed();
    }

    void checkOpen() {
        if (buffer.isClosed()) {
            throw new IllegalStateException("tensor of shape " + Arrays.toString(shape) + " has been closed");
        }
    }

    @Override
    public void close() {
        buffer.close();
    }

    @Override
    public String toString() {
        return "Tensor" + Arrays.toString(shape) + " " + layout + " " + buffer.type() + " on " + backend.info().id();
    }
}
