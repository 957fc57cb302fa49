package dev.clnorm.cli;

import dev.clnorm.Devices;
import dev.clnorm.Layout;
import dev.clnorm.bench.BenchRunner;
import dev.clnorm.bench.ParityResult;
import dev.clnorm.bench.ParityRunner;
import dev.clnorm.backend.Backend;
import dev.clnorm.backend.ElementType;
import dev.clnorm.backend.opencl.ClDevice;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.function.Consumer;

/**
 * {@code clnorm parity}: the same seeded inputs through every device, every output compared with the
 * float64 reference and with the other devices. Exit code 0 when every device is within tolerance,
 * 1 when any is not, 2 for bad arguments (unknown device, bad shape, unsupported dtype or layout).
 */
@Command(name = "parity", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Run identical seeded inputs through every device for a few training steps and compare y, the "
                + "batch mean, invstd and variance, the running mean and variance, dx, dgamma and dbeta with the "
                + "float64 reference and with each other device: max absolute and relative error and max ULP "
                + "distance per output and device.",
                "Exit code: 0 all within tolerance, 1 a device exceeded its tolerance, 2 bad arguments."})
public final class ParityCommand implements Callable<Integer> {

    /** Storage types of the tensors the layer supports. */
    static final Map<String, ElementType> DTYPES = Map.of("float32", ElementType.FLOAT32, "float16",
            ElementType.FLOAT16, "bfloat16", ElementType.BFLOAT16);

    /** Default shapes: NCHW conv, MLP, long axis with few channels, rank 5. Small: the reference is float64 and slow. */
    static final List<String> DEFAULT_SHAPES = List.of("8x16x12x12", "64x32", "4x6x1000", "2x3x4x5x6");

    @Option(names = "--devices", split = ",", paramLabel = "SELECTOR",
            description = "Device selectors (default: java and every OpenCL device).")
    List<String> devices;

    @Option(names = "--shapes", split = ",", paramLabel = "SHAPE",
            description = "Shapes like 8x16x12x12,64x32, each the tensor's own shape in --layout (default: "
                    + "8x16x12x12, 64x32, 4x6x1000, 2x3x4x5x6).")
    List<String> shapes;

    @Option(names = "--layout", defaultValue = "nchw", paramLabel = "nchw|nhwc",
            description = "Channel axis 1 (nchw, default) or last (nhwc).")
    String layout;

    @Option(names = "--dtype", defaultValue = "float32", paramLabel = "float32|float16|bfloat16",
            description = "Storage type of x, y, dy and dx (default float32); 16-bit storage computes in float32 "
                    + "and rounds y and dx once when it stores them.")
    String dtype;

    @Option(names = "--seed", defaultValue = "1", description = "Random seed of the inputs (default ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--steps", defaultValue = "3",
            description = "Training steps before the comparison; the running statistics have seen them all "
                    + "(default ${DEFAULT-VALUE}).")
    int steps;

    @Option(names = "--json", paramLabel = "FILE", description = "Also write the results as JSON ('-': to stdout, "
            + "instead of the table).")
    String json;

    @Option(names = "--csv", paramLabel = "FILE", description = "Also write the per-device results as CSV ('-': to "
            + "stdout, instead of the table).")
    String csv;

    private final Consumer<ParityRunner.DeviceRun> hook;

    public ParityCommand() {
        this(null);
    }

    /**
     * A command whose runner passes every device's outputs through {@code hook} before comparing
     * them (see {@link ParityRunner}): for tests that perturb a device's result on purpose.
     */
    public ParityCommand(Consumer<ParityRunner.DeviceRun> hook) {
        this.hook = hook;
    }

    @Override
    public Integer call() {
        Layout lay = parseLayout(layout);
        String type = dtype.trim().toLowerCase(Locale.ROOT);
        ElementType storage = DTYPES.get(type);
        if (storage == null) {
            throw new IllegalArgumentException("--dtype " + dtype + " is not supported; supported storage types: "
                    + "float32, float16, bfloat16");
        }
        if (steps < 1) {
            throw new IllegalArgumentException("--steps must be >= 1, got " + steps);
        }
        List<int[]> shapeList = new ArrayList<>();
        for (String s : shapes == null ? DEFAULT_SHAPES : shapes) {
            int[] shape = BenchRunner.parseShape(s);
            ParityRunner.check(shape, lay);
            shapeList.add(shape);
        }
        List<String> selectors = new ArrayList<>();
        if (devices == null) {
            selectors.add("java");
            for (ClDevice d : Devices.openClDevices()) {
                selectors.add(d.info().id());
            }
        } else {
            selectors.addAll(devices);
        }

        List<Backend> backends = new ArrayList<>();
        try {
            for (String s : selectors) {
                backends.add(Devices.open(s));  // an unknown selector throws here, before any work
            }
            long started = System.nanoTime();
            int[] done = {0};
            int total = shapeList.size() * (backends.size() + 1);
            ParityRunner runner = new ParityRunner(seed, steps, lay, storage, hook);
            ParityResult result = runner.run(backends, shapeList,
                    what -> Progress.show(Math.min(++done[0], total), total, started, what));
            Progress.clear();
            boolean tableToStdout = !"-".equals(json) && !"-".equals(csv);
            if (tableToStdout) {
                System.out.printf(Locale.ROOT, "clnorm parity: seed %d, %d training steps, layout %s, dtype %s, "
                                + "eps %s, momentum %s (PyTorch convention); devices: %s%n", seed, steps,
                        lay == Layout.CHANNELS_FIRST ? "nchw" : "nhwc", type, ParityRunner.EPS, ParityRunner.MOMENTUM,
                        String.join(", ", ParityRunner.labels(backends)));
                System.out.print(render(result));
                System.out.println();
                System.out.print(renderPairs(result));
                System.out.println();
                System.out.println(toleranceText());
                System.out.println("ULP = steps of the type the output is stored in (float32; y and dx of a 16-bit run: "
                        + "that type) between the device value and the reference rounded to it (bit-pattern order); "
                        + "max rel err over elements whose reference is not 0.");
                for (ParityResult.Comparison f : result.failures()) {
                    System.out.println(failureLine(f));
                }
                System.out.println(result.passed() ? "PASS: every device is within tolerance on every output."
                        : "FAIL: " + result.failures().size() + " output(s) beyond tolerance.");
            }
            write(json, toJson(result));
            write(csv, toCsv(result));
            return result.exitCode();
        } finally {
            for (Backend b : backends) {
                b.close();
            }
        }
    }

    static Layout parseLayout(String s) {
        return switch (s.trim().toLowerCase(Locale.ROOT)) {
            case "nchw", "channels_first" -> Layout.CHANNELS_FIRST;
            case "nhwc", "channels_last" -> Layout.CHANNELS_LAST;
            default -> throw new IllegalArgumentException("--layout must be nchw or nhwc, got " + s);
        };
    }

    static String toleranceText() {
        return String.format(Locale.ROOT, "tolerance: |device - float64 reference| <= %.1e for y, batch_mean, "
                + "batch_invstd, running_mean, running_var, dx (PyTorch's float32-vs-float64 bound); dgamma, dbeta "
                + "(sums): %.1e + %.1e x sum of |terms| per channel; batch_var = 1/invstd^2 - eps derived in float64: "
                + "%.1e x max(1, var + eps); with --dtype float16 or bfloat16, y and dx also get |reference| x 2^-11 or "
                + "2^-8 (the rounding of the 16-bit store; inputs are rounded to the storage type before the reference "
                + "sees them).", ParityRunner.TOLERANCE, ParityRunner.TOLERANCE,
                ParityRunner.SUM_TOLERANCE, ParityRunner.TOLERANCE);
    }

    static String failureLine(ParityResult.Comparison f) {
        return String.format(Locale.ROOT, "FAIL %s on %s: %s max |error| %s at index %d, %.3gx its tolerance "
                        + "(%s, max %.3e)", f.shape(), f.deviceId(), f.output().id(), sci(f.maxAbs()), f.worstIndex(),
                f.worstRatio(), f.toleranceRule(), f.tolerance());
    }

    static String render(ParityResult r) {
        Table t = new Table("shape", "device", "output", "max abs err", "max rel err", "max ULP", "tolerance",
                "err/tol", "result");
        for (ParityResult.Comparison c : r.comparisons()) {
            t.row(c.shape(), c.deviceId(), c.output().id(), sci(c.maxAbs()), sci(c.maxRel()),
                    ulp(c.maxUlp()) + ulpSuffix(c.ulpType()),
                    c.toleranceRule(), String.format(Locale.ROOT, "%.3f", c.worstRatio()), c.pass() ? "PASS" : "FAIL");
        }
        return t.render();
    }

    /** Device against device: rows (shape, output), one column per pair, "max |diff| / max ULP". */
    static String renderPairs(ParityResult r) {
        if (r.pairs().isEmpty()) {
            return "(one device: no device-to-device comparison)\n";
        }
        Map<String, Map<String, String>> rows = new LinkedHashMap<>();
        List<String> pairNames = new ArrayList<>();
        for (ParityResult.PairComparison p : r.pairs()) {
            String pair = p.deviceA() + " vs " + p.deviceB();
            if (!pairNames.contains(pair)) {
                pairNames.add(pair);
            }
            rows.computeIfAbsent(p.shape() + "\u0000" + p.output().id(), k -> new LinkedHashMap<>())
                    .put(pair, sci(p.maxAbs()) + " / " + ulp(p.maxUlp()) + " ulp" + ulpSuffix(p.ulpType()));
        }
        List<String> header = new ArrayList<>(List.of("shape", "output"));
        header.addAll(pairNames);
        Table t = new Table(header.toArray(new String[0]));
        for (Map.Entry<String, Map<String, String>> e : rows.entrySet()) {
            String[] key = e.getKey().split("\u0000");
            List<String> cells = new ArrayList<>(List.of(key[0], key[1]));
            for (String p : pairNames) {
                cells.add(e.getValue().getOrDefault(p, "-"));
            }
            t.row(cells.toArray(new String[0]));
        }
        return "Device against device (max |difference| / max ULP distance; both within tolerance of the reference "
                + "bounds this by the sum of their tolerances):\n" + t.render();
    }

    static String toJson(ParityResult r) {
        StringBuilder sb = new StringBuilder("{\n  \"tool\": \"clnorm parity\",\n");
        sb.append("  \"seed\": ").append(r.seed()).append(",\n  \"steps\": ").append(r.steps())
                .append(",\n  \"layout\": ").append(Json.str(r.layout()))
                .append(",\n  \"dtype\": ").append(Json.str(r.dtype()))
                .append(",\n  \"eps\": ").append(ParityRunner.EPS)
                .append(",\n  \"momentum\": ").append(ParityRunner.MOMENTUM)
                .append(",\n  \"tolerance\": {\"absolute\": ").append(ParityRunner.TOLERANCE)
                .append(", \"sum_per_abs_term\": ").append(ParityRunner.SUM_TOLERANCE)
                .append(", \"text\": ").append(Json.str(toleranceText())).append("}")
                .append(",\n  \"passed\": ").append(r.passed())
                .append(",\n  \"results\": [\n");
        List<ParityResult.Comparison> cs = r.comparisons();
        for (int i = 0; i < cs.size(); i++) {
            ParityResult.Comparison c = cs.get(i);
            sb.append("    {\"shape\": ").append(Json.str(c.shape()))
                    .append(", \"device\": ").append(Json.str(c.deviceId()))
                    .append(", \"device_name\": ").append(Json.str(c.deviceName()))
                    .append(", \"output\": ").append(Json.str(c.output().id()))
                    .append(", \"elements\": ").append(c.elements())
                    .append(", \"max_abs_err\": ").append(num(c.maxAbs()))
                    .append(", \"max_rel_err\": ").append(num(c.maxRel()))
                    .append(", \"max_ulp\": ").append(c.maxUlp() == Long.MAX_VALUE ? "null" : Long.toString(c.maxUlp()))
                    .append(", \"ulp_type\": ").append(Json.str(c.ulpType()))
                    .append(", \"worst_index\": ").append(c.worstIndex())
                    .append(", \"err_over_tolerance\": ").append(num(c.worstRatio()))
                    .append(", \"tolerance\": ").append(num(c.tolerance()))
                    .append(", \"tolerance_rule\": ").append(Json.str(c.toleranceRule()))
                    .append(", \"pass\": ").append(c.pass())
                    .append('}').append(i + 1 < cs.size() ? ",\n" : "\n");
        }
        sb.append("  ],\n  \"pairs\": [\n");
        List<ParityResult.PairComparison> ps = r.pairs();
        for (int i = 0; i < ps.size(); i++) {
            ParityResult.PairComparison p = ps.get(i);
            sb.append("    {\"shape\": ").append(Json.str(p.shape()))
                    .append(", \"device_a\": ").append(Json.str(p.deviceA()))
                    .append(", \"device_b\": ").append(Json.str(p.deviceB()))
                    .append(", \"output\": ").append(Json.str(p.output().id()))
                    .append(", \"max_abs_diff\": ").append(num(p.maxAbs()))
                    .append(", \"max_ulp\": ").append(p.maxUlp() == Long.MAX_VALUE ? "null" : Long.toString(p.maxUlp()))
                    .append(", \"ulp_type\": ").append(Json.str(p.ulpType()))
                    .append('}').append(i + 1 < ps.size() ? ",\n" : "\n");
        }
        return sb.append("  ]\n}\n").toString();
    }

    static String toCsv(ParityResult r) {
        StringBuilder sb = new StringBuilder("shape,device,device_name,output,elements,max_abs_err,max_rel_err,max_ulp,"
                + "ulp_type,worst_index,err_over_tolerance,tolerance,tolerance_rule,result\n");
        for (ParityResult.Comparison c : r.comparisons()) {
            sb.append(String.join(",", c.shape(), c.deviceId(), '"' + c.deviceName().replace("\"", "'") + '"',
                    c.output().id(), Integer.toString(c.elements()), csvNum(c.maxAbs()), csvNum(c.maxRel()),
                    c.maxUlp() == Long.MAX_VALUE ? "" : Long.toString(c.maxUlp()), c.ulpType(),
                    Integer.toString(c.worstIndex()),
                    csvNum(c.worstRatio()), csvNum(c.tolerance()), c.toleranceRule(), c.pass() ? "PASS" : "FAIL"))
                    .append('\n');
        }
        return sb.toString();
    }

    private static void write(String target, String text) {
        if (target == null) {
            return;
        }
        if (target.equals("-")) {
            System.out.print(text);
            return;
        }
        try {
            Files.writeString(Path.of(target), text, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new IllegalArgumentException("cannot write " + target + ": " + e, e);
        }
    }

    private static String sci(double v) {
        return Double.isNaN(v) ? "NaN" : Double.isInfinite(v) ? "inf" : String.format(Locale.ROOT, "%.2e", v);
    }

    /** Nothing for float32 ULPs, " (float16)" or " (bfloat16)" for a 16-bit store's. */
    private static String ulpSuffix(String type) {
        return type.equals("float32") ? "" : " (" + type + ")";
    }

    private static String ulp(long u) {
        return u == Long.MAX_VALUE ? "NaN" : Long.toString(u);
    }

    /** A JSON number, or null for NaN/infinity (which JSON cannot express). */
    private static String num(double v) {
        return Double.isFinite(v) ? String.format(Locale.ROOT, "%.6g", v) : "null";
    }

    private static String csvNum(double v) {
        return Double.isFinite(v) ? String.format(Locale.ROOT, "%.6g", v) : Double.isNaN(v) ? "nan" : "inf";
    }
}
