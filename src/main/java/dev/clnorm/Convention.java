package dev.clnorm;

/**
 * The running-statistics conventions of the frameworks users arrive from. They disagree on which
 * way "momentum" points, on the default eps and on whether the running variance is fed the biased
 * or the unbiased batch variance (REFERENCE.md §2):
 *
 * <table>
 *   <caption>conventions</caption>
 *   <tr><th>convention</th><th>update</th><th>default momentum</th><th>running var fed</th><th>eps</th></tr>
 *   <tr><td>{@link #PYTORCH}</td><td>r = (1 - m) r + m batch</td><td>0.1 (null: cumulative average)</td>
 *       <td>unbiased m/(m-1)</td><td>1e-5</td></tr>
 *   <tr><td>{@link #KERAS}</td><td>r = m r + (1 - m) batch</td><td>0.99</td><td>biased</td><td>1e-3</td></tr>
 *   <tr><td>{@link #ONNX}</td><td>r = m r + (1 - m) batch</td><td>0.9</td><td>biased</td><td>1e-5</td></tr>
 *   <tr><td>{@link #CUDNN}</td><td>r = (1 - f) r + f batch</td><td>factor 0.1 (null: 1/(1+n), cumulative)</td>
 *       <td>unbiased</td><td>1e-5</td></tr>
 * </table>
 *
 * Whatever the convention, the layer normalises with the biased batch variance.
 */
public enum Convention {
    /** torch.nn.BatchNorm*d: momentum is the weight of the new batch. */
    PYTORCH(false, true, 0.1, 1e-5),
    /** keras.layers.BatchNormalization: momentum is the decay, the weight of the old running value. */
    KERAS(true, false, 0.99, 1e-3),
    /** ONNX BatchNormalization (opset 15, training_mode = 1): momentum is the decay. */
    ONNX(true, false, 0.9, 1e-5),
    /** cudnnBatchNormalizationForwardTraining: exponentialAverageFactor is the weight of the new batch. */
    CUDNN(false, true, 0.1, 1e-5);

    private final boolean momentumIsDecay;
    private final boolean unbiasedRunningVar;
    private final double defaultMomentum;
    private final double defaultEps;

    Convention(boolean momentumIsDecay, boolean unbiasedRunningVar, double defaultMomentum, double defaultEps) {
        this.momentumIsDecay = momentumIsDecay;
        this.unbiasedRunningVar = unbiasedRunningVar;
        this.defaultMomentum = defaultMomentum;
        this.defaultEps = defaultEps;
    }

    /** True when "momentum" weights the old running value (Keras, ONNX), false when it weights the batch. */
    public boolean momentumIsDecay() {
        return momentumIsDecay;
    }

    /** True when the running variance is fed the unbiased batch variance m/(m-1) (PyTorch, cuDNN). */
    public boolean unbiasedRunningVar() {
        return unbiasedRunningVar;
    }

    public double defaultMomentum() {
        return defaultMomentum;
    }

    public double defaultEps() {
        return defaultEps;
    }

    /** Whether a null momentum (cumulative moving average) means something in this convention. */
    public boolean allowsCumulative() {
        return !momentumIsDecay;
    }

    /**
     * The two weights of {@code running = keep * running + batch * batchWeight} as float32, computed
     * the way the framework computes them (PyTorch: batch weight m and keep 1 - m; Keras/ONNX: keep m
     * and batch weight 1 - m), so updates match the framework's bit for bit.
     *
     * @return {keep, batchWeight}
     */
    public float[] updateWeights(Double momentum, long batchesTracked) {
        if (momentum == null) {
            float f = (float) (1.0 / batchesTracked);
            return new float[]{1.0f - f, f};
        }
        float m = momentum.floatValue();
        return momentumIsDecay ? new float[]{m, 1.0f - m} : new float[]{1.0f - m, m};
    }

    /**
     * {@link #updateWeights} in float64, for float64 layers (the frameworks' float64 modules compute
     * the update in double).
     *
     * @return {keep, batchWeight}
     */
    public double[] updateWeightsDouble(Double momentum, long batchesTracked) {
        if (momentum == null) {
            double f = 1.0 / batchesTracked;
            return new double[]{1.0 - f, f};
        }
        double m = momentum;
        return momentumIsDecay ? new double[]{m, 1.0 - m} : new double[]{1.0 - m, m};
    }

    /**
     * The weight f of the new batch in {@code running = (1 - f) * running + f * batch}, given this
     * convention's momentum and the number of batches tracked including the current one.
     */
    public double batchWeight(Double momentum, long batchesTracked) {
        if (momentum == null) {
            return 1.0 / batchesTracked;
        }
        return momentumIsDecay ? 1.0 - momentum : momentum;
    }
}
