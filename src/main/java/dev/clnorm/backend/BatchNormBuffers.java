package dev.clnorm.backend;

/**
 * The per-channel device buffers of one batch-norm layer, all of {@code channels} elements.
 * gamma and beta always exist (ones and zeros when the layer is not affine) so kernels need
 * no branches; {@code meanLo} carries what rounding the saved mean to float dropped, so that
 * {@code (x - mean) - meanLo} stays accurate for channels whose mean dwarfs their spread.
 */
public record BatchNormBuffers(int channels,
                               DeviceBuffer gamma, DeviceBuffer beta,
                               DeviceBuffer runningMean, DeviceBuffer runningVar,
                               DeviceBuffer saveMean, DeviceBuffer saveMeanLo, DeviceBuffer saveInvstd,
                               DeviceBuffer skippedUpdates) {
}
