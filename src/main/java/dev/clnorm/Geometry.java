package dev.clnorm;

import java.util.Arrays;

/**
 * A tensor seen as (outer, channels, inner), row-major: the one view every kernel works on.
 * Channels-first (N, C, S...) gives outer = N, inner = prod(S); channels-last (N, S..., C) gives
 * outer = N * prod(S), inner = 1. Per channel there are {@code valuesPerChannel() = outer * inner}
 * values.
 */
public record Geometry(int outer, int channels, int inner) {

    /** The largest element count the kernels address with 32-bit indices. */
    public static final long MAX_ELEMENTS = Integer.MAX_VALUE;

    public Geometry {
        if (outer < 0 || channels < 0 || inner < 0) {
            throw new IllegalArgumentException("negative extent in geometry (" + outer + ", " + channels + ", " + inner + ")");
        }
    }

    /** Geometry of a shape in a layout; checks rank, non-negative extents and the 32-bit index limit. */
    public static Geometry of(int[] shape, Layout layout) {
        if (shape.length < 2) {
            throw new IllegalArgumentException("batch norm expects an input of rank 2 to 5 "
                    + "((N,C), (N,C,L), (N,C,H,W), (N,C,D,H,W) or channels-last), got rank "
                    + shape.length + " " + Arrays.toString(shape));
        }
        if (shape.length > 5) {
            throw new IllegalArgumentException("batch norm expects an input of rank 2 to 5, got rank "
                    + shape.length + " " + Arrays.toString(shape));
        }
        long total = 1;
        for (int d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException("negative dimension in shape " + Arrays.toString(shape));
            }
            total *= d;
        }
        if (total > MAX_ELEMENTS) {
            throw new IllegalArgumentException("tensor of shape " + Arrays.toString(shape) + " has " + total
                    + " elements; at most " + MAX_ELEMENTS + " are supported");
        }
        int axis = layout.channelAxis(shape.length);
        int channels = shape[axis];
        long spatial = 1;
        for (int d = 0; d < shape.length; d++) {
            if (d != 0 && d != axis) {
                spatial *= shape[d];
            }
        }
        if (layout == Layout.CHANNELS_FIRST) {
            return new Geometry(shape[0], channels, (int) spatial);
        }
        return new Geometry((int) (shape[0] * spatial), channels, 1);
    }

    public long elements() {
        return (long) outer * channels * inner;
    }

    public long valuesPerChannel() {
        return (long) outer * inner;
    }

    /** Number of (outer, channel) rows, each {@code inner} contiguous values. */
    public long rows() {
        return (long) outer * channels;
    }

    /**
     * An equivalent geometry for the kernels: with one channel, every value belongs to it and the
     * whole tensor is one long contiguous row, whatever the layout. Other geometries are returned
     * as they are.
     */
    public Geometry canonical() {
        return channels == 1 && inner != elements() ? new Geometry(1, 1, (int) elements()) : this;
    }
}
