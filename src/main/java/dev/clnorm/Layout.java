package dev.clnorm;

/** Where the channel axis sits in a tensor's shape. */
public enum Layout {
    /** (N, C, spatial...): PyTorch's NCHW family. The channel axis is 1. */
    CHANNELS_FIRST,
    /** (N, spatial..., C): NHWC, TensorFlow's default. The channel axis is last. */
    CHANNELS_LAST;

    /** Index of the channel axis in a shape of the given rank. */
    public int channelAxis(int rank) {
        return this == CHANNELS_FIRST ? 1 : rank - 1;
    }
}
