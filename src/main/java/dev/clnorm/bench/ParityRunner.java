package dev.clnorm.bench;

import dev.clnorm.BatchNorm;
import dev.clnorm.Geometry;
import dev.clnorm.Layout;
import dev.clnorm.ReferenceBatchNorm;
import dev.clnorm.Tensor;
import dev.clnorm.backend.Backend;
import dev.clnorm.backend.ElementType;
import dev.clnorm.backend.opencl.KernelStyle;
import dev.clnorm.backend.opencl.OpenClBackend;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.Consumer;

/**
 * Cross-device parity: identical seeded inputs through every device, each output compared with the
 * float64 {@link ReferenceBatchNorm} and with every other device.
 *
 * <p>Per shape: {@code steps} training steps (training forward, then backward) of one layer with
 * random gamma and beta, PyTorch defaults eps 1e-5 and momentum 0.1, on fresh random (x, dy) each
 * step. After the last step the runner downloads y, the batch statistics the layer saved for
 * backward, the running statistics (which have seen all {@code steps} batches), dx, dgamma and dbeta.
 *
 * <p><b>Tolerances</b> (PyTorch's CPU-vs-GPU module-test bound for a float32 result against a float64
 * reference, REFERENCE.md): {@value #TOLERANCE} absolute for y, dx, batch mean, batch invstd and the
 * running statistics. dgamma and dbeta are sums over the m values of a channel, so their float32
 * rounding grows with the size of the sum: {@value #TOLERANCE} + {@value #SUM_TOLERANCE} x sum of
 * |terms| per channel (|dy| for dbeta, |dy * xhat| for dgamma), the usual error bound of a float32
 * sum, as in BatchNormParityTest. The layer saves 1/sqrt(var + eps) ("invstd"), not the variance:
 * {@link Output#BATCH_INVSTD} is compared as saved; {@link Output#BATCH_VAR} is derived from it in
 * float64 as 1/invstd^2 - eps, whose error is about 2 (var + eps) times invstd's relative error, so
 * its bound is {@value #TOLERANCE} x max(1, var + eps): the plain absolute bound up to var + eps = 1,
 * the same relative accuracy above.
 *
 * <p><b>16-bit storage</b> ({@code dtype} FLOAT16 or BFLOAT16): x and dy are rounded to the storage
 * type on the host before anything sees them, so the reference works on exactly the device's input;
 * the layer computes in float32 and rounds y and dx once when it stores them, so those two get
 * {@value #TOLERANCE} + |reference| x half a unit in the last place of the storage type (2^-11 for
 * float16, 2^-8 for bfloat16, relative), as PrecisionTest. Statistics, running statistics, dgamma and
 * dbeta are float32 and keep their float32 bounds.
 *
 * <p><b>ULP distance</b> is counted in steps of the type the output is stored in (float32, or the
 * 16-bit type for y and dx of a 16-bit run) between the device value and the reference rounded to that
 * type, through the ordering of the bit patterns (so +0 and -0 are 0 apart and crossing zero counts the
 * steps on both sides); see {@link #ulpDistance}.
 *
 * <p>A {@code hook} sees each device's downloaded outputs before they are compared and may change
 * them: a test uses it to perturb one device's result and check that parity fails. It never touches
 * the library.
 */
public final class ParityRunner {
    /** Absolute bound for float32 results against float64 (PyTorch's CPU-vs-GPU module tests). */
    public static final double TOLERANCE = 2e-4;
    /** Per unit of sum of |terms|, added for dgamma and dbeta, which are sums. */
    public static final double SUM_TOLERANCE = 2e-6;
    public static final double EPS = 1e-5;
    public static final double MOMENTUM = 0.1;

    /** The outputs compared, in report order. */
    public enum Output {
        Y("y"), BATCH_MEAN("batch_mean"), BATCH_INVSTD("batch_invstd"), BATCH_VAR("batch_var"),
        RUNNING_MEAN("running_mean"), RUNNING_VAR("running_var"), DX("dx"), DGAMMA("dgamma"), DBETA("dbeta");

        private final String id;

        Output(String id) {
            this.id = id;
        }

        public String id() {
            return id;
        }
    }

    /**
     * One device's downloaded results for one shape, before comparison. {@code outputs} holds the
     * values as the device produced them, widened to float (BATCH_VAR is derived later from
     * BATCH_INVSTD); a hook may modify the arrays in place.
     *
     * @param index    position of the device in the list given to {@link #run}
     * @param deviceId the device's label in the results ({@link #labels})
     */
    public record DeviceRun(int index, String deviceId, int[] shape, Map<Output, float[]> outputs) {
    }

    /**
     * How results name each backend: its device id, with "/gpu-plans" or "/cpu-plans" for an OpenCL
     * backend forced to a launch-plan family, and "#2", "#3"... for repeats, so that every label is
     * unique.
     */
    public static List<String> labels(List<Backend> backends) {
        List<String> out = new ArrayList<>();
        for (Backend b : backends) {
            String label = b.info().id();
            if (b instanceof OpenClBackend cl && cl.kernelStyle() != KernelStyle.AUTO) {
                label += "/" + cl.kernelStyle().name().toLowerCase(Locale.ROOT) + "-plans";
            }
            String unique = label;
            for (int k = 2; out.contains(unique); k++) {
                unique = label + "#" + k;
            }
            out.add(unique);
        }
        return out;
    }

    private final long seed;
    private final int steps;
    private final Layout layout;
    private final ElementType dtype;
    private final Consumer<DeviceRun> hook;

    public ParityRunner(long seed, int steps, Layout layout) {
        this(seed, steps, layout, ElementType.FLOAT32, null);
    }

    /** float32 tensors, with a hook that sees (and may change) each device's outputs before comparison; for tests. */
    public ParityRunner(long seed, int steps, Layout layout, Consumer<DeviceRun> hook) {
        this(seed, steps, layout, ElementType.FLOAT32, hook);
    }

    /**
     * @param dtype storage type of x, y, dy and dx: FLOAT32, FLOAT16 or BFLOAT16
     * @param hook  sees (and may change) each device's outputs before comparison, or null; for tests
     */
    public ParityRunner(long seed, int steps, Layout layout, ElementType dtype, Consumer<DeviceRun> hook) {
        if (steps < 1) {
            throw new IllegalArgumentException("steps must be >= 1, got " + steps);
        }
        if (dtype == null || !dtype.isTensorStorage() || dtype == ElementType.FLOAT64) {
            // float64 layers are checked against the float64 reference by the test suite (Float64Test);
            // this tool's tolerances and ULP counts are float32's.
            throw new IllegalArgumentException("parity compares FLOAT32, FLOAT16 or BFLOAT16 storage, got " + dtype);
        }
        this.seed = seed;
        this.steps = steps;
        this.layout = layout;
        this.dtype = dtype;
        this.hook = hook;
    }

    /** Half a unit in the last place of a storage type, relative: the rounding of one store. */
    public static double storageStep(ElementType t) {
        return switch (t) {
            case FLOAT16 -> Math.scalb(1.0, -11);
            case BFLOAT16 -> Math.scalb(1.0, -8);
            default -> 0.0;
        };
    }

    /** The type an output is stored in: y and dx in the tensors' type, everything else float32. */
    private ElementType storedAs(Output o) {
        return o == Output.Y || o == Output.DX ? dtype : ElementType.FLOAT32;
    }

    /**
     * Checks that a shape can be used: rank 2..5, at most 2^31-1 elements, more than one value per
     * channel (every step trains). Throws IllegalArgumentException naming the shape otherwise.
     */
    public static Geometry check(int[] shape, Layout layout) {
        Geometry g = Geometry.of(shape, layout);
        if (g.valuesPerChannel() < 2) {
            throw new IllegalArgumentException("parity trains, so shape " + BenchRunner.shapeText(shape)
                    + " needs more than 1 value per channel, got " + g.valuesPerChannel());
        }
        return g;
    }

    /** Runs every shape on every backend (the backends stay open; the caller owns them). */
    public ParityResult run(List<Backend> backends, List<int[]> shapes, Consumer<String> progress) {
        for (int[] shape : shapes) {
            check(shape, layout);
        }
        List<String> labels = labels(backends);
        List<ParityResult.Comparison> comparisons = new ArrayList<>();
        List<ParityResult.PairComparison> pairs = new ArrayList<>();
        for (int[] shape : shapes) {
            String text = BenchRunner.shapeText(shape);
            Geometry g = Geometry.of(shape, layout);
            progress.accept(text + " float64 reference");
            Inputs in = Inputs.random(g, seedFor(shape), steps, dtype);
            Expected e = Expected.of(g, in, steps, dtype);
            List<Map<Output, double[]>> got = new ArrayList<>();
            for (int d = 0; d < backends.size(); d++) {
                Backend b = backends.get(d);
                progress.accept(text + " " + labels.get(d));
                Map<Output, float[]> raw = runOn(b, shape, g, in);
                if (hook != null) {
                    hook.accept(new DeviceRun(d, labels.get(d), shape.clone(), raw));
                }
                Map<Output, double[]> values = withDerived(raw);
                got.add(values);
                for (Output o : Output.values()) {
                    comparisons.add(compare(text, labels.get(d), b.info().name(), o, e.values.get(o), values.get(o),
                            e.tolerance.get(o), e.rule.get(o), storedAs(o)));
                }
            }
            for (int i = 0; i < backends.size(); i++) {
                for (int j = i + 1; j < backends.size(); j++) {
                    for (Output o : Output.values()) {
                        pairs.add(comparePair(text, labels.get(i), labels.get(j), o,
                                got.get(i).get(o), got.get(j).get(o), storedAs(o)));
                    }
                }
            }
        }
        return new ParityResult(seed, steps, layout.name(), dtypeName(dtype), comparisons, pairs);
    }

    /** float32, float16 or bfloat16. */
    public static String dtypeName(ElementType t) {
        return t.name().toLowerCase(Locale.ROOT);
    }

    private long seedFor(int[] shape) {
        return seed ^ (Arrays.hashCode(shape) * 0x9E3779B97F4A7C15L);
    }

    // ---------------------------------------------------------------- inputs and the reference

    /**
     * Per step x and dy, plus gamma and beta. x is Gaussian with, per channel, a mean in [-3, 3] and a
     * standard deviation in [0.5, 2] (fixed across steps, as in a real layer's input); dy is N(0, 1);
     * gamma is in [0.5, 1.5] and beta in [-1, 1]. x and dy are rounded to the storage type.
     */
    private record Inputs(float[][] x, float[][] dy, float[] gamma, float[] beta) {
        static Inputs random(Geometry g, long seed, int steps, ElementType dtype) {
            SplittableRandom r = new SplittableRandom(seed);
            int nc = g.channels();
            float[] gamma = new float[nc];
            float[] beta = new float[nc];
            double[] mean = new double[nc];
            double[] std = new double[nc];
            for (int c = 0; c < nc; c++) {
                gamma[c] = (float) (0.5 + r.nextDouble());
                beta[c] = (float) (r.nextDouble() * 2 - 1);
                mean[c] = (r.nextDouble() * 2 - 1) * 3;
                std[c] = 0.5 + 1.5 * r.nextDouble();
            }
            int n = (int) g.elements();
            float[][] x = new float[steps][n];
            float[][] dy = new float[steps][n];
            for (int k = 0; k < steps; k++) {
                for (int i = 0; i < n; i++) {
                    int c = (int) ((i / g.inner()) % nc);
                    x[k][i] = round((float) (mean[c] + std[c] * gaussian(r)), dtype);
                    dy[k][i] = round((float) gaussian(r), dtype);
                }
            }
            return new Inputs(x, dy, gamma, beta);
        }

        private static float round(float v, ElementType t) {
            return t == ElementType.FLOAT32 ? v : t.decode(t.encode(v));
        }

        private static double gaussian(SplittableRandom r) {
            return Math.sqrt(-2 * Math.log(1 - r.nextDouble())) * Math.cos(2 * Math.PI * r.nextDouble());
        }
    }

    private record Expected(Map<Output, double[]> values, Map<Output, double[]> tolerance, Map<Output, String> rule) {
        static Expected of(Geometry g, Inputs in, int steps, ElementType dtype) {
            int nc = g.channels();
            double[] gamma = ReferenceBatchNorm.toDouble(in.gamma());
            double[] beta = ReferenceBatchNorm.toDouble(in.beta());
            double[] rm = new double[nc];
            double[] rv = new double[nc];
            Arrays.fill(rv, 1.0);
            double[] x = null;
            ReferenceBatchNorm.Stats s = null;
            for (int k = 0; k < steps; k++) {
                x = ReferenceBatchNorm.toDouble(in.x()[k]);
                s = ReferenceBatchNorm.stats(x, g);
                ReferenceBatchNorm.updateRunning(rm, rv, s, MOMENTUM);
            }
            double[] dy = ReferenceBatchNorm.toDouble(in.dy()[steps - 1]);
            double[] invstd = new double[nc];
            for (int c = 0; c < nc; c++) {
                invstd[c] = 1.0 / Math.sqrt(s.var()[c] + EPS);
            }
            ReferenceBatchNorm.Grads grads = ReferenceBatchNorm.backward(x, dy, g, gamma, EPS);
            ReferenceBatchNorm.GradMagnitudes mag = ReferenceBatchNorm.gradMagnitudes(x, dy, g, EPS);

            Map<Output, double[]> v = new EnumMap<>(Output.class);
            v.put(Output.Y, ReferenceBatchNorm.normalize(x, g, s.mean(), s.var(), gamma, beta, EPS));
            v.put(Output.BATCH_MEAN, s.mean());
            v.put(Output.BATCH_INVSTD, invstd);
            v.put(Output.BATCH_VAR, s.var());
            v.put(Output.RUNNING_MEAN, rm);
            v.put(Output.RUNNING_VAR, rv);
            v.put(Output.DX, grads.dx());
            v.put(Output.DGAMMA, grads.dgamma());
            v.put(Output.DBETA, grads.dbeta());

            Map<Output, double[]> tol = new EnumMap<>(Output.class);
            Map<Output, String> rule = new EnumMap<>(Output.class);
            String plain = String.format(Locale.ROOT, "%.1e", TOLERANCE);
            for (Output o : Output.values()) {
                double[] t = new double[v.get(o).length];
                Arrays.fill(t, TOLERANCE);
                tol.put(o, t);
                rule.put(o, plain);
            }
            double[] tg = tol.get(Output.DGAMMA);
            double[] tb = tol.get(Output.DBETA);
            double[] tv = tol.get(Output.BATCH_VAR);
            for (int c = 0; c < nc; c++) {
                tg[c] = TOLERANCE + SUM_TOLERANCE * mag.dgamma()[c];
                tb[c] = TOLERANCE + SUM_TOLERANCE * mag.dbeta()[c];
                tv[c] = TOLERANCE * Math.max(1.0, s.var()[c] + EPS);
            }
            rule.put(Output.DGAMMA, plain + "+2e-6*sum|dy*xhat|");
            rule.put(Output.DBETA, plain + "+2e-6*sum|dy|");
            rule.put(Output.BATCH_VAR, plain + "*max(1,var+eps)");
            double step = storageStep(dtype);
            if (step > 0) {
                for (Output o : new Output[]{Output.Y, Output.DX}) {
                    double[] ref = v.get(o);
                    double[] t = tol.get(o);
                    for (int i = 0; i < t.length; i++) {
                        t[i] = TOLERANCE + Math.abs(ref[i]) * step;
                    }
                    rule.put(o, plain + "+|ref|*2^" + Math.getExponent(step) + " (" + dtypeName(dtype) + " store)");
                }
            }
            return new Expected(v, tol, rule);
        }
    }

    // ---------------------------------------------------------------- one device

    private Map<Output, float[]> runOn(Backend backend, int[] shape, Geometry g, Inputs in) {
        try (BatchNorm bn = BatchNorm.builder(g.channels()).eps(EPS).momentum(MOMENTUM).backend(backend).build();
             Tensor x = Tensor.zeros(backend, layout, dtype, shape);
             Tensor dy = Tensor.zeros(backend, layout, dtype, shape);
             Tensor y = Tensor.zeros(backend, layout, dtype, shape);
             Tensor dx = Tensor.zeros(backend, layout, dtype, shape)) {
            bn.setWeight(in.gamma());
            bn.setBias(in.beta());
            for (int k = 0; k < steps; k++) {
                x.upload(in.x()[k]);
                dy.upload(in.dy()[k]);
                bn.forwardTraining(x, y);
                bn.backward(x, dy, dx);
            }
            Map<Output, float[]> out = new EnumMap<>(Output.class);
            out.put(Output.Y, y.download());
            out.put(Output.BATCH_MEAN, bn.savedMean());
            out.put(Output.BATCH_INVSTD, bn.savedInvstd());
            out.put(Output.RUNNING_MEAN, bn.runningMean());
            out.put(Output.RUNNING_VAR, bn.runningVar());
            out.put(Output.DX, dx.download());
            out.put(Output.DGAMMA, bn.gradWeight());
            out.put(Output.DBETA, bn.gradBias());
            return out;
        }
    }

    /** Float32 outputs widened to double, plus BATCH_VAR = 1/invstd^2 - eps computed in float64. */
    private static Map<Output, double[]> withDerived(Map<Output, float[]> raw) {
        Map<Output, double[]> v = new EnumMap<>(Output.class);
        for (Map.Entry<Output, float[]> e : raw.entrySet()) {
            v.put(e.getKey(), ReferenceBatchNorm.toDouble(e.getValue()));
        }
        double[] invstd = v.get(Output.BATCH_INVSTD);
        double[] var = new double[invstd.length];
        for (int c = 0; c < var.length; c++) {
            var[c] = 1.0 / (invstd[c] * invstd[c]) - EPS;
        }
        v.put(Output.BATCH_VAR, var);
        return v;
    }

    // ---------------------------------------------------------------- comparisons

    static ParityResult.Comparison compare(String shape, String device, String deviceName, Output o, double[] expected,
                                           double[] actual, double[] tolerance, String rule, ElementType stored) {
        String unit = dtypeName(stored);
        if (expected.length != actual.length) {
            return new ParityResult.Comparison(shape, device, deviceName, o, actual.length,
                    Double.POSITIVE_INFINITY, Double.POSITIVE_INFINITY, Long.MAX_VALUE, unit, -1,
                    Double.POSITIVE_INFINITY, max(tolerance), rule + " (expected " + expected.length + " values, got "
                    + actual.length + ")", false);
        }
        double maxAbs = 0;
        double maxRel = 0;
        long maxUlp = 0;
        double worst = 0;
        int worstIndex = expected.length == 0 ? -1 : 0;
        for (int i = 0; i < expected.length; i++) {
            double err = Math.abs(actual[i] - expected[i]);
            if (Double.isNaN(err)) {
                err = Double.isNaN(expected[i]) && Double.isNaN(actual[i]) ? 0 : Double.POSITIVE_INFINITY;
            }
            maxAbs = Math.max(maxAbs, err);
            if (expected[i] != 0) {
                maxRel = Math.max(maxRel, err / Math.abs(expected[i]));
            }
            maxUlp = Math.max(maxUlp, ulpDistance(actual[i], expected[i], stored));
            double ratio = err / tolerance[i];
            if (ratio > worst) {
                worst = ratio;
                worstIndex = i;
            }
        }
        return new ParityResult.Comparison(shape, device, deviceName, o, expected.length, maxAbs, maxRel,
                maxUlp, unit, worstIndex, worst, max(tolerance), rule, worst <= 1.0);
    }

    private static ParityResult.PairComparison comparePair(String shape, String a, String b, Output o, double[] va,
                                                           double[] vb, ElementType stored) {
        double maxAbs = 0;
        long maxUlp = 0;
        for (int i = 0; i < Math.min(va.length, vb.length); i++) {
            double err = Math.abs(va[i] - vb[i]);
            if (Double.isNaN(err)) {
                err = Double.isNaN(va[i]) && Double.isNaN(vb[i]) ? 0 : Double.POSITIVE_INFINITY;
            }
            maxAbs = Math.max(maxAbs, err);
            maxUlp = Math.max(maxUlp, ulpDistance(va[i], vb[i], stored));
        }
        if (va.length != vb.length) {
            maxAbs = Double.POSITIVE_INFINITY;
            maxUlp = Long.MAX_VALUE;
        }
        return new ParityResult.PairComparison(shape, a, b, o, maxAbs, maxUlp, dtypeName(stored));
    }

    private static double max(double[] v) {
        double m = 0;
        for (double d : v) {
            m = Math.max(m, d);
        }
        return m;
    }

    /**
     * Number of float32 values between a and b: the difference of their positions in the ordering of
     * all floats (floatToIntBits, negatives mirrored so the order is monotonic; +0 and -0 share a
     * position). 0 for equal values, 1 for neighbours; Long.MAX_VALUE when exactly one is NaN, 0
     * when both are.
     */
    public static long ulpDistance(float a, float b) {
        if (Float.isNaN(a) || Float.isNaN(b)) {
            return Float.isNaN(a) && Float.isNaN(b) ? 0 : Long.MAX_VALUE;
        }
        return Math.abs(ordered(a) - ordered(b));
    }

    private static long ordered(float f) {
        int bits = Float.floatToIntBits(f);
        return bits >= 0 ? bits : (long) Integer.MIN_VALUE - bits;
    }

    /**
     * {@link #ulpDistance(float, float)} in steps of {@code type}: both values rounded to that type
     * (to nearest even; a device's stored value is already exact), then the distance between the
     * positions of their bit patterns in the type's ordering.
     */
    public static long ulpDistance(double a, double b, ElementType type) {
        if (type == ElementType.FLOAT32) {
            return ulpDistance((float) a, (float) b);
        }
        if (Double.isNaN(a) || Double.isNaN(b)) {
            return Double.isNaN(a) && Double.isNaN(b) ? 0 : Long.MAX_VALUE;
        }
        return Math.abs(ordered16(type.encode((float) a)) - ordered16(type.encode((float) b)));
    }

    private static long ordered16(short bits) {
        int v = bits & 0xffff;
        return (v & 0x8000) == 0 ? v : -(v & 0x7fff);
    }
}
