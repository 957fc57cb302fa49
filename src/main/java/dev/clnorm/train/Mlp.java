package dev.clnorm.train;

import dev.clnorm.BatchNorm;
import dev.clnorm.Layout;
import dev.clnorm.Tensor;
import dev.clnorm.backend.Backend;
import dev.clnorm.backend.DeviceBuffer;
import dev.clnorm.backend.ElementType;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * A multi-layer perceptron trained entirely on one device:
 * {@code widths[0] -> Dense(widths[1]) -> [BatchNorm] -> ReLU -> ... -> Dense(widths[last])} with
 * softmax cross-entropy and Adam. Dense layers have no bias when batch norm follows them (the
 * batch norm's beta takes that role); the output layer always has one.
 *
 * <p>Parameters, gradients, Adam moments, batch-norm state and activations live on the device. A
 * training step ({@link #trainStep}) only enqueues device work: the batch is gathered on the device
 * from the resident data set, and the loss is added to a device accumulator that the host reads
 * when it asks ({@link #takeLoss()}). Evaluation uses the batch-norm running statistics.
 *
 * <p>Weights are stored (in, out) row-major, i.e. transposed with respect to PyTorch's
 * {@code nn.Linear.weight}; {@link #state()} and {@link #gradients()} return PyTorch's (out, in).
 * Initialisation follows {@code nn.Linear}'s default, U(-1/sqrt(in), 1/sqrt(in)) for weights and
 * biases, drawn from a {@link SplittableRandom} seeded by the caller, so a seed gives the same
 * network on every device. Batch norm uses PyTorch's defaults (eps 1e-5, momentum 0.1).
 */
public final class Mlp implements AutoCloseable {
    public static final double BN_EPS = 1e-5;
    public static final double BN_MOMENTUM = 0.1;

    /** Adam's hyperparameters (torch.optim.Adam defaults besides lr). */
    public record Adam(double lr, double beta1, double beta2, double eps) {
        public static Adam of(double lr) {
            return new Adam(lr, 0.9, 0.999, 1e-8);
        }
    }

    /** A named parameter or statistic in PyTorch's layout, downloaded from the device. */
    public record Named(String name, int[] shape, float[] values) {
    }

    private static final class Layer {
        final int in;
        final int out;
        final boolean last;
        DeviceBuffer w;
        DeviceBuffer gw;
        DeviceBuffer b;
        DeviceBuffer gb;
        BatchNorm bn;

        Layer(int in, int out, boolean last) {
            this.in = in;
            this.out = out;
            this.last = last;
        }
    }

    private record Param(String name, DeviceBuffer value, DeviceBuffer grad, DeviceBuffer m, DeviceBuffer v, int n) {
    }

    /** Activations and their gradients for one batch size. */
    private final class Workspace implements AutoCloseable {
        final int rows;
        final Tensor x;
        final DeviceBuffer y;
        final Tensor[] h;    // dense outputs (pre-BN), per layer; the last one holds the logits
        final Tensor[] a;    // activations after BN + ReLU (a[i] == h[i] without BN)
        final Tensor[] da;   // gradient w.r.t. a[i]
        final Tensor[] dh;   // gradient w.r.t. h[i] (BN backward output; == da[i] without BN)
        final Tensor dlogits;
        final List<AutoCloseable> owned = new ArrayList<>();

        Workspace(int rows) {
            this.rows = rows;
            int n = layers.size();
            h = new Tensor[n];
            a = new Tensor[n];
            da = new Tensor[n];
            dh = new Tensor[n];
            try {
                x = own(Tensor.zeros(backend, Layout.CHANNELS_FIRST, rows, widths[0]));
                y = own(backend.allocate(rows, ElementType.INT32));
                for (int i = 0; i < n; i++) {
                    Layer l = layers.get(i);
                    h[i] = own(Tensor.zeros(backend, Layout.CHANNELS_FIRST, rows, l.out));
                    if (l.last) {
                        continue;
                    }
                    a[i] = l.bn != null ? own(Tensor.zeros(backend, Layout.CHANNELS_FIRST, rows, l.out)) : h[i];
                    da[i] = own(Tensor.zeros(backend, Layout.CHANNELS_FIRST, rows, l.out));
                    dh[i] = l.bn != null ? own(Tensor.zeros(backend, Layout.CHANNELS_FIRST, rows, l.out)) : da[i];
                }
                dlogits = own(Tensor.zeros(backend, Layout.CHANNELS_FIRST, rows, widths[widths.length - 1]));
            } catch (RuntimeException e) {
                close();
                throw e;
            }
        }

        private <T extends AutoCloseable> T own(T t) {
            owned.add(t);
            return t;
        }

        @Override
        public void close() {
            for (AutoCloseable c : owned) {
                try {
                    c.close();
                } catch (Exception ignored) {
                    // closing scratch memory; nothing useful to report
                }
            }
            owned.clear();
        }
    }

    private final TrainOps ops;
    private final Backend backend;
    private final int[] widths;
    private final boolean batchNorm;
    private final Adam adam;
    private double lr;
    private final List<Layer> layers = new ArrayList<>();
    private final List<Param> params = new ArrayList<>();
    private final List<AutoCloseable> owned = new ArrayList<>();
    private final Map<Integer, Workspace> workspaces = new HashMap<>();
    private final DeviceBuffer lossAccum;
    private final DeviceBuffer evalLoss;
    private final DeviceBuffer evalCorrect;
    private long steps;
    private boolean closed;

    /**
     * A freshly initialised network on the ops' device.
     *
     * @param widths    layer widths, input first, classes last (at least 2 entries)
     * @param batchNorm whether each hidden dense layer is followed by batch norm
     * @param seed      seed of the weight initialisation
     */
    public Mlp(TrainOps ops, int[] widths, boolean batchNorm, long seed, Adam adam) {
        if (widths.length < 2) {
            throw new IllegalArgumentException("an MLP needs at least input and output widths, got "
                    + Arrays.toString(widths));
        }
        for (int w : widths) {
            if (w <= 0) {
                throw new IllegalArgumentException("layer widths must be positive, got " + Arrays.toString(widths));
            }
        }
        if (!(adam.lr() > 0) || Double.isInfinite(adam.lr())) {
            throw new IllegalArgumentException("learning rate must be a positive finite number, got " + adam.lr());
        }
        this.ops = ops;
        this.backend = ops.backend();
        this.widths = widths.clone();
        this.batchNorm = batchNorm;
        this.adam = adam;
        this.lr = adam.lr();
        try {
            SplittableRandom rng = new SplittableRandom(seed);
            for (int i = 0; i + 1 < widths.length; i++) {
                boolean last = i + 2 == widths.length;
                Layer l = new Layer(widths[i], widths[i + 1], last);
                layers.add(l);
                String fc = "fc" + (i + 1);
                double bound = 1.0 / Math.sqrt(l.in);
                float[] wTorch = uniform(rng, l.out * l.in, bound);
                l.w = upload(transpose(wTorch, l.out, l.in));
                l.gw = alloc(l.in * l.out);
                addParam(fc + ".weight", l.w, l.gw, l.in * l.out);
                if (last || !batchNorm) {
                    l.b = upload(uniform(rng, l.out, bound));
                    l.gb = alloc(l.out);
                    addParam(fc + ".bias", l.b, l.gb, l.out);
                }
                if (!last && batchNorm) {
                    l.bn = BatchNorm.builder(l.out).eps(BN_EPS).momentum(BN_MOMENTUM).backend(backend).build();
                    owned.add(l.bn);
                    String bn = "bn" + (i + 1);
                    addParam(bn + ".weight", l.bn.deviceState().gamma(), l.bn.gradWeightBuffer(), l.out);
                    addParam(bn + ".bias", l.bn.deviceState().beta(), l.bn.gradBiasBuffer(), l.out);
                }
            }
            lossAccum = alloc(1);
            evalLoss = alloc(1);
            evalCorrect = alloc(1);
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    private static float[] uniform(SplittableRandom rng, int n, double bound) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) ((rng.nextDouble() * 2 - 1) * bound);
        }
        return v;
    }

    /** (rows x cols) row-major to (cols x rows). */
    static float[] transpose(float[] m, int rows, int cols) {
        float[] t = new float[m.length];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                t[c * rows + r] = m[r * cols + c];
            }
        }
        return t;
    }

    private DeviceBuffer alloc(int n) {
        DeviceBuffer b = backend.allocate(n, ElementType.FLOAT32);
        owned.add(b);
        return b;
    }

    private DeviceBuffer upload(float[] values) {
        DeviceBuffer b = alloc(values.length);
        backend.upload(b, values);
        return b;
    }

    private void addParam(String name, DeviceBuffer value, DeviceBuffer grad, int n) {
        params.add(new Param(name, value, grad, alloc(n), alloc(n), n));
    }

    private Workspace workspace(int rows) {
        return workspaces.computeIfAbsent(rows, Workspace::new);
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("the model has been closed");
        }
    }

    public Backend backend() {
        return backend;
    }

    public boolean batchNorm() {
        return batchNorm;
    }

    public int[] widths() {
        return widths.clone();
    }

    /** The learning rate of the next Adam step: Adam's lr until {@link #setLearningRate} changes it. */
    public double learningRate() {
        return lr;
    }

    /**
     * Sets the learning rate of the following Adam steps (a schedule's rate for the next step; the
     * moments and the step count, hence the bias correction, carry on). Must be finite and &gt;= 0.
     */
    public void setLearningRate(double lr) {
        checkOpen();
        if (!(lr >= 0) || Double.isInfinite(lr)) {
            throw new IllegalArgumentException("learning rate must be a finite number >= 0, got " + lr);
        }
        this.lr = lr;
    }

    /** Adam steps taken. */
    public long steps() {
        return steps;
    }

    /**
     * Moves every dense-layer weight {@code ulps} float32 units in the last place, up and down in
     * turn: a perturbation the size of float32 rounding, to measure how such differences (e.g.
     * between devices that sum in different orders) grow during training. Downloads and uploads.
     */
    public void jitterWeights(int ulps) {
        checkOpen();
        for (Layer l : layers) {
            float[] w = download(l.w, l.in * l.out);
            for (int k = 0; k < w.length; k++) {
                for (int u = 0; u < ulps; u++) {
                    w[k] = (k & 1) == 0 ? Math.nextUp(w[k]) : Math.nextDown(w[k]);
                }
            }
            backend.upload(l.w, w);
        }
    }

    // ------------------------------------------------------------------ training

    /**
     * One training step on the batch {@code order[offset .. offset+rows)} of a data set resident on
     * the device: forward with batch statistics, softmax cross-entropy (its batch mean is added to
     * the device-side loss accumulator), backward, Adam. Enqueues device work only.
     */
    public void trainStep(DeviceBuffer images, DeviceBuffer labels, DeviceBuffer order, int offset, int rows) {
        checkOpen();
        if (rows < 2 && batchNorm) {
            throw new IllegalArgumentException("batch norm needs more than 1 sample per training batch, got " + rows);
        }
        Workspace ws = workspace(rows);
        ops.gather(images, labels, order, offset, rows, widths[0], ws.x.buffer(), ws.y);
        forward(ws, true);
        int classes = widths[widths.length - 1];
        int lastIndex = layers.size() - 1;
        ops.softmaxCrossEntropy(ws.h[lastIndex].buffer(), ws.y, rows, classes, ws.dlogits.buffer(), lossAccum);
        backward(ws);
        step();
    }

    private void forward(Workspace ws, boolean training) {
        Tensor input = ws.x;
        for (int i = 0; i < layers.size(); i++) {
            Layer l = layers.get(i);
            Tensor h = ws.h[i];
            ops.gemm(false, false, ws.rows, l.out, l.in, input.buffer(), l.w, 0.0f, h.buffer());
            if (l.b != null) {
                ops.addBias(h.buffer(), l.b, ws.rows, l.out);
            }
            if (l.last) {
                break;
            }
            Tensor a = ws.a[i];
            if (l.bn != null) {
                if (training) {
                    l.bn.forwardTraining(h, a);
                } else {
                    l.bn.forwardInference(h, a);
                }
            }
            ops.relu(a.buffer(), a.buffer(), ws.rows * l.out);
            input = a;
        }
    }

    private void backward(Workspace ws) {
        int rows = ws.rows;
        DeviceBuffer d = ws.dlogits.buffer();   // gradient w.r.t. the current layer's dense output
        for (int i = layers.size() - 1; i >= 0; i--) {
            Layer l = layers.get(i);
            DeviceBuffer input = i == 0 ? ws.x.buffer() : ws.a[i - 1].buffer();
            ops.gemm(true, false, l.in, l.out, rows, input, d, 0.0f, l.gw);
            if (l.gb != null) {
                ops.columnSums(d, l.gb, rows, l.out);
            }
            if (i == 0) {
                break;
            }
            Layer below = layers.get(i - 1);
            Tensor da = ws.da[i - 1];
            ops.gemm(false, true, rows, l.in, l.out, d, l.w, 0.0f, da.buffer());
            ops.reluBackward(ws.a[i - 1].buffer(), da.buffer(), da.buffer(), rows * l.in);
            if (below.bn != null) {
                below.bn.backward(ws.h[i - 1], da, ws.dh[i - 1]);
            }
            d = ws.dh[i - 1].buffer();
        }
    }

    private void step() {
        steps++;
        double bc1 = 1.0 - Math.pow(adam.beta1(), steps);
        double bc2 = 1.0 - Math.pow(adam.beta2(), steps);
        float stepSize = (float) (lr / bc1);
        float bc2Sqrt = (float) Math.sqrt(bc2);
        for (Param p : params) {
            ops.adam(p.value(), p.grad(), p.m(), p.v(), p.n(), (float) adam.beta1(), (float) adam.beta2(),
                    (float) adam.eps(), stepSize, bc2Sqrt);
        }
    }

    /**
     * The sum of the batch-mean losses added since the last call (one device-to-host transfer),
     * then resets the accumulator on the device.
     */
    public double takeLoss() {
        checkOpen();
        float[] v = new float[1];
        backend.download(lossAccum, v);
        backend.fill(lossAccum, 0.0f);
        return v[0];
    }

    // ------------------------------------------------------------------ inference

    /** Test-set metrics. */
    public record Evaluation(double loss, double accuracy, int correct, int count) {
    }

    /**
     * Inference-mode pass (batch-norm running statistics) over {@code order[0 .. count)} of a
     * resident data set in batches of at most {@code batch}; two downloads at the end.
     */
    public Evaluation evaluate(DeviceBuffer images, DeviceBuffer labels, DeviceBuffer order, int count, int batch) {
        checkOpen();
        if (count <= 0 || batch <= 0) {
            throw new IllegalArgumentException("evaluation needs count > 0 and batch > 0, got " + count + ", " + batch);
        }
        backend.fill(evalLoss, 0.0f);
        backend.fill(evalCorrect, 0.0f);
        int classes = widths[widths.length - 1];
        int last = layers.size() - 1;
        double lossSum = 0;
        int full = count / batch;
        int rest = count - full * batch;
        for (int b = 0; b < full; b++) {
            Workspace ws = workspace(batch);
            ops.gather(images, labels, order, b * batch, batch, widths[0], ws.x.buffer(), ws.y);
            forward(ws, false);
            ops.softmaxCrossEntropy(ws.h[last].buffer(), ws.y, batch, classes, ws.dlogits.buffer(), evalLoss);
            ops.countCorrect(ws.h[last].buffer(), ws.y, batch, classes, evalCorrect);
        }
        float[] v = new float[1];
        if (full > 0) {
            backend.download(evalLoss, v);
            lossSum += (double) v[0] * batch;
        }
        if (rest > 0) {
            Workspace ws = workspace(rest);
            backend.fill(evalLoss, 0.0f);
            ops.gather(images, labels, order, full * batch, rest, widths[0], ws.x.buffer(), ws.y);
            forward(ws, false);
            ops.softmaxCrossEntropy(ws.h[last].buffer(), ws.y, rest, classes, ws.dlogits.buffer(), evalLoss);
            ops.countCorrect(ws.h[last].buffer(), ws.y, rest, classes, evalCorrect);
            backend.download(evalLoss, v);
            lossSum += (double) v[0] * rest;
        }
        backend.download(evalCorrect, v);
        int correct = Math.round(v[0]);
        return new Evaluation(lossSum / count, (double) correct / count, correct, count);
    }

    /** Inference-mode logits of {@code rows} samples given on the host (uploads x, downloads the logits). */
    public float[] logits(float[] x, int rows) {
        checkOpen();
        Workspace ws = workspace(rows);
        ws.x.upload(x);
        forward(ws, false);
        return ws.h[layers.size() - 1].download();
    }

    /** Inference-mode predicted class of each of {@code rows} samples given on the host. */
    public int[] predict(float[] x, int rows) {
        checkOpen();
        Workspace ws = workspace(rows);
        ws.x.upload(x);
        forward(ws, false);
        ops.argmax(ws.h[layers.size() - 1].buffer(), rows, widths[widths.length - 1], ws.y);
        int[] out = new int[rows];
        backend.downloadInts(ws.y, out);
        return out;
    }

    // ------------------------------------------------------------------ state

    /**
     * Every parameter and batch-norm buffer with PyTorch's names and shapes ({@code fc1.weight}
     * (out, in), {@code bn1.running_var}, ...), downloaded. {@code bnN.num_batches_tracked} is
     * returned as a one-element array.
     */
    public Map<String, Named> state() {
        checkOpen();
        Map<String, Named> out = new LinkedHashMap<>();
        for (int i = 0; i < layers.size(); i++) {
            Layer l = layers.get(i);
            String fc = "fc" + (i + 1);
            out.put(fc + ".weight", new Named(fc + ".weight", new int[]{l.out, l.in},
                    transpose(download(l.w, l.in * l.out), l.in, l.out)));
            if (l.b != null) {
                out.put(fc + ".bias", new Named(fc + ".bias", new int[]{l.out}, download(l.b, l.out)));
            }
            if (l.bn != null) {
                String bn = "bn" + (i + 1);
                int[] s = {l.out};
                out.put(bn + ".weight", new Named(bn + ".weight", s, l.bn.weight()));
                out.put(bn + ".bias", new Named(bn + ".bias", s, l.bn.bias()));
                out.put(bn + ".running_mean", new Named(bn + ".running_mean", s, l.bn.runningMean()));
                out.put(bn + ".running_var", new Named(bn + ".running_var", s, l.bn.runningVar()));
                out.put(bn + ".num_batches_tracked", new Named(bn + ".num_batches_tracked", new int[0],
                        new float[]{l.bn.numBatchesTracked()}));
            }
        }
        return out;
    }

    /** The gradients of the last training step, named and shaped like {@link #state()}'s parameters. */
    public Map<String, Named> gradients() {
        checkOpen();
        Map<String, Named> out = new LinkedHashMap<>();
        for (int i = 0; i < layers.size(); i++) {
            Layer l = layers.get(i);
            String fc = "fc" + (i + 1);
            out.put(fc + ".weight", new Named(fc + ".weight", new int[]{l.out, l.in},
                    transpose(download(l.gw, l.in * l.out), l.in, l.out)));
            if (l.gb != null) {
                out.put(fc + ".bias", new Named(fc + ".bias", new int[]{l.out}, download(l.gb, l.out)));
            }
            if (l.bn != null) {
                String bn = "bn" + (i + 1);
                out.put(bn + ".weight", new Named(bn + ".weight", new int[]{l.out}, l.bn.gradWeight()));
                out.put(bn + ".bias", new Named(bn + ".bias", new int[]{l.out}, l.bn.gradBias()));
            }
        }
        return out;
    }

    /** num_batches_tracked of each batch-norm layer, by name (bn1, bn2, ...). */
    public Map<String, Long> batchesTracked() {
        Map<String, Long> out = new LinkedHashMap<>();
        for (int i = 0; i < layers.size(); i++) {
            if (layers.get(i).bn != null) {
                out.put("bn" + (i + 1), layers.get(i).bn.numBatchesTracked());
            }
        }
        return out;
    }

    private float[] download(DeviceBuffer b, int n) {
        float[] v = new float[n];
        backend.download(b, v);
        return v;
    }

    public boolean isClosed() {
        return closed;
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        for (Workspace ws : workspaces.values()) {
            ws.close();
        }
        workspaces.clear();
        for (AutoCloseable c : owned) {
            try {
                c.close();
            } catch (Exception ignored) {
                // releasing device memory; nothing useful to report
            }
        }
        owned.clear();
    }
}
