package dev.clnorm.backend;

/**
 * The fused epilogue of one call. Forward: optional residual added to the normalised value, then an
 * optional ReLU. Backward: with ReLU, dy is masked by the forward output's sign; with a residual
 * gradient buffer, the masked dy is also written there (the residual's gradient).
 *
 * @param relu         clamp at 0 after the affine map (and residual)
 * @param residual     forward: tensor added before the ReLU, or null
 * @param output       backward with ReLU: the forward's output y, or null
 * @param residualGrad backward: where d(residual) goes, or null
 */
public record Epilogue(boolean relu, DeviceBuffer residual, DeviceBuffer output, DeviceBuffer residualGrad) {

    public static final Epilogue NONE = new Epilogue(false, null, null, null);

    /** The kernels' bit set: 1 = ReLU, 2 = residual (forward: add it; backward: write its gradient). */
    public int forwardBits() {
        return (relu ? 1 : 0) | (residual != null ? 2 : 0);
    }

    public int backwardBits() {
        return (relu ? 1 : 0) | (residualGrad != null ? 2 : 0);
    }
}
