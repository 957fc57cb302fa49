package dev.clnorm;

/**
 * What a layer applies after the affine map, fused into its kernels (cuDNN's BN + activation,
 * oneDNN's fuse_norm_relu). With a residual tensor the sum comes first: y = relu(bn(x) + residual)
 * (oneDNN's fuse_norm_add_relu).
 */
public enum Activation {
    /** y = bn(x) (+ residual). */
    NONE,
    /**
     * y = max(bn(x) (+ residual), 0), NaN kept as torch.relu keeps it. Backward recomputes the mask
     * from the forward output y (y &gt; 0 exactly where the pre-activation was positive), so the
     * layer stores no mask: pass y to backward.
     */
    RELU
}
