package dev.clnorm.cli;

import dev.clnorm.BatchNorm;
import dev.clnorm.Convention;
import dev.clnorm.Devices;
import dev.clnorm.Geometry;
import dev.clnorm.Layout;
import dev.clnorm.Tensor;
import dev.clnorm.backend.Backend;
import dev.clnorm.backend.ElementType;
import dev.clnorm.io.Npy;
import dev.clnorm.io.NpyArray;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * {@code clnorm run}: batch norm applied to {@code .npy} files. Reads x (and optionally gamma, beta,
 * running statistics and dy), runs one training forward, inference forward or training forward +
 * backward on a device, and writes the results as {@code .npy} files of the computation's precision
 * (float64 for float64 input on a device with double precision, else float32). Bad input is one line
 * on stderr ({@code clnorm: ...}) and exit code 2; {@code --verbose} adds the stack trace.
 */
@Command(name = "run", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Apply batch normalization to .npy files; the results go to --out as .npy:",
                "  train     y, batch_mean, batch_var (biased), running_mean, running_var",
                "  eval      y, normalised with the running statistics",
                "  backward  what train writes, plus dx, dgamma, dbeta for --dy",
                "Missing gamma/beta default to 1/0, running statistics to 0/1. Inputs may be",
                "float16, float32 or float64 in C order. --dtype picks the computation's precision (and the",
                "outputs' dtype): auto = float64 for float64 x on a device with double precision, else float32."})
final class RunCommand implements Callable<Integer> {

    enum Mode { TRAIN, EVAL, BACKWARD }

    enum Precision { AUTO, FLOAT32, FLOAT64 }

    enum LayoutName {
        NCHW(Layout.CHANNELS_FIRST), NHWC(Layout.CHANNELS_LAST);

        final Layout layout;

        LayoutName(Layout layout) {
            this.layout = layout;
        }
    }

    /** Case-insensitive enum options with the choices in the error message. */
    private static <E extends Enum<E>> E parseEnum(Class<E> type, String value) {
        for (E e : type.getEnumConstants()) {
            if (e.name().equalsIgnoreCase(value.trim())) {
                return e;
            }
        }
        StringBuilder choices = new StringBuilder();
        for (E e : type.getEnumConstants()) {
            choices.append(choices.length() == 0 ? "" : ", ").append(e.name().toLowerCase(Locale.ROOT));
        }
        throw new CommandLine.TypeConversionException("'" + value + "' is not one of " + choices);
    }

    static final class ModeConverter implements CommandLine.ITypeConverter<Mode> {
        @Override
        public Mode convert(String value) {
            return parseEnum(Mode.class, value);
        }
    }

    static final class PrecisionConverter implements CommandLine.ITypeConverter<Precision> {
        @Override
        public Precision convert(String value) {
            return parseEnum(Precision.class, value);
        }
    }

    static final class ConventionConverter implements CommandLine.ITypeConverter<Convention> {
        @Override
        public Convention convert(String value) {
            return parseEnum(Convention.class, value);
        }
    }

    static final class LayoutConverter implements CommandLine.ITypeConverter<LayoutName> {
        @Override
        public LayoutName convert(String value) {
            return parseEnum(LayoutName.class, value);
        }
    }

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--mode", required = true, converter = ModeConverter.class, paramLabel = "train|eval|backward",
            description = "train: training forward; eval: inference forward; backward: training forward + backward.")
    Mode mode;

    @Option(names = "--x", required = true, paramLabel = "x.npy",
            description = "Input, rank 2 to 5: (N,C[,spatial...]) for nchw, (N,[spatial...,]C) for nhwc.")
    Path x;

    @Option(names = "--gamma", paramLabel = "g.npy", description = "Scale, shape (C,); default ones.")
    Path gamma;

    @Option(names = "--beta", paramLabel = "b.npy", description = "Shift, shape (C,); default zeros.")
    Path beta;

    @Option(names = "--running-mean", paramLabel = "m.npy", description = "Running mean, shape (C,); default zeros.")
    Path runningMean;

    @Option(names = "--running-var", paramLabel = "v.npy", description = "Running variance, shape (C,); default ones.")
    Path runningVar;

    @Option(names = "--dy", paramLabel = "dy.npy", description = "Upstream gradient, the shape of x (--mode backward).")
    Path dy;

    @Option(names = "--eps", paramLabel = "E",
            description = "Added to the variance; default per convention (pytorch, onnx, cudnn 1e-5; keras 1e-3).")
    Double eps;

    @Option(names = "--momentum", paramLabel = "M",
            description = "Momentum in the convention's own sense: pytorch 0.1 and cudnn factor 0.1 weight the new "
                    + "batch; keras 0.99 and onnx 0.9 weight the old running value. Default per convention.")
    Double momentum;

    @Option(names = "--convention", converter = ConventionConverter.class, defaultValue = "pytorch",
            paramLabel = "pytorch|keras|onnx|cudnn",
            description = "Framework convention for eps, momentum and the running variance (default ${DEFAULT-VALUE}).")
    Convention convention;

    @Option(names = "--layout", converter = LayoutConverter.class, defaultValue = "nchw", paramLabel = "nchw|nhwc",
            description = "Channel axis: 1 (nchw, default) or last (nhwc, channels-last).")
    LayoutName layout;

    @Option(names = "--dtype", converter = PrecisionConverter.class, defaultValue = "auto",
            paramLabel = "auto|float32|float64",
            description = "Precision of the computation and of the outputs: float32, float64 (needs a device with "
                    + "double precision; the Java backend always has it), or auto (default): float64 when x.npy is "
                    + "float64 and the device has double precision, else float32.")
    Precision dtype;

    @Option(names = "--device", paramLabel = "D",
            description = "Device selector (auto, java, opencl, gpu, cpu, opencl:<p>:<d>); default -Dclnorm.device, "
                    + "CLNORM_DEVICE or auto.")
    String device;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "Output directory (created if needed).")
    Path out;

    @Option(names = "--verbose", description = "Print the stack trace of an error.")
    boolean verbose;

    @Override
    public Integer call() {
        PrintWriter err = spec.commandLine().getErr();
        try {
            return execute(spec.commandLine().getOut());
        } catch (IOException | UncheckedIOException | IllegalArgumentException | IllegalStateException
                 | ArithmeticException e) {
            err.println("clnorm: " + oneLine(message(e)));
            if (verbose) {
                e.printStackTrace(err);
            }
            err.flush();
            return 2;
        }
    }

    private static String message(Throwable e) {
        if (e instanceof UncheckedIOException && e.getCause() != null) {
            e = e.getCause();
        }
        if (e instanceof FileAlreadyExistsException) {
            return ((FileSystemException) e).getFile() + ": exists and is not a directory";
        }
        if (e instanceof FileSystemException) {
            FileSystemException f = (FileSystemException) e;
            String reason = f.getReason() != null ? f.getReason()
                    : e.getClass().getSimpleName().replace("Exception", "").replaceAll("([a-z])([A-Z])", "$1 $2")
                    .toLowerCase(Locale.ROOT);
            return f.getFile() + (f.getOtherFile() != null ? " -> " + f.getOtherFile() : "") + ": " + reason;
        }
        return e.getMessage() != null ? e.getMessage() : e.getClass().getSimpleName();
    }

    private static String oneLine(String s) {
        return s.replaceAll("\\s*[\\r\\n]+\\s*", " ").trim();
    }

    private int execute(PrintWriter stdout) throws IOException {
        if (mode == Mode.BACKWARD && dy == null) {
            throw new IllegalArgumentException("--mode backward needs --dy (the upstream gradient, shape of x)");
        }
        if (mode != Mode.BACKWARD && dy != null) {
            throw new IllegalArgumentException("--dy is only used with --mode backward");
        }
        double e = eps != null ? eps : convention.defaultEps();
        if (!(e > 0) || Double.isInfinite(e)) {
            throw new IllegalArgumentException("--eps must be finite and > 0, got " + e);
        }
        double m = momentum != null ? momentum : convention.defaultMomentum();
        if (!(m >= 0 && m <= 1)) {
            throw new IllegalArgumentException("--momentum must be in [0, 1], got " + m);
        }

        NpyArray xa = readFloating(x, "--x");
        int[] shape = xa.shape();
        Layout lay = layout.layout;
        Geometry g;
        try {
            g = Geometry.of(shape, lay);
        } catch (IllegalArgumentException ex) {
            throw new IllegalArgumentException(x + ": " + ex.getMessage());
        }
        int c = g.channels();
        if (c == 0) {
            throw new IllegalArgumentException(x + ": shape " + NpyArray.shapeString(shape) + " has no channels (axis "
                    + lay.channelAxis(shape.length) + " is 0)");
        }
        double[] gammaV = perChannel(gamma, "--gamma", c, shape, lay, 1);
        double[] betaV = perChannel(beta, "--beta", c, shape, lay, 0);
        double[] meanV = perChannel(runningMean, "--running-mean", c, shape, lay, 0);
        double[] varV = perChannel(runningVar, "--running-var", c, shape, lay, 1);
        for (int i = 0; i < c; i++) {
            if (!(varV[i] >= 0)) {
                throw new IllegalArgumentException(runningVar + ": running variance must be >= 0, got " + varV[i]
                        + " at channel " + i);
            }
        }
        double[] dyV = null;
        if (dy != null) {
            NpyArray dya = readFloating(dy, "--dy");
            if (!Arrays.equals(dya.shape(), shape)) {
                throw new IllegalArgumentException(dy + " has shape " + NpyArray.shapeString(dya.shape())
                        + ", expected the shape of x " + NpyArray.shapeString(shape));
            }
            dyV = dya.toDoubleArray();
        }
        if (Files.exists(out) && !Files.isDirectory(out)) {
            throw new IllegalArgumentException(out + ": exists and is not a directory");
        }
        Files.createDirectories(out);

        Map<String, NpyArray> outputs = new LinkedHashMap<>();
        String selector = device != null ? device : Devices.configuredSelector();
        String deviceId;
        ElementType precision;
        try (Backend backend = Devices.open(selector)) {
            deviceId = backend.info().id();
            precision = precision(xa, backend);
            boolean wide = precision == ElementType.FLOAT64;
            try (BatchNorm bn = BatchNorm.builder(c).convention(convention).eps(e).momentum(m).dtype(precision)
                    .backend(backend).build();
                 Tensor xt = Tensor.upload(backend, xa.toDoubleArray(), lay, precision, shape)) {
                xa = null;  // let the host copy go
                bn.setWeight(gammaV);
                bn.setBias(betaV);
                bn.setRunningMean(meanV);
                bn.setRunningVar(varV);
                if (mode == Mode.EVAL) {
                    try (Tensor y = bn.forwardInference(xt)) {
                        outputs.put("y", array(y.downloadDoubles(), wide, shape));
                    }
                } else {
                    try (Tensor y = bn.forwardTraining(xt)) {
                        outputs.put("y", array(y.downloadDoubles(), wide, shape));
                    }
                    double[][] stats = batchStats(bn, g);
                    outputs.put("batch_mean", array(stats[0], wide, c));
                    outputs.put("batch_var", array(stats[1], wide, c));
                    outputs.put("running_mean", array(bn.runningMeanDouble(), wide, c));
                    outputs.put("running_var", array(bn.runningVarDouble(), wide, c));
                    if (mode == Mode.BACKWARD) {
                        try (Tensor dyt = Tensor.upload(backend, dyV, lay, precision, shape);
                             Tensor dx = bn.backward(xt, dyt)) {
                            outputs.put("dx", array(dx.downloadDoubles(), wide, shape));
                        }
                        outputs.put("dgamma", array(bn.gradWeightDouble(), wide, c));
                        outputs.put("dbeta", array(bn.gradBiasDouble(), wide, c));
                    }
                }
            }
        }

        String typeName = precision == ElementType.FLOAT64 ? "float64" : "float32";
        stdout.printf(Locale.ROOT, "clnorm run: mode %s, convention %s (eps %s, momentum %s), layout %s, device %s, "
                        + "x %s, computed in %s%n", name(mode), name(convention), plain(e), plain(m), name(layout),
                deviceId, NpyArray.shapeString(shape), typeName);
        for (Map.Entry<String, NpyArray> o : outputs.entrySet()) {
            Path file = out.resolve(o.getKey() + ".npy");
            Npy.write(file, o.getValue());
            stdout.println("wrote " + file + " " + NpyArray.shapeString(o.getValue().shape()) + " " + typeName);
        }
        stdout.flush();
        return 0;
    }

    /** The layer's precision for --dtype on this device, checked before any device work. */
    private ElementType precision(NpyArray xa, Backend backend) {
        boolean fp64 = backend.info().fp64();
        return switch (dtype) {
            case FLOAT32 -> ElementType.FLOAT32;
            case FLOAT64 -> {
                if (!fp64) {
                    throw new IllegalArgumentException("--dtype float64 needs double precision (cl_khr_fp64), which "
                            + backend.info().describe() + " does not report; use --dtype float32 or another --device");
                }
                yield ElementType.FLOAT64;
            }
            case AUTO -> xa.dtype() == NpyArray.DType.FLOAT64 && fp64 ? ElementType.FLOAT64 : ElementType.FLOAT32;
        };
    }

    /** An output array in the computation's precision (float32 values are exact in float32). */
    private static NpyArray array(double[] values, boolean wide, int... shape) {
        if (wide) {
            return NpyArray.ofFloat64(values, shape);
        }
        float[] narrow = new float[values.length];
        for (int i = 0; i < values.length; i++) {
            narrow[i] = (float) values[i];
        }
        return NpyArray.ofFloat32(narrow, shape);
    }

    private static String plain(double v) {
        return new java.math.BigDecimal(Double.toString(v)).stripTrailingZeros().toPlainString();
    }

    private static String name(Enum<?> e) {
        return e.name().toLowerCase(Locale.ROOT);
    }

    /**
     * batch_mean and the biased batch_var of the last training forward, from the device's saved
     * statistics. On a float32 layer the mean is saved as a float pair (hi + lo), summed here in
     * float64 and rounded once to float32. The variance is recovered from invstd = 1/sqrt(var + eps)
     * as 1/invstd^2 - eps in float64: with a float32 invstd, var + eps carries about 2 float32
     * rounding errors (plus the device's rsqrt error, a few ulp at most), i.e. a relative error of
     * about 1e-7 of (var + eps); for var much larger than eps that is float32 precision, for var near
     * or below eps the absolute error is ~1e-7 * eps. A float64 layer's invstd gives the same with
     * float64 roundings (about 1e-16). Clamped at 0. An empty batch (no values per channel) has no
     * statistics: NaN.
     */
    private static double[][] batchStats(BatchNorm bn, Geometry g) {
        int c = bn.channels();
        double[] mean = new double[c];
        double[] var = new double[c];
        if (g.valuesPerChannel() == 0) {
            Arrays.fill(mean, Double.NaN);
            Arrays.fill(var, Double.NaN);
            return new double[][]{mean, var};
        }
        boolean wide = bn.dtype() == ElementType.FLOAT64;
        double eps = bn.eps();
        double[] hi = bn.savedMeanDouble();
        double[] lo = new double[c];
        if (!wide) {
            float[] l = new float[c];
            bn.backend().download(bn.deviceState().saveMeanLo(), l);
            for (int i = 0; i < c; i++) {
                lo[i] = l[i];
            }
        }
        double[] invstd = bn.savedInvstdDouble();
        for (int i = 0; i < c; i++) {
            mean[i] = wide ? hi[i] : (float) (hi[i] + lo[i]);
            double s = invstd[i];
            double v = 1.0 / (s * s) - eps;
            var[i] = Double.isNaN(v) ? Double.NaN : Math.max(0.0, v);
            if (!wide) {
                var[i] = (float) var[i];
            }
        }
        return new double[][]{mean, var};
    }

    private static NpyArray readFloating(Path file, String option) throws IOException {
        NpyArray a = Npy.read(file);
        if (!a.dtype().isFloating()) {
            throw new IllegalArgumentException(file + " (" + option + "): dtype " + a.dtype()
                    + " is not supported here; use float16, float32 or float64");
        }
        return a;
    }

    private double[] perChannel(Path file, String option, int c, int[] xShape, Layout lay, double fill)
            throws IOException {
        if (file == null) {
            double[] v = new double[c];
            Arrays.fill(v, fill);
            return v;
        }
        NpyArray a = readFloating(file, option);
        if (a.rank() != 1 || a.shape()[0] != c) {
            throw new IllegalArgumentException(file + " (" + option + ") has shape " + NpyArray.shapeString(a.shape())
                    + ", expected (" + c + ",): one value per channel of x " + NpyArray.shapeString(xShape)
                    + " (channels on axis " + lay.channelAxis(xShape.length) + ", layout " + name(layout) + ")");
        }
        return a.toDoubleArray();
    }
}
