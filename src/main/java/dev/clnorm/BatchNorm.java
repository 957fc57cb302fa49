package dev.clnorm;

import dev.clnorm.backend.Backend;
import dev.clnorm.backend.BatchNormBuffers;
import dev.clnorm.backend.BatchNormOps;
import dev.clnorm.backend.DeviceBuffer;
import dev.clnorm.backend.ElementType;
import dev.clnorm.backend.Epilogue;
import dev.clnorm.backend.RunningUpdate;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Batch normalization over C channels, PyTorch semantics ({@code torch.nn.BatchNorm1d/2d/3d}).
 *
 * <p>Parameters (weight = gamma, bias = beta), running statistics and the statistics saved for
 * backward live on the layer's device and stay there: a training step (forward, backward,
 * running-statistics update) makes no host transfer. Getters that return {@code float[]}
 * download on request.
 *
 * <p><b>Momentum and conventions:</b> by default {@link Convention#PYTORCH}:
 * {@code running = (1 - momentum) * running + momentum * batch}, so momentum 0.1 weights the new
 * batch by 0.1; {@code momentum == null} gives the cumulative moving average, factor
 * {@code 1 / numBatchesTracked}; the running variance is fed the unbiased batch variance (m/(m-1)).
 * {@link Builder#convention} switches to Keras or ONNX, whose "momentum" is the <i>decay</i>
 * ({@code running = momentum * running + (1 - momentum) * batch}, Keras 0.99 = PyTorch 0.01) and
 * whose running variance is fed the biased batch variance, or to cuDNN's exponential average factor.
 * {@link #momentum()} is always in the layer's convention's own terms. Normalisation always uses the
 * biased batch variance.
 *
 * <p><b>Scale, shift, frozen statistics:</b> {@link Builder#useScale} / {@link Builder#useShift}
 * (Keras' scale/center) make gamma / beta learnable or fix them at 1 / 0 independently;
 * {@link Builder#useGlobalStats} freezes the layer: the training forward normalises with the running
 * statistics (and leaves them alone), and its backward treats them as constants.
 *
 * <p><b>Precision:</b> a layer is float32 by default: its parameters and statistics are float32 and
 * it takes FLOAT32, FLOAT16 and BFLOAT16 tensors (16-bit tensors are computed in float32).
 * {@link Builder#dtype dtype(FLOAT64)} makes a float64 layer, as PyTorch's {@code module.double()}:
 * float64 parameters, statistics and arithmetic (eps and the running-update weights in double
 * too), FLOAT64 tensors only. On OpenCL it needs a device with double precision (cl_khr_fp64); the
 * Java backend always has it. The {@code float[]} getters and setters round a float64 layer's
 * values; the {@code double[]} ones ({@link #runningMeanDouble()}, {@link #setRunningMean(double[])},
 * ...) are exact for both precisions (a float32 layer rounds what they set to float32).
 *
 * <p><b>Bad input</b> is rejected with an exception naming what was expected and what was received,
 * before any device work and without changing anything the layer stores: rank outside 2..5, a
 * channel count that differs from the layer's, dy/dx/y whose shape or layout differs from x's,
 * parameter or running-statistic arrays of the wrong length, and training with one value per
 * channel ({@code "Expected more than 1 value per channel when training, got input size [1, 10]"},
 * as PyTorch; N = 1 with a spatial size above 1, and inference with N = 1, are fine).
 *
 * <p><b>Empty batch (N = 0, or a zero spatial extent):</b> the output is empty, the running
 * statistics and {@link #numBatchesTracked()} are untouched, and backward gives an empty dx with
 * dgamma = dbeta = 0.
 *
 * <p><b>Non-finite input policy:</b> a channel whose batch statistics are not finite in float32 (NaN
 * or Inf in its input, or a variance above float32's maximum of about 3.4e38) is not folded into the
 * running statistics: the update of that channel is skipped and counted ({@link #skippedUpdates()}),
 * other channels are updated normally. NaN/Inf input makes that channel's whole output NaN and
 * leaves every other channel unaffected. With {@link Builder#strictNonFinite} the training forward
 * throws {@link ArithmeticException} instead and the step is rolled back: running statistics,
 * skip counters and {@link #numBatchesTracked()} keep their values from before the call and
 * backward refuses to run on that step (strict mode costs a few small transfers per training step).
 *
 * <p><b>Large magnitudes:</b> statistics are computed from values shifted by each channel's first
 * value and (on OpenCL) scaled by a power of two, with the variance kept as a mean of squares rather
 * than a sum of squares, so inputs near |x| = 1e19, whose squares and sums of squares overflow float32,
 * still give finite and correct means, variances and outputs. A channel whose variance itself exceeds
 * float32's range (a spread above about 1.8e19) is still normalised correctly, but its running
 * variance cannot hold the value: that update is skipped and counted as above.
 *
 * <p><b>Running statistics are validated:</b> {@link #setRunningVar} accepts only finite values >= 0
 * and {@link #setRunningMean} only finite values. Buffers handed out by {@link #deviceState()} can be
 * written directly, so the first inference after that call downloads and checks the running
 * statistics (one transfer of 2C floats) and throws before any device work if a running variance is
 * negative or a running statistic is not finite.
 *
 * <p><b>Memory:</b> tensors and layer buffers larger than the device's largest single allocation
 * (CL_DEVICE_MAX_MEM_ALLOC_SIZE, or the Java heap) are refused by the backend with an
 * {@link IllegalArgumentException} naming the requested bytes and the device limit.
 *
 * <p><b>Threads:</b> a layer's methods are synchronized, so one layer may be called from several
 * threads, but a forward/backward pair belongs together: interleaving another thread's training
 * forward between them makes backward use that forward's statistics. Separate layers on one device
 * may run on separate threads concurrently. After {@link #close()} every use throws
 * {@link IllegalStateException}; close is idempotent.
 */
public final class BatchNorm implements AutoCloseable {
    private final Backend backend;
    private final int channels;
    /** FLOAT32 or FLOAT64: the type of the parameters and statistics, and of the arithmetic. */
    private final ElementType dtype;
    /** The builder's eps rounded to the layer's precision. */
    private final double eps;
    private final Double momentum;
    private final Convention convention;
    private final boolean useScale;
    private final boolean useShift;
    private final boolean useGlobalStats;
    private final Activation activation;
    private final boolean trackRunningStats;
    private final boolean strictNonFinite;
    private final BatchNormOps ops;
    private final BatchNormBuffers state;
    private final DeviceBuffer gradWeight;
    private final DeviceBuffer gradBias;
    private long numBatchesTracked;
    /** Geometry of the last training forward; backward needs its saved statistics. */
    private Geometry savedGeometry;
    /** Whether the saved statistics are the running ones (useGlobalStats): backward treats them as constants. */
    private boolean savedFrozen;
    /** Set when {@link #deviceState()} handed out the raw buffers: inference re-validates them first. */
    private boolean runningStatsUnverified;
    private boolean closed;

    private BatchNorm(Builder b) {
        this.backend = b.backend != null ? b.backend : Devices.defaultBackend();
        this.channels = b.channels;
        this.dtype = b.dtype;
        if (dtype == ElementType.FLOAT64 && !backend.info().fp64()) {
            throw new IllegalArgumentException("a float64 layer needs double precision (cl_khr_fp64), which "
                    + backend.info().describe() + " does not report; use a float32 layer or another device "
                    + "(the Java backend always has float64)");
        }
        this.convention = b.convention;
        this.eps = dtype == ElementType.FLOAT64 ? b.effectiveEps() : (float) b.effectiveEps();
        this.momentum = b.effectiveMomentum();
        this.useScale = b.useScale;
        this.useShift = b.useShift;
        this.useGlobalStats = b.useGlobalStats;
        this.activation = b.activation;
        this.trackRunningStats = b.trackRunningStats;
        this.strictNonFinite = b.strictNonFinite;
        List<AutoCloseable> made = new ArrayList<>();
        try {
            DeviceBuffer gamma = track(made, backend.allocate(channels, dtype));
            DeviceBuffer beta = track(made, backend.allocate(channels, dtype));
            DeviceBuffer runningMean = track(made, backend.allocate(channels, dtype));
            DeviceBuffer runningVar = track(made, backend.allocate(channels, dtype));
            DeviceBuffer saveMean = track(made, backend.allocate(channels, dtype));
            DeviceBuffer saveMeanLo = track(made, backend.allocate(channels, dtype));
            DeviceBuffer saveInvstd = track(made, backend.allocate(channels, dtype));
            DeviceBuffer skipped = track(made, backend.allocate(channels, ElementType.INT32));
            gradWeight = track(made, backend.allocate(channels, dtype));
            gradBias = track(made, backend.allocate(channels, dtype));
            backend.fill(gamma, 1.0f);
            backend.fill(runningVar, 1.0f);
            state = new BatchNormBuffers(channels, gamma, beta, runningMean, runningVar, saveMean, saveMeanLo,
                    saveInvstd, skipped);
            ops = track(made, backend.createBatchNormOps(channels));
        } catch (RuntimeException e) {
            for (AutoCloseable c : made) {
                closeQuietly(c);
            }
            throw e;
        }
    }

    private static <T extends AutoCloseable> T track(List<AutoCloseable> made, T resource) {
        made.add(resource);
        return resource;
    }

    private static void closeQuietly(AutoCloseable c) {
        try {
            c.close();
        } catch (Exception ignored) {
            // Closing during a failed construction; the original exception matters more.
        }
    }

    /** A layer with PyTorch's defaults on the default device. */
    public BatchNorm(int channels) {
        this(builder(channels));
    }

    public static Builder builder(int channels) {
        return new Builder(channels);
    }

    /** Configuration; validated when {@link #build()} is called, before any device work. */
    public static final class Builder {
        private final int channels;
        private Convention convention = Convention.PYTORCH;
        private Double eps;
        private Double momentum;
        private boolean momentumSet;
        private boolean useScale = true;
        private boolean useShift = true;
        private boolean useGlobalStats = false;
        private Activation activation = Activation.NONE;
        private boolean trackRunningStats = true;
        private boolean strictNonFinite = false;
        private ElementType dtype = ElementType.FLOAT32;
        private Backend backend;

        private Builder(int channels) {
            this.channels = channels;
        }

        /**
         * The framework whose running-statistics conventions the layer follows (default PYTORCH). It
         * sets the meaning of {@link #momentum}, the default eps and momentum, and whether the
         * running variance is fed the biased or the unbiased batch variance.
         */
        public Builder convention(Convention convention) {
            this.convention = java.util.Objects.requireNonNull(convention, "convention");
            return this;
        }

        /** Added to the variance before the square root; must be finite and > 0. Default: the convention's. */
        public Builder eps(double eps) {
            this.eps = eps;
            return this;
        }

        /**
         * Momentum in [0, 1] in the convention's own terms: PyTorch and cuDNN, the weight of the new
         * batch (default 0.1); Keras (default 0.99) and ONNX (default 0.9), the decay, the weight of
         * the old running value. {@code null} selects the cumulative moving average (PyTorch, cuDNN only).
         */
        public Builder momentum(Double momentum) {
            this.momentum = momentum;
            this.momentumSet = true;
            return this;
        }

        /** Whether gamma and beta are learnable; when false they stay 1 and 0. Default true. */
        public Builder affine(boolean affine) {
            this.useScale = affine;
            this.useShift = affine;
            return this;
        }

        /** Whether gamma is learnable (Keras' scale); when false it stays 1. Default true. */
        public Builder useScale(boolean useScale) {
            this.useScale = useScale;
            return this;
        }

        /** Whether beta is learnable (Keras' center); when false it stays 0. Default true. */
        public Builder useShift(boolean useShift) {
            this.useShift = useShift;
            return this;
        }

        /**
         * A frozen layer: the training forward normalises with the running statistics instead of the
         * batch's and does not update them; backward treats them as constants
         * (dx = gamma * dy / sqrt(running_var + eps)). Default false.
         */
        public Builder useGlobalStats(boolean useGlobalStats) {
            this.useGlobalStats = useGlobalStats;
            return this;
        }

        /** An activation fused into the forward and backward kernels (default NONE). */
        public Builder activation(Activation activation) {
            this.activation = java.util.Objects.requireNonNull(activation, "activation");
            return this;
        }

        double effectiveEps() {
            return eps != null ? eps : convention.defaultEps();
        }

        Double effectiveMomentum() {
            return momentumSet ? momentum : Double.valueOf(convention.defaultMomentum());
        }

        /** Whether running statistics are kept; when false inference uses batch statistics. Default true. */
        public Builder trackRunningStats(boolean track) {
            this.trackRunningStats = track;
            return this;
        }

        /**
         * Throw {@link ArithmeticException} from the training forward when a channel's batch
         * statistics are not finite, rolling the step back (running statistics, skip counters and
         * numBatchesTracked unchanged), instead of skipping and counting that channel's running
         * update. Costs a few transfers of C values per training step. Default false.
         */
        public Builder strictNonFinite(boolean strict) {
            this.strictNonFinite = strict;
            return this;
        }

        /**
         * FLOAT32 (default): float32 parameters and statistics, FLOAT32/FLOAT16/BFLOAT16 tensors.
         * FLOAT64: a float64 layer (float64 parameters, statistics and arithmetic, FLOAT64 tensors);
         * on OpenCL the device must support cl_khr_fp64, checked by {@link #build()}.
         */
        public Builder dtype(ElementType dtype) {
            this.dtype = java.util.Objects.requireNonNull(dtype, "dtype");
            return this;
        }

        /** The device; default {@link Devices#defaultBackend()}. */
        public Builder backend(Backend backend) {
            this.backend = backend;
            return this;
        }

        public BatchNorm build() {
            if (channels <= 0) {
                throw new IllegalArgumentException("num_features (channels) must be positive, got " + channels);
            }
            if (dtype != ElementType.FLOAT32 && dtype != ElementType.FLOAT64) {
                throw new IllegalArgumentException("a layer's dtype (its parameters' and statistics' type) is FLOAT32 "
                        + "or FLOAT64, got " + dtype + (dtype.isTensorStorage() ? "; " + dtype + " tensors run on a "
                        + "FLOAT32 layer" : ""));
            }
            double e = effectiveEps();
            if (!(e > 0) || Double.isInfinite(e) || (float) e == 0.0f) {
                throw new IllegalArgumentException("eps must be a finite float32 value > 0, got " + e);
            }
            Double m = effectiveMomentum();
            String meaning = convention.momentumIsDecay()
                    ? convention + " convention: the decay, weight of the old running value"
                    : convention + " convention: weight of the new batch";
            if (m == null && !convention.allowsCumulative()) {
                throw new IllegalArgumentException("momentum must be a value in [0, 1] (" + meaning
                        + "); a cumulative average (null) exists only in the PYTORCH and CUDNN conventions");
            }
            if (m != null && !(m >= 0.0 && m <= 1.0)) {
                throw new IllegalArgumentException("momentum must be in [0, 1] (" + meaning + ")"
                        + (convention.allowsCumulative() ? " or null for a cumulative average" : "") + ", got " + m);
            }
            if (backend != null && backend.isClosed()) {
                throw new IllegalStateException("backend " + backend.info().id() + " has been closed");
            }
            return new BatchNorm(this);
        }
    }

    // ---------------------------------------------------------------- training forward

    /** Training forward into a new tensor: normalises with batch statistics and updates running ones. */
    public synchronized Tensor forwardTraining(Tensor x) {
        Geometry g = checkInput(x, "input");
        checkTrainable(x, g);
        Tensor y = Tensor.zeros(backend, x.layout(), x.dtype(), x.shape());
        try {
            runTraining(x, y, g, epilogue(null));
        } catch (RuntimeException e) {
            y.close();
            throw e;
        }
        return y;
    }

    /** Training forward into an existing output tensor of the same shape and layout. */
    public synchronized void forwardTraining(Tensor x, Tensor y) {
        Geometry g = checkInput(x, "input");
        checkSameShape(x, y, "output");
        checkTrainable(x, g);
        runTraining(x, y, g, epilogue(null));
    }

    /**
     * Training forward with a fused residual add: y = act(bn(x) + residual), act the layer's
     * {@link Activation} (oneDNN's fuse_norm_add_relu with {@link Activation#RELU}).
     */
    public synchronized void forwardTraining(Tensor x, Tensor residual, Tensor y) {
        Geometry g = checkInput(x, "input");
        checkSameShape(x, residual, "residual");
        checkSameShape(x, y, "output");
        checkTrainable(x, g);
        runTraining(x, y, g, epilogue(residual));
    }

    /** The forward epilogue of this layer: its activation, and the residual if one is given. */
    private Epilogue epilogue(Tensor residual) {
        return new Epilogue(activation == Activation.RELU, residual == null ? null : residual.buffer(), null, null);
    }

    private void runTraining(Tensor x, Tensor y, Geometry g, Epilogue epilogue) {
        if (g.valuesPerChannel() == 0) {
            savedGeometry = g;
            return;  // empty batch: empty output, running statistics untouched
        }
        if (useGlobalStats) {
            runFrozen(x, y, g, epilogue);
            return;
        }
        RunningUpdate update = RunningUpdate.NONE;
        if (trackRunningStats) {
            numBatchesTracked++;
            double[] w = dtype == ElementType.FLOAT64 ? convention.updateWeightsDouble(momentum, numBatchesTracked)
                    : toDoubles(convention.updateWeights(momentum, numBatchesTracked));
            update = new RunningUpdate(true, w[0], w[1], convention.unbiasedRunningVar());
        }
        // Strict mode keeps what it needs to undo the step: the kernels update the finite channels
        // in place, so a rejected step restores the running statistics and skip counters.
        boolean rollback = strictNonFinite && trackRunningStats;
        double[] meanBefore = rollback ? readDoubles(state.runningMean()) : null;
        double[] varBefore = rollback ? readDoubles(state.runningVar()) : null;
        int[] skippedBefore = rollback ? readInts(state.skippedUpdates()) : null;
        savedGeometry = null;
        savedFrozen = false;
        ops.trainingForward(g, x.buffer(), y.buffer(), state, eps, update, epilogue);
        if (strictNonFinite) {
            List<Integer> bad = nonFiniteChannels(skippedBefore);
            if (!bad.isEmpty()) {
                if (rollback) {
                    writeDoubles(state.runningMean(), meanBefore);
                    writeDoubles(state.runningVar(), varBefore);
                    backend.uploadInts(state.skippedUpdates(), skippedBefore);
                    numBatchesTracked--;
                }
                throw new ArithmeticException((bad.size() == 1 ? "channel " + bad.get(0) + " has" : "channels " + bad
                        + " have") + " non-finite batch statistics (NaN or Inf in the input, or a variance beyond "
                        + "float32's range); strictNonFinite rejected the step: running statistics and "
                        + "numBatchesTracked were left unchanged");
            }
        }
        savedGeometry = g;
    }

    /** useGlobalStats: normalise with the running statistics, saved as constants for backward. */
    private void runFrozen(Tensor x, Tensor y, Geometry g, Epilogue epilogue) {
        if (runningStatsUnverified) {
            checkRunningStats(readDoubles(state.runningMean()), readDoubles(state.runningVar()),
                    " (written through deviceState())");
            runningStatsUnverified = false;
        }
        savedGeometry = null;
        ops.savedStatsFromRunning(state, eps);
        ops.inferenceForward(g, x.buffer(), y.buffer(), state, eps, epilogue);
        savedFrozen = true;
        savedGeometry = g;
    }

    /**
     * Channels of the forward just run whose statistics are not finite: saved mean or invstd NaN/Inf,
     * or (with running statistics) a running update the kernels skipped.
     */
    private List<Integer> nonFiniteChannels(int[] skippedBefore) {
        double[] mean = readDoubles(state.saveMean());
        double[] invstd = readDoubles(state.saveInvstd());
        int[] skipped = skippedBefore != null ? readInts(state.skippedUpdates()) : null;
        List<Integer> bad = new ArrayList<>();
        for (int c = 0; c < channels; c++) {
            if (!Double.isFinite(mean[c]) || !Double.isFinite(invstd[c])
                    || (skipped != null && skipped[c] != skippedBefore[c])) {
                bad.add(c);
            }
        }
        return bad;
    }

    // ---------------------------------------------------------------- inference forward

    /** Inference forward: normalises with the running statistics (batch statistics if not tracked). */
    public synchronized Tensor forwardInference(Tensor x) {
        Geometry g = checkInput(x, "input");
        checkInferable(x, g);
        Tensor y = Tensor.zeros(backend, x.layout(), x.dtype(), x.shape());
        try {
            runInference(x, y, g, epilogue(null));
        } catch (RuntimeException e) {
            y.close();
            throw e;
        }
        return y;
    }

    public synchronized void forwardInference(Tensor x, Tensor y) {
        Geometry g = checkInput(x, "input");
        checkSameShape(x, y, "output");
        checkInferable(x, g);
        runInference(x, y, g, epilogue(null));
    }

    /** Inference forward with a fused residual add: y = act(bn(x) + residual). */
    public synchronized void forwardInference(Tensor x, Tensor residual, Tensor y) {
        Geometry g = checkInput(x, "input");
        checkSameShape(x, residual, "residual");
        checkSameShape(x, y, "output");
        checkInferable(x, g);
        runInference(x, y, g, epilogue(residual));
    }

    /**
     * What inference needs beyond a valid input, checked before any device work: batch statistics
     * need more than one value per channel; running statistics written through {@link #deviceState()}
     * must be valid.
     */
    private void checkInferable(Tensor x, Geometry g) {
        if (g.valuesPerChannel() == 0) {
            return;
        }
        if (!trackRunningStats) {
            checkTrainable(x, g);
        } else if (runningStatsUnverified) {
            checkRunningStats(readDoubles(state.runningMean()), readDoubles(state.runningVar()),
                    " (written through deviceState())");
            runningStatsUnverified = false;
        }
    }

    private void runInference(Tensor x, Tensor y, Geometry g, Epilogue epilogue) {
        if (g.valuesPerChannel() == 0) {
            return;
        }
        if (!trackRunningStats) {
            ops.trainingForward(g, x.buffer(), y.buffer(), state, eps, RunningUpdate.NONE, epilogue);
            return;
        }
        ops.inferenceForward(g, x.buffer(), y.buffer(), state, eps, epilogue);
    }

    private void checkRunningStats(double[] mean, double[] var, String source) {
        if (mean != null) {
            for (int c = 0; c < mean.length; c++) {
                if (!Double.isFinite(mean[c])) {
                    throw new IllegalArgumentException("running_mean must be finite, got " + show(mean[c])
                            + " at channel " + c + source);
                }
            }
        }
        if (var != null) {
            for (int c = 0; c < var.length; c++) {
                if (!(var[c] >= 0) || var[c] == Double.POSITIVE_INFINITY) {
                    throw new IllegalArgumentException("running_var must be finite and >= 0, got " + show(var[c])
                            + " at channel " + c + source);
                }
            }
        }
    }

    /** A value as the layer holds it: float32's shortest form on a float32 layer. */
    private String show(double v) {
        return dtype == ElementType.FLOAT64 ? Double.toString(v) : Float.toString((float) v);
    }

    // ---------------------------------------------------------------- backward

    /**
     * Backward of the last training forward. {@code x} must be that forward's input; returns dx
     * and leaves dgamma / dbeta on the device ({@link #gradWeight()}, {@link #gradBias()}).
     */
    public synchronized Tensor backward(Tensor x, Tensor dy) {
        Geometry g = checkBackward(x, dy);
        checkNoActivation();
        Tensor dx = Tensor.zeros(backend, x.layout(), x.dtype(), x.shape());
        try {
            runBackward(x, dy, dx, g, Epilogue.NONE);
        } catch (RuntimeException e) {
            dx.close();
            throw e;
        }
        return dx;
    }

    public synchronized void backward(Tensor x, Tensor dy, Tensor dx) {
        Geometry g = checkBackward(x, dy);
        checkSameShape(x, dx, "dx");
        checkNoActivation();
        runBackward(x, dy, dx, g, Epilogue.NONE);
    }

    /**
     * Backward of a training forward with the layer's activation: {@code y} is that forward's output,
     * from which the ReLU mask is recomputed (y &gt; 0), so no mask is stored.
     */
    public synchronized void backward(Tensor x, Tensor y, Tensor dy, Tensor dx) {
        Geometry g = checkBackward(x, dy);
        checkSameShape(x, y, "y");
        checkSameShape(x, dx, "dx");
        runBackward(x, dy, dx, g, new Epilogue(activation == Activation.RELU, null, y.buffer(), null));
    }

    /**
     * Backward of a training forward with a residual: also writes the residual's gradient (dy through
     * the activation) to {@code dResidual}.
     */
    public synchronized void backward(Tensor x, Tensor y, Tensor dy, Tensor dx, Tensor dResidual) {
        Geometry g = checkBackward(x, dy);
        checkSameShape(x, y, "y");
        checkSameShape(x, dx, "dx");
        checkSameShape(x, dResidual, "dResidual");
        runBackward(x, dy, dx, g, new Epilogue(activation == Activation.RELU, null, y.buffer(), dResidual.buffer()));
    }

    private void checkNoActivation() {
        if (activation != Activation.NONE) {
            throw new IllegalStateException("this layer fuses " + activation + ": its backward needs the forward "
                    + "output y for the mask; call backward(x, y, dy, dx)");
        }
    }

    private Geometry checkBackward(Tensor x, Tensor dy) {
        Geometry g = checkInput(x, "input");
        checkSameShape(x, dy, "dy");
        if (savedGeometry == null) {
            throw new IllegalStateException("backward needs the statistics of a training forward; none has run");
        }
        if (!savedGeometry.equals(g)) {
            throw new IllegalArgumentException("backward expects the input of the last training forward, geometry "
                    + savedGeometry + ", got " + g + " (shape " + Arrays.toString(x.shape()) + ")");
        }
        return g;
    }

    private void runBackward(Tensor x, Tensor dy, Tensor dx, Geometry g, Epilogue epilogue) {
        if (g.valuesPerChannel() == 0) {
            backend.fill(gradWeight, 0.0f);
            backend.fill(gradBias, 0.0f);
            return;
        }
        ops.backward(g, x.buffer(), dy.buffer(), dx.buffer(), state, gradWeight, gradBias, savedFrozen, epilogue);
    }

    // ---------------------------------------------------------------- float[] conveniences

    /**
     * Uploads x (as the layer's dtype), runs the training forward, downloads y. Shape errors are
     * raised before the upload.
     */
    public float[] forwardTraining(float[] x, int... shape) {
        checkTrainable(shape, checkShape(x == null ? null : x.length, shape));
        try (Tensor xt = Tensor.upload(backend, x, Layout.CHANNELS_FIRST, dtype, shape);
             Tensor y = forwardTraining(xt)) {
            return y.download();
        }
    }

    /** {@link #forwardTraining(float[], int...)} with float64 host arrays (exact on a float64 layer). */
    public double[] forwardTraining(double[] x, int... shape) {
        checkTrainable(shape, checkShape(x == null ? null : x.length, shape));
        try (Tensor xt = Tensor.upload(backend, x, Layout.CHANNELS_FIRST, dtype, shape);
             Tensor y = forwardTraining(xt)) {
            return y.downloadDoubles();
        }
    }

    /** Uploads x, runs the inference forward, downloads y. Shape errors are raised before the upload. */
    public float[] forwardInference(float[] x, int... shape) {
        checkInferable(shape, checkShape(x == null ? null : x.length, shape));
        try (Tensor xt = Tensor.upload(backend, x, Layout.CHANNELS_FIRST, dtype, shape);
             Tensor y = forwardInference(xt)) {
            return y.download();
        }
    }

    /** {@link #forwardInference(float[], int...)} with float64 host arrays (exact on a float64 layer). */
    public double[] forwardInference(double[] x, int... shape) {
        checkInferable(shape, checkShape(x == null ? null : x.length, shape));
        try (Tensor xt = Tensor.upload(backend, x, Layout.CHANNELS_FIRST, dtype, shape);
             Tensor y = forwardInference(xt)) {
            return y.downloadDoubles();
        }
    }

    private void checkInferable(int[] shape, Geometry g) {
        if (!trackRunningStats && g.valuesPerChannel() != 0) {
            checkTrainable(shape, g);
        }
    }

    /** Uploads x and dy, runs backward, downloads dx (dgamma and dbeta via the getters). */
    public float[] backward(float[] x, float[] dy, int... shape) {
        checkShape(x == null ? null : x.length, shape);
        checkShape(dy == null ? null : dy.length, shape);
        try (Tensor xt = Tensor.upload(backend, x, Layout.CHANNELS_FIRST, dtype, shape);
             Tensor dyt = Tensor.upload(backend, dy, Layout.CHANNELS_FIRST, dtype, shape);
             Tensor dx = backward(xt, dyt)) {
            return dx.download();
        }
    }

    /** {@link #backward(float[], float[], int...)} with float64 host arrays (exact on a float64 layer). */
    public double[] backward(double[] x, double[] dy, int... shape) {
        checkShape(x == null ? null : x.length, shape);
        checkShape(dy == null ? null : dy.length, shape);
        try (Tensor xt = Tensor.upload(backend, x, Layout.CHANNELS_FIRST, dtype, shape);
             Tensor dyt = Tensor.upload(backend, dy, Layout.CHANNELS_FIRST, dtype, shape);
             Tensor dx = backward(xt, dyt)) {
            return dx.downloadDoubles();
        }
    }

    // ---------------------------------------------------------------- validation

    private Geometry checkInput(Tensor x, String what) {
        checkOpen();
        if (x == null) {
            throw new NullPointerException(what + " tensor is null");
        }
        x.checkOpen();
        if (x.backend() != backend) {
            throw new IllegalArgumentException(what + " tensor lives on " + x.backend().info().id()
                    + " but this layer lives on " + backend.info().id() + sameIdNote(x.backend()));
        }
        int[] shape = x.shape();
        Geometry g = Geometry.of(shape, x.layout());
        if (g.channels() != channels) {
            throw new IllegalArgumentException("expected " + what + " with " + channels + " channels (axis "
                    + x.layout().channelAxis(shape.length) + " of a " + x.layout() + " tensor), got shape "
                    + Arrays.toString(shape) + " with " + g.channels());
        }
        if (x.dtype().parameterType() != dtype) {
            throw new IllegalArgumentException(dtype == ElementType.FLOAT64
                    ? "this float64 layer expects FLOAT64 " + what + " tensors, got " + x.dtype()
                    : "expected " + what + " stored as FLOAT32, FLOAT16 or BFLOAT16 for this float32 layer, got "
                            + x.dtype() + " (FLOAT64 tensors need a float64 layer: BatchNorm.builder(" + channels
                            + ").dtype(ElementType.FLOAT64))");
        }
        return g;
    }

    private static void checkTrainable(Tensor x, Geometry g) {
        checkTrainable(x.shape(), g);
    }

    private static void checkTrainable(int[] shape, Geometry g) {
        if (g.valuesPerChannel() == 1) {
            throw new IllegalArgumentException("Expected more than 1 value per channel when training, got input size "
                    + Arrays.toString(shape));
        }
    }

    /**
     * The host-array conveniences' checks (channels-first), so that bad input never reaches the
     * device; {@code length} is the array's length, null for a null array.
     */
    private Geometry checkShape(Integer length, int[] shape) {
        checkOpen();
        if (length == null) {
            throw new NullPointerException("input array is null");
        }
        Geometry g = Geometry.of(shape, Layout.CHANNELS_FIRST);
        if (g.channels() != channels) {
            throw new IllegalArgumentException("expected input with " + channels + " channels (axis 1 of a "
                    + Layout.CHANNELS_FIRST + " tensor), got shape " + Arrays.toString(shape) + " with " + g.channels());
        }
        if (g.elements() != length) {
            throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " needs " + g.elements()
                    + " values, got an array of " + length);
        }
        return g;
    }

    private void checkSameShape(Tensor x, Tensor other, String what) {
        if (other == null) {
            throw new NullPointerException(what + " tensor is null");
        }
        other.checkOpen();
        if (other.backend() != backend) {
            throw new IllegalArgumentException(what + " tensor lives on " + other.backend().info().id()
                    + " but this layer lives on " + backend.info().id() + sameIdNote(other.backend()));
        }
        if (!Arrays.equals(x.shape(), other.shape()) || x.layout() != other.layout()) {
            throw new IllegalArgumentException(what + " must match the input: expected shape "
                    + Arrays.toString(x.shape()) + " " + x.layout() + ", got " + Arrays.toString(other.shape())
                    + " " + other.layout());
        }
        if (x.dtype() != other.dtype()) {
            throw new IllegalArgumentException(what + " must be stored like the input: expected " + x.dtype()
                    + ", got " + other.dtype());
        }
    }

    /** Two backends on one device share an id; say that the instances differ. */
    private String sameIdNote(Backend other) {
        return other.info().id().equals(backend.info().id()) ? " (a different backend instance)" : "";
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("BatchNorm layer has been closed");
        }
        if (backend.isClosed()) {
            throw new IllegalStateException("the layer's backend " + backend.info().id() + " has been closed");
        }
    }

    private float[] read(DeviceBuffer b) {
        float[] out = new float[channels];
        if (b.type() == ElementType.FLOAT64) {
            double[] wide = readDoubles(b);
            for (int c = 0; c < channels; c++) {
                out[c] = (float) wide[c];
            }
            return out;
        }
        backend.download(b, out);
        return out;
    }

    /** A per-channel buffer as doubles, exact for either precision. */
    private double[] readDoubles(DeviceBuffer b) {
        double[] out = new double[channels];
        if (b.type() == ElementType.FLOAT64) {
            backend.downloadDoubles(b, out);
            return out;
        }
        float[] narrow = new float[channels];
        backend.download(b, narrow);
        for (int c = 0; c < channels; c++) {
            out[c] = narrow[c];
        }
        return out;
    }

    /** Writes per-channel values in the buffer's type (a float32 buffer rounds each once). */
    private void writeDoubles(DeviceBuffer b, double[] values) {
        if (b.type() == ElementType.FLOAT64) {
            backend.uploadDoubles(b, values);
            return;
        }
        backend.upload(b, toFloats(values));
    }

    private static float[] toFloats(double[] values) {
        float[] out = new float[values.length];
        for (int i = 0; i < values.length; i++) {
            out[i] = (float) values[i];
        }
        return out;
    }

    private static double[] toDoubles(float[] values) {
        double[] out = new double[values.length];
        for (int i = 0; i < values.length; i++) {
            out[i] = values[i];
        }
        return out;
    }

    private int[] readInts(DeviceBuffer b) {
        int[] out = new int[channels];
        backend.downloadInts(b, out);
        return out;
    }

    private void write(DeviceBuffer b, double[] values, String name) {
        checkLength(values, name);
        writeDoubles(b, values);
    }

    // ---------------------------------------------------------------- state (downloads on request)

    public synchronized float[] weight() {
        checkOpen();
        return read(state.gamma());
    }

    public synchronized float[] bias() {
        checkOpen();
        return read(state.beta());
    }

    public synchronized float[] runningMean() {
        checkOpen();
        return read(state.runningMean());
    }

    public synchronized float[] runningVar() {
        checkOpen();
        return read(state.runningVar());
    }

    /** Batch mean saved by the last training forward. */
    public synchronized float[] savedMean() {
        checkOpen();
        return read(state.saveMean());
    }

    /** 1/sqrt(batch var + eps) saved by the last training forward (cuDNN's "inverse variance"). */
    public synchronized float[] savedInvstd() {
        checkOpen();
        return read(state.saveInvstd());
    }

    /** dgamma of the last backward. */
    public synchronized float[] gradWeight() {
        checkOpen();
        return read(gradWeight);
    }

    /** dbeta of the last backward. */
    public synchronized float[] gradBias() {
        checkOpen();
        return read(gradBias);
    }

    public synchronized double[] weightDouble() {
        checkOpen();
        return readDoubles(state.gamma());
    }

    public synchronized double[] biasDouble() {
        checkOpen();
        return readDoubles(state.beta());
    }

    public synchronized double[] runningMeanDouble() {
        checkOpen();
        return readDoubles(state.runningMean());
    }

    public synchronized double[] runningVarDouble() {
        checkOpen();
        return readDoubles(state.runningVar());
    }

    public synchronized double[] savedMeanDouble() {
        checkOpen();
        return readDoubles(state.saveMean());
    }

    public synchronized double[] savedInvstdDouble() {
        checkOpen();
        return readDoubles(state.saveInvstd());
    }

    public synchronized double[] gradWeightDouble() {
        checkOpen();
        return readDoubles(gradWeight);
    }

    public synchronized double[] gradBiasDouble() {
        checkOpen();
        return readDoubles(gradBias);
    }

    /** Per channel: training steps whose non-finite statistics were kept out of the running ones. */
    public synchronized int[] skippedUpdates() {
        checkOpen();
        return readInts(state.skippedUpdates());
    }

    public synchronized void setWeight(float[] gamma) {
        setWeight(gamma == null ? null : toDoubles(gamma));
    }

    /** Sets gamma; a float32 layer rounds each value to float32. */
    public synchronized void setWeight(double[] gamma) {
        checkOpen();
        if (!useScale) {
            throw new IllegalStateException("layer has no learnable scale (affine/useScale false): weight is fixed at 1");
        }
        write(state.gamma(), gamma, "weight");
    }

    public synchronized void setBias(float[] beta) {
        setBias(beta == null ? null : toDoubles(beta));
    }

    /** Sets beta; a float32 layer rounds each value to float32. */
    public synchronized void setBias(double[] beta) {
        checkOpen();
        if (!useShift) {
            throw new IllegalStateException("layer has no learnable shift (affine/useShift false): bias is fixed at 0");
        }
        write(state.beta(), beta, "bias");
    }

    /** Running mean; every value must be finite (checked before anything is written). */
    public synchronized void setRunningMean(float[] mean) {
        setRunningMean(mean == null ? null : toDoubles(mean));
    }

    /**
     * Running mean; every value must be finite after rounding to the layer's precision (checked
     * before anything is written).
     */
    public synchronized void setRunningMean(double[] mean) {
        checkOpen();
        checkLength(mean, "running_mean");
        double[] stored = asStored(mean);
        checkRunningStats(stored, null, "");
        writeDoubles(state.runningMean(), stored);
    }

    /** Running variance; every value must be finite and >= 0 (checked before anything is written). */
    public synchronized void setRunningVar(float[] var) {
        setRunningVar(var == null ? null : toDoubles(var));
    }

    /**
     * Running variance; every value must be finite and >= 0 after rounding to the layer's precision
     * (checked before anything is written).
     */
    public synchronized void setRunningVar(double[] var) {
        checkOpen();
        checkLength(var, "running_var");
        double[] stored = asStored(var);
        checkRunningStats(null, stored, "");
        writeDoubles(state.runningVar(), stored);
    }

    /** Values as the layer will hold them: rounded to float32 on a float32 layer (1e300 becomes Inf). */
    private double[] asStored(double[] values) {
        return dtype == ElementType.FLOAT64 ? values : toDoubles(toFloats(values));
    }

    private void checkLength(double[] values, String name) {
        if (values == null) {
            throw new NullPointerException(name + " is null");
        }
        if (values.length != channels) {
            throw new IllegalArgumentException(name + " should contain " + channels + " elements not " + values.length);
        }
    }

    /**
     * Device buffers of the parameters and statistics, for code that chains its own device work.
     * Writes to them bypass the setters' checks, so the next inference validates the running
     * statistics once (a download of 2C floats) before using them.
     */
    public synchronized BatchNormBuffers deviceState() {
        checkOpen();
        runningStatsUnverified = true;
        return state;
    }

    /** dgamma on the device. */
    public DeviceBuffer gradWeightBuffer() {
        checkOpen();
        return gradWeight;
    }

    /** dbeta on the device. */
    public DeviceBuffer gradBiasBuffer() {
        checkOpen();
        return gradBias;
    }

    public synchronized long numBatchesTracked() {
        return numBatchesTracked;
    }

    /** Sets the count of training batches seen, e.g. when restoring saved state; must be >= 0. */
    public synchronized void setNumBatchesTracked(long n) {
        checkOpen();
        if (n < 0) {
            throw new IllegalArgumentException("num_batches_tracked must be >= 0, got " + n);
        }
        numBatchesTracked = n;
    }

    public int channels() {
        return channels;
    }

    /** eps as the layer uses it: rounded to float32 on a float32 layer. */
    public double eps() {
        return eps;
    }

    /** FLOAT32 or FLOAT64: the layer's parameter, statistics and arithmetic precision. */
    public ElementType dtype() {
        return dtype;
    }

    /** Momentum in the layer's convention's own terms (see {@link Convention}), or null for the cumulative average. */
    public Double momentum() {
        return momentum;
    }

    public Convention convention() {
        return convention;
    }

    /** True when both gamma and beta are learnable (PyTorch's affine). */
    public boolean affine() {
        return useScale && useShift;
    }

    /** Whether gamma is learnable (Keras' scale). */
    public boolean useScale() {
        return useScale;
    }

    /** Whether beta is learnable (Keras' center). */
    public boolean useShift() {
        return useShift;
    }

    public Activation activation() {
        return activation;
    }

    /** Whether the training forward uses the running statistics (a frozen layer). */
    public boolean useGlobalStats() {
        return useGlobalStats;
    }

    public boolean trackRunningStats() {
        return trackRunningStats;
    }

    public Backend backend() {
        return backend;
    }

    public synchronized boolean isClosed() {
        return closed;
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        ops.close();
        for (DeviceBuffer b : new DeviceBuffer[]{state.gamma(), state.beta(), state.runningMean(), state.runningVar(),
                state.saveMean(), state.saveMeanLo(), state.saveInvstd(), state.skippedUpdates(), gradWeight, gradBias}) {
            b.close();
        }
    }
}
