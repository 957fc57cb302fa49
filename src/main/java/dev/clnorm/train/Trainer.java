package dev.clnorm.train;

import dev.clnorm.backend.Backend;
import dev.clnorm.backend.DeviceBuffer;
import dev.clnorm.backend.ElementType;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * The training loop: epochs of shuffled mini-batches on one device, evaluation after each epoch.
 * The learning rate of each step is the base rate times the {@link LrSchedule}'s factor, set on the
 * host before the step is enqueued (a kernel argument: nothing is read back).
 *
 * <p>Both data sets are uploaded to the device once, together with the shuffled sample order of
 * every epoch (drawn up front from the seed). During an epoch the host only enqueues steps; the
 * one thing read back is the loss accumulator, every {@code lossEvery} steps. The last incomplete
 * batch of each epoch is dropped (60,000 = 468 x 128 + 96), as with PyTorch's {@code drop_last};
 * the reshuffle makes every sample count across epochs.
 */
public final class Trainer {
    private Trainer() {
    }

    /**
     * @param epochs    passes over the training set
     * @param batch     training batch size
     * @param lr        Adam learning rate
     * @param seed      seeds the weight initialisation and the shuffles
     * @param lossEvery read the loss accumulator every this many steps
     * @param evalBatch batch size of the (inference-mode) evaluation
     * @param widths    layer widths, inputs first and classes last
     * @param jitterUlps when > 0, every initial dense weight is moved this many float32 units in the last
     *                  place (see {@link Mlp#jitterWeights}): measures how much float32 rounding
     *                  differences grow during training
     * @param adamEps   Adam's epsilon (PyTorch's default 1e-8)
     * @param schedule  how the learning rate changes over the run's steps, {@code lr} being the base
     *                  (first step's) rate
     */
    public record Options(int epochs, int batch, double lr, long seed, int lossEvery, int evalBatch, int[] widths,
                          int jitterUlps, double adamEps, LrSchedule schedule) {
        /** A constant learning rate, no jitter, PyTorch's Adam eps. */
        public Options(int epochs, int batch, double lr, long seed, int lossEvery, int evalBatch, int[] widths) {
            this(epochs, batch, lr, seed, lossEvery, evalBatch, widths, 0, 1e-8, LrSchedule.CONSTANT);
        }

        public Options {
            if (schedule == null) {
                throw new IllegalArgumentException("the learning-rate schedule is null (use LrSchedule.CONSTANT)");
            }
            if (!(adamEps > 0) || Double.isInfinite(adamEps)) {
                throw new IllegalArgumentException("Adam's eps must be a positive finite number, got " + adamEps);
            }
            if (jitterUlps < 0) {
                throw new IllegalArgumentException("jitterUlps must be >= 0, got " + jitterUlps);
            }
            if (epochs < 1 || batch < 2 || lossEvery < 1 || evalBatch < 1) {
                throw new IllegalArgumentException("need epochs >= 1, batch >= 2, lossEvery >= 1 and evalBatch >= 1, got "
                        + epochs + ", " + batch + ", " + lossEvery + ", " + evalBatch);
            }
            if (!(lr > 0) || Double.isInfinite(lr)) {
                throw new IllegalArgumentException("learning rate must be a positive finite number, got " + lr);
            }
        }
    }

    /** Mean training loss of the steps [step - steps, step), at {@code epoch} epochs into the run. */
    public record LossPoint(double epoch, long step, int steps, double loss) {
    }

    public record EpochResult(int epoch, double trainLoss, Mlp.Evaluation test, double trainSeconds,
                              double evalSeconds, int steps) {
    }

    /** One training run of one variant on one device. */
    public record Run(String variant, String device, String deviceName, double lr, List<LossPoint> curve,
                      List<EpochResult> epochs, Map<String, Mlp.Named> state, String gemm) {
        public EpochResult last() {
            return epochs.get(epochs.size() - 1);
        }
    }

    /** Progress callbacks (all on the training thread). */
    public interface Listener {
        default void epochStart(String variant, int epoch, int epochs, int steps) {
        }

        /** After each step is enqueued. */
        default void stepDone() {
        }

        default void loss(LossPoint point) {
        }

        default void epochEnd(String variant, EpochResult result) {
        }
    }

    /** Training and test sets resident on one device, plus the shuffled order of every epoch. */
    public static final class Resident implements AutoCloseable {
        final Backend backend;
        final Dataset train;
        final Dataset test;
        final DeviceBuffer trainImages;
        final DeviceBuffer trainLabels;
        final DeviceBuffer testImages;
        final DeviceBuffer testLabels;
        final DeviceBuffer testOrder;
        final DeviceBuffer orders;
        final int epochs;
        private final List<DeviceBuffer> owned = new ArrayList<>();

        /** Uploads both sets and {@code epochs} shuffles of the training indices drawn from {@code seed}. */
        public Resident(Backend backend, Dataset train, Dataset test, int epochs, long seed) {
            if (train.features() != test.features() || train.classes() != test.classes()) {
                throw new IllegalArgumentException("training and test sets differ in features or classes");
            }
            this.backend = backend;
            this.train = train;
            this.test = test;
            this.epochs = epochs;
            try {
                trainImages = floats(train.images());
                trainLabels = ints(train.labels());
                testImages = floats(test.images());
                testLabels = ints(test.labels());
                int[] identity = new int[test.count()];
                for (int i = 0; i < identity.length; i++) {
                    identity[i] = i;
                }
                testOrder = ints(identity);
                orders = ints(shuffles(train.count(), epochs, seed));
            } catch (RuntimeException e) {
                close();
                throw e;
            }
        }

        private DeviceBuffer floats(float[] v) {
            DeviceBuffer b = backend.allocate(v.length, ElementType.FLOAT32);
            owned.add(b);
            backend.upload(b, v);
            return b;
        }

        private DeviceBuffer ints(int[] v) {
            DeviceBuffer b = backend.allocate(v.length, ElementType.INT32);
            owned.add(b);
            backend.uploadInts(b, v);
            return b;
        }

        @Override
        public void close() {
            owned.forEach(DeviceBuffer::close);
            owned.clear();
        }
    }

    /** {@code epochs} Fisher-Yates shuffles of 0..n-1, concatenated; the same for every device and variant. */
    static int[] shuffles(int n, int epochs, long seed) {
        SplittableRandom rng = new SplittableRandom(seed ^ 0x5DEECE66DL);
        int[] all = new int[n * epochs];
        for (int e = 0; e < epochs; e++) {
            int base = e * n;
            for (int i = 0; i < n; i++) {
                all[base + i] = i;
            }
            for (int i = n - 1; i > 0; i--) {
                int j = rng.nextInt(i + 1);
                int t = all[base + i];
                all[base + i] = all[base + j];
                all[base + j] = t;
            }
        }
        return all;
    }

    /** Trains one variant (batch norm on or off) from scratch; the model is closed before returning. */
    public static Run train(TrainOps ops, Resident data, boolean batchNorm, Options o, Listener listener) {
        if (data.epochs < o.epochs()) {
            throw new IllegalArgumentException("resident data holds shuffles for " + data.epochs + " epochs, not "
                    + o.epochs());
        }
        int[] widths = o.widths();
        if (widths[0] != data.train.features() || widths[widths.length - 1] != data.train.classes()) {
            throw new IllegalArgumentException("network widths must start with " + data.train.features()
                    + " inputs and end with " + data.train.classes() + " classes");
        }
        int stepsPerEpoch = data.train.count() / o.batch();
        if (stepsPerEpoch < 1) {
            throw new IllegalArgumentException("the training set (" + data.train.count() + " samples) is smaller than "
                    + "one batch of " + o.batch());
        }
        String variant = batchNorm ? "bn" : "plain";
        Backend backend = ops.backend();
        List<LossPoint> curve = new ArrayList<>();
        List<EpochResult> epochs = new ArrayList<>();
        try (Mlp model = new Mlp(ops, widths, batchNorm, o.seed(), new Mlp.Adam(o.lr(), 0.9, 0.999, o.adamEps()))) {
            if (o.jitterUlps() > 0) {
                model.jitterWeights(o.jitterUlps());
            }
            model.takeLoss();  // a clean accumulator
            long step = 0;
            long totalSteps = (long) stepsPerEpoch * o.epochs();
            for (int epoch = 1; epoch <= o.epochs(); epoch++) {
                listener.epochStart(variant, epoch, o.epochs(), stepsPerEpoch);
                backend.finish();
                long t0 = System.nanoTime();
                double epochLoss = 0;
                int pending = 0;
                int orderBase = (epoch - 1) * data.train.count();
                for (int s = 0; s < stepsPerEpoch; s++) {
                    model.setLearningRate(o.lr() * o.schedule().factor(step, totalSteps));
                    model.trainStep(data.trainImages, data.trainLabels, data.orders, orderBase + s * o.batch(),
                            o.batch());
                    step++;
                    pending++;
                    if (pending == o.lossEvery() || s == stepsPerEpoch - 1) {
                        double sum = model.takeLoss();
                        epochLoss += sum;
                        LossPoint p = new LossPoint(epoch - 1 + (s + 1) / (double) stepsPerEpoch, step, pending,
                                sum / pending);
                        curve.add(p);
                        listener.loss(p);
                        pending = 0;
                    }
                    listener.stepDone();
                }
                backend.finish();
                double trainSeconds = (System.nanoTime() - t0) / 1e9;
                long t1 = System.nanoTime();
                Mlp.Evaluation test = model.evaluate(data.testImages, data.testLabels, data.testOrder,
                        data.test.count(), o.evalBatch());
                double evalSeconds = (System.nanoTime() - t1) / 1e9;
                EpochResult r = new EpochResult(epoch, epochLoss / stepsPerEpoch, test, trainSeconds, evalSeconds,
                        stepsPerEpoch);
                epochs.add(r);
                listener.epochEnd(variant, r);
            }
            return new Run(variant, backend.info().id(), backend.info().name(), o.lr(), curve, epochs, model.state(),
                    ops.gemmDescription());
        }
    }
}
