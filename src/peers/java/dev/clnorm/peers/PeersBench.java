package dev.clnorm.peers;

import dev.clnorm.BatchNorm;
import dev.clnorm.Devices;
import dev.clnorm.Layout;
import dev.clnorm.Tensor;
import dev.clnorm.backend.Backend;
import dev.clnorm.bench.BenchResult;
import dev.clnorm.bench.BenchRunner;
import dev.clnorm.bench.Op;
import dev.clnorm.bench.Samples;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

/**
 * Peers, side by side: the same shapes through clnorm's Java backend (with {@link BenchRunner}, the
 * bench's own methodology), ONNX Runtime's BatchNormalization (inference), nd4j's batchnorm /
 * batchnorm_bp custom ops (oneDNN build) and the DL4J BatchNormalization layer, all in one JVM and
 * one run, next to a same-run two-thread y = a·x + b bandwidth reference. Every peer's output is
 * checked against clnorm's on the same data and parameters, so the figures compare equal work.
 *
 * <p>Run through the {@code peers} Maven profile (see README, "Peers, side by side").
 */
public final class PeersBench {
    private static final float EPS = 1e-5f;
    private static final int THREADS = 2;
    private static final String PROBE_FLAG = "--probe-onednn";

    /** One row of the table. */
    record Row(String shape, String op, String impl, Samples time, Integer bytesPerElement, long elements,
               String diff, String note) {
        Double gbps() {
            return time == null || bytesPerElement == null ? null
                    : bytesPerElement * (double) elements / (time.median() * 1e6);
        }
    }

    private final List<Row> rows = new ArrayList<>();
    private final List<String> notes = new ArrayList<>();
    /** shape -> op -> clnorm median ms. */
    private final Map<String, Map<String, Double>> ours = new LinkedHashMap<>();
    /** shape -> axpb GB/s. */
    private final Map<String, Double> axpbGbps = new LinkedHashMap<>();
    private BenchRunner jitRunner;
    /** clnorm's minimum warm-up time per op (BenchRunner then waits for the JIT to settle). */
    private static final double JIT_SECONDS = 0.5;

    public static void main(String[] args) throws Exception {
        List<int[]> shapes = new ArrayList<>();
        int warmup = 3;
        int repeats = 10;
        int jitWarmup = 10;
        double seconds = 4.0;
        Set<String> peers = new LinkedHashSet<>(List.of("ort", "nd4j", "dl4j"));
        boolean probe = true;
        String probeMode = null;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--shapes" -> {
                    for (String s : args[++i].split(",")) {
                        shapes.add(BenchRunner.parseShape(s));
                    }
                }
                case "--warmup" -> warmup = Integer.parseInt(args[++i]);
                case "--repeats" -> repeats = Integer.parseInt(args[++i]);
                case "--jit-warmup" -> jitWarmup = Integer.parseInt(args[++i]);
                case "--seconds" -> seconds = Double.parseDouble(args[++i]);
                case "--peers" -> peers = new LinkedHashSet<>(Arrays.asList(args[++i].toLowerCase(Locale.ROOT).split(",")));
                case "--no-probe" -> probe = false;
                case PROBE_FLAG -> probeMode = args[++i];
                case "-h", "--help" -> {
                    usage();
                    return;
                }
                default -> {
                    System.err.println("peers: unknown argument '" + args[i] + "'");
                    usage();
                    System.exit(2);
                }
            }
        }
        if (shapes.isEmpty()) {
            for (int[] s : BenchRunner.defaultShapes()) {
                if (elements(s) >= 100_000) {  // 32x64 (2048 values) times call overhead, not batch norm
                    shapes.add(s);
                }
            }
        }
        for (int[] s : shapes) {
            if (s.length < 2 || s.length > 5) {
                throw new IllegalArgumentException("shape " + BenchRunner.shapeText(s) + ": rank 2..5 (N, C, spatial...)");
            }
        }
        if (probeMode != null) {
            OneDnnProbe.child(probeMode, shapes);
            return;
        }
        new PeersBench().run(shapes, warmup, repeats, jitWarmup, seconds, peers, probe);
    }

    private static void usage() {
        System.out.println("""
                PeersBench: clnorm's Java backend next to ONNX Runtime, nd4j (oneDNN) and the DL4J layer, one run.
                  --shapes 32x64x112x112,4096x1024   NCHW-family shapes (default: the bench's default set without 32x64)
                  --warmup N      untimed calls first (default 3)
                  --repeats N     timed calls (default 10; fewer, at least 5, when one measurement would pass --seconds)
                  --jit-warmup N  untimed clnorm calls per op before BenchRunner measures a shape (default 10, 0: none)
                  --seconds S     time budget per measurement (default 4)
                  --peers LIST    ort,nd4j,dl4j (default all)
                  --no-probe      skip the child JVM that runs each nd4j/DL4J op once with ONEDNN_VERBOSE=1
                """);
    }

    static long elements(int[] s) {
        long n = 1;
        for (int d : s) {
            n *= d;
        }
        return n;
    }

    private static void progress(String s) {
        System.err.println("[peers] " + s);
    }

    private void run(List<int[]> shapes, int warmup, int repeats, int jitWarmup, double seconds, Set<String> peers,
                     boolean probe) throws Exception {
        long started = System.nanoTime();
        String loadBefore = loadAverage();
        List<String> header = new ArrayList<>();
        header.add("machine: " + cpuModel() + ", " + Runtime.getRuntime().availableProcessors() + " cores; Java "
                + Runtime.version() + "; max heap " + Runtime.getRuntime().maxMemory() / (1 << 20) + " MiB");
        header.add("load average (1, 5, 15 min) at start: " + loadBefore);
        Timer timer = new Timer(warmup, repeats, seconds);
        // The peers are native code; clnorm's Java backend is JIT-compiled: BenchRunner warms each op up for at
        // least JIT_SECONDS and then until the JIT has settled, as `clnorm bench` does. The untimed pass before
        // it (results discarded) is kept from before that warm-up existed; it costs a few calls.
        BenchRunner runner = new BenchRunner(warmup, repeats, JIT_SECONDS);
        jitRunner = jitWarmup > 0 ? new BenchRunner(jitWarmup, 1) : null;

        if (peers.contains("ort")) {
            header.add("ONNX Runtime " + OrtPeer.version() + " (CPU execution provider), intra-op threads " + THREADS
                    + ", one-node opset-15 model of " + OrtPeer.modelBytes(new long[]{32, 64, 112, 112}, 64)
                    + " bytes for C = 64");
        }
        boolean nd4j = peers.contains("nd4j") || peers.contains("dl4j");
        if (nd4j) {
            progress("loading nd4j");
            header.add("nd4j-native 1.0.0-M2.1: " + Nd4jPeer.describe());
        }
        Map<String, String> onednn = Map.of();
        if (nd4j && probe) {
            progress("oneDNN probe: a child JVM runs each nd4j/DL4J op once with ONEDNN_VERBOSE=1");
            onednn = OneDnnProbe.parent(shapes, peers);
        }

        try (Backend backend = Devices.open("java"); Axpb axpb = new Axpb()) {
            header.add("clnorm: " + backend.info().name() + ", BenchRunner warm-up " + warmup + " calls and >= "
                    + JIT_SECONDS + " s until the JIT settles, repeats " + repeats
                    + (jitRunner == null ? "" : ", after an untimed JIT warm-up pass of " + jitWarmup + " calls per op"));
            for (int[] shape : shapes) {
                runShape(shape, backend, runner, timer, axpb, peers, onednn);
            }
        }
        String loadAfter = loadAverage();
        header.add("load average (1, 5, 15 min) at end: " + loadAfter + "; wall time " + TimeUnit.NANOSECONDS.toSeconds(
                System.nanoTime() - started) + " s");

        for (String h : header) {
            System.out.println(h);
        }
        System.out.println();
        System.out.print(render());
        System.out.println();
        System.out.println("GB/s = minimum traffic (inference 8, training forward 12, backward 12, axpb and copy 8 "
                + "bytes/element) / median wall time. clnorm speed-up = peer median / clnorm median (> 1: clnorm is "
                + "faster). max |diff| = largest absolute difference from clnorm's output on the same data and "
                + "parameters (y, or dx for backward).");
        System.out.println();
        System.out.print(targets());
        if (!onednn.isEmpty()) {
            System.out.println();
            System.out.println("oneDNN / helper mode actually active (a child JVM ran each nd4j and DL4J op once per shape with "
                    + "ONEDNN_VERBOSE=1; listed: the oneDNN primitives it executed for that shape):");
            System.out.println("  " + onednn.getOrDefault("oneDNN library", "no oneDNN version line printed"));
            for (int[] shape : shapes) {
                String st = BenchRunner.shapeText(shape);
                StringBuilder sb = new StringBuilder(String.format(Locale.ROOT, "  %-14s", st));
                if (onednn.containsKey(st + " nd4j")) {
                    sb.append(" nd4j ops: ").append(onednn.get(st + " nd4j"));
                    if (onednn.containsKey(st + " nd4j failed")) {
                        sb.append(" (probe failed: ").append(onednn.get(st + " nd4j failed")).append(')');
                    }
                    sb.append(" |");
                }
                if (onednn.containsKey(st + " dl4j")) {
                    sb.append(" DL4J layer: helper ").append(onednn.getOrDefault(st + " dl4j helper", "?"))
                            .append(", ").append(onednn.get(st + " dl4j"));
                    if (onednn.containsKey(st + " dl4j failed")) {
                        sb.append(" (probe failed: ").append(onednn.get(st + " dl4j failed")).append(')');
                    }
                }
                System.out.println(sb);
            }
        }
        for (String n : notes) {
            System.out.println("note: " + n);
        }
    }

    private void runShape(int[] shape, Backend backend, BenchRunner runner, Timer timer, Axpb axpb, Set<String> peers,
                          Map<String, String> onednn) throws Exception {
        String st = BenchRunner.shapeText(shape);
        long n = elements(shape);
        int c = shape[1];
        Map<String, Double> mine = ours.computeIfAbsent(st, k -> new LinkedHashMap<>());
        String loadAtStart = loadAverage().split(",")[0];

        // clnorm first, with the bench's own runner (its data, its warm-up and median)
        progress(st + ": clnorm Java backend");
        if (jitRunner != null) {
            jitRunner.run(backend, shape, Layout.CHANNELS_FIRST, EnumSet.of(Op.INFERENCE, Op.TRAIN_FORWARD, Op.BACKWARD),
                    s -> { });
        }
        for (BenchResult r : runner.run(backend, shape, Layout.CHANNELS_FIRST,
                EnumSet.of(Op.INFERENCE, Op.TRAIN_FORWARD, Op.BACKWARD), s -> { })) {
            String impl = r.op() == Op.COPY ? "clnorm copy (BenchRunner's yardstick)" : "clnorm Java backend";
            rows.add(new Row(st, r.op().id(), impl, r.wall(), r.op().bytesPerElement(), n, "", ""));
            mine.put(r.op().id(), r.wall().median());
        }

        // the same data as BenchRunner, non-trivial parameters for the equal-work check
        float[] x = new float[(int) n];
        float[] dy = new float[(int) n];
        SplittableRandom r = new SplittableRandom(12345);
        for (int i = 0; i < n; i++) {
            x[i] = (float) (r.nextDouble() * 4 - 1);
            dy[i] = (float) (r.nextDouble() * 2 - 1);
        }
        float[] gamma = new float[c];
        float[] beta = new float[c];
        float[] mean = new float[c];
        float[] var = new float[c];
        for (int k = 0; k < c; k++) {
            gamma[k] = 0.5f + (k % 7) / 7f;
            beta[k] = 0.1f * (k % 5) - 0.2f;
            mean[k] = 1f + 0.01f * (k % 13);
            var[k] = 0.5f + 0.05f * (k % 11);
        }
        float[] refInference;
        float[] refTrain;
        float[] refDx;
        float[] refDgamma;
        float[] refDbeta;
        try (BatchNorm bn = BatchNorm.builder(c).eps(EPS).backend(backend).build();
             Tensor xt = Tensor.upload(backend, x, shape);
             Tensor dyt = Tensor.upload(backend, dy, shape);
             Tensor yt = Tensor.zeros(backend, Layout.CHANNELS_FIRST, shape);
             Tensor dxt = Tensor.zeros(backend, Layout.CHANNELS_FIRST, shape)) {
            bn.setWeight(gamma);
            bn.setBias(beta);
            bn.setRunningMean(mean);
            bn.setRunningVar(var);
            bn.forwardInference(xt, yt);
            refInference = yt.download();
            bn.forwardTraining(xt, yt);
            refTrain = yt.download();
            bn.backward(xt, dyt, dxt);
            refDx = dxt.download();
            refDgamma = bn.gradWeight();
            refDbeta = bn.gradBias();
        }

        progress(st + ": y = a*x + b, 2 threads");
        float[] yAxpb = new float[(int) n];
        Samples axFirst = timer.time(() -> axpb.run(x, yAxpb, 1.5f, 0.25f));

        if (peers.contains("ort")) {
            progress(st + ": ONNX Runtime");
            long[] ls = Arrays.stream(shape).asLongStream().toArray();
            try (OrtPeer ort = new OrtPeer(ls, x, gamma, beta, mean, var, EPS, THREADS)) {
                Samples pinned = timer.time(ort::runPinned);
                String d = diff(refInference, ort.pinnedOutput());
                rows.add(new Row(st, Op.INFERENCE.id(), "onnxruntime, Y pinned (reused buffer)", pinned, 8, n, d, ""));
                Samples alloc = timer.time(ort::runAllocating);
                rows.add(new Row(st, Op.INFERENCE.id(), "onnxruntime, new Y per call", alloc, 8, n,
                        diff(refInference, ort.allocatingOutput()), ""));
            } catch (Exception | Error e) {
                rows.add(new Row(st, Op.INFERENCE.id(), "onnxruntime", null, null, n, "", "failed: " + firstLine(e)));
            }
        }

        if (peers.contains("nd4j")) {
            progress(st + ": nd4j batchnorm / moments / batchnorm_bp");
            Nd4jPeer nd = new Nd4jPeer(shape, x, dy, gamma, beta, mean, var, EPS);
            try {
                String mode = onednn.getOrDefault(st + " nd4j", "");
                Samples inf = timer.time(nd::inference);
                rows.add(new Row(st, Op.INFERENCE.id(), "nd4j batchnorm" + tag(mode, "forward_inference"), inf, 8, n,
                        diff(refInference, nd.y()), ""));
                Samples tf = timer.time(nd::trainingForward);
                rows.add(new Row(st, Op.TRAIN_FORWARD.id(), "nd4j moments + batchnorm" + tag(mode, "forward_inference"),
                        tf, 12, n, diff(refTrain, nd.y()), ""));
                nd.trainingForward();
                Samples bw = timer.time(nd::backward);
                String d = diff(refDx, nd.dx());
                rows.add(new Row(st, Op.BACKWARD.id(), "nd4j batchnorm_bp" + tag(mode, "backward"), bw, 12, n, d, ""));
                notes.add(st + " nd4j batchnorm_bp: max |diff| dgamma " + diff(refDgamma, nd.dGamma())
                        + " (largest |dgamma| " + maxAbs(refDgamma) + "), dbeta " + diff(refDbeta, nd.dBeta())
                        + " (largest |dbeta| " + maxAbs(refDbeta) + "): float sums over " + (n / c) + " values per channel");
            } catch (Exception | Error e) {
                rows.add(new Row(st, Op.INFERENCE.id(), "nd4j", null, null, n, "", "failed: " + firstLine(e)));
            } finally {
                nd.close();
            }
        }

        if (peers.contains("dl4j")) {
            progress(st + ": DL4J BatchNormalization layer");
            String impl = "DL4J BatchNormalization layer" + (shape.length == 3 ? " (as N,C,L,1)" : "");
            Dl4jPeer dl = null;
            try {
                dl = new Dl4jPeer(shape, x, dy, gamma, beta, EPS);
                Samples tf = timer.time(dl::trainingForward);
                rows.add(new Row(st, Op.TRAIN_FORWARD.id(), impl, tf, 12, n, diff(refTrain, dl.y()), ""));
            } catch (Exception | Error e) {
                rows.add(new Row(st, Op.TRAIN_FORWARD.id(), impl, null, null, n, "", "not run: " + firstLine(e)));
            }
            if (dl != null) {
                try {
                    // backpropGradient consumes the forward's cached statistics: an untimed forward before each call
                    Samples bw = timer.time(dl::trainingForward, dl::backward);
                    rows.add(new Row(st, Op.BACKWARD.id(), impl, bw, 12, n, diff(refDx, dl.dx()), ""));
                    if (onednn.isEmpty()) {
                        notes.add(st + " DL4J layer helper: " + dl.helper());
                    }
                } catch (Exception | Error e) {
                    rows.add(new Row(st, Op.BACKWARD.id(), impl, null, null, n, "", "not run: " + firstLine(e)));
                } finally {
                    dl.close();
                }
            }
        }
        // the reference again after the peers; the faster of the two medians is the row (less noise on a shared machine)
        progress(st + ": y = a*x + b again");
        Samples axLast = timer.time(() -> axpb.run(x, yAxpb, 1.5f, 0.25f));
        Samples ax = axLast.median() < axFirst.median() ? axLast : axFirst;
        rows.add(new Row(st, "reference", "y = a*x + b, 2 Java threads", ax, 8, n, "", ""));
        axpbGbps.put(st, 8.0 * n / (ax.median() * 1e6));
        notes.add(st + ": 1-min load average " + loadAtStart + " at the start of the shape, " + loadAverage().split(",")[0]
                + " at its end");
        System.gc();
    }

    private static String firstLine(Throwable e) {
        String m = String.valueOf(e.getMessage());
        int nl = m.indexOf('\n');
        return e.getClass().getSimpleName() + ": " + (nl < 0 ? m : m.substring(0, nl));
    }

    /** " (oneDNN bnorm_jit:avx2)" or " (libnd4j, no oneDNN)" from the probe's finding for this prop kind. */
    private static String tag(String probe, String prop) {
        if (probe.isEmpty()) {
            return "";
        }
        for (String part : probe.split("; ")) {
            if (part.startsWith(prop + " ")) {
                String impl = part.substring(prop.length() + 1).replace("batch_normalization ", "");
                return " [oneDNN " + impl + "]";
            }
        }
        return " [libnd4j, no oneDNN]";
    }

    static String maxAbs(float[] a) {
        double m = 0;
        for (float v : a) {
            m = Math.max(m, Math.abs(v));
        }
        return String.format(Locale.ROOT, "%.2e", m);
    }

    static String diff(float[] a, float[] b) {
        if (a.length != b.length) {
            return "length " + b.length + " != " + a.length;
        }
        double m = 0;
        for (int i = 0; i < a.length; i++) {
            double d = Math.abs((double) a[i] - b[i]);
            if (!(d <= m)) {
                m = d;  // NaN sticks
            }
        }
        return String.format(Locale.ROOT, "%.2e", m);
    }

    private static final List<String> OP_ORDER = List.of("reference", "copy", Op.INFERENCE.id(),
            Op.TRAIN_FORWARD.id(), Op.BACKWARD.id());

    private String render() {
        String[] head = {"shape", "op", "implementation", "median ms", "p10-p90 ms", "GB/s", "% of axpb",
                "clnorm speed-up", "max |diff|"};
        List<Row> sorted = new ArrayList<>(rows);
        List<String> shapeOrder = new ArrayList<>(ours.keySet());
        sorted.sort((a, b) -> a.shape().equals(b.shape())
                ? Integer.compare(OP_ORDER.indexOf(a.op()), OP_ORDER.indexOf(b.op()))
                : Integer.compare(shapeOrder.indexOf(a.shape()), shapeOrder.indexOf(b.shape())));
        List<String[]> body = new ArrayList<>();
        for (Row r : sorted) {
            Double g = r.gbps();
            Double mine = ours.getOrDefault(r.shape(), Map.of()).get(r.op());
            boolean isOurs = r.impl().startsWith("clnorm");
            String speedup = r.time() == null || mine == null || isOurs ? "" : String.format(Locale.ROOT, "%.2fx",
                    r.time().median() / mine);
            Double ax = axpbGbps.get(r.shape());
            if (r.time() == null) {
                notes.add(r.shape() + " " + r.op() + " " + r.impl() + ": " + r.note());
            }
            body.add(new String[]{r.shape(), r.op(), r.impl(),
                    r.time() == null ? "-" : f(r.time().median()),
                    r.time() == null ? "see note" : f(r.time().p10()) + "-" + f(r.time().p90()),
                    g == null ? "-" : String.format(Locale.ROOT, "%.2f", g),
                    g == null || ax == null ? "" : String.format(Locale.ROOT, "%.0f", 100 * g / ax),
                    speedup, r.diff()});
        }
        int[] w = new int[head.length];
        for (int i = 0; i < head.length; i++) {
            w[i] = head[i].length();
            for (String[] b : body) {
                w[i] = Math.max(w[i], b[i].length());
            }
        }
        StringBuilder sb = new StringBuilder();
        line(sb, head, w);
        String[] sep = new String[head.length];
        for (int i = 0; i < head.length; i++) {
            sep[i] = "-".repeat(w[i]);
        }
        line(sb, sep, w);
        String last = null;
        for (String[] b : body) {
            if (last != null && !last.equals(b[0])) {
                sb.append('\n');
            }
            last = b[0];
            line(sb, b, w);
        }
        return sb.toString();
    }

    private static void line(StringBuilder sb, String[] cells, int[] w) {
        for (int i = 0; i < cells.length; i++) {
            boolean right = i >= 3 && i != 4;
            String cell = cells[i];
            String pad = " ".repeat(w[i] - cell.length());
            sb.append(i == 0 ? "" : "  ").append(right ? pad + cell : cell + (i + 1 < cells.length ? pad : ""));
        }
        sb.append('\n');
    }

    /** The targets, shape by shape: inference >= 1.0x ORT, training forward and backward >= 5x nd4j. */
    private String targets() {
        StringBuilder sb = new StringBuilder("Targets (clnorm speed-up over the peer; met when >= the target):\n");
        for (String shape : ours.keySet()) {
            Map<String, Double> mine = ours.get(shape);
            Double ort = best(shape, Op.INFERENCE.id(), "onnxruntime");
            Double ndTf = best(shape, Op.TRAIN_FORWARD.id(), "nd4j");
            Double ndBw = best(shape, Op.BACKWARD.id(), "nd4j");
            sb.append(String.format(Locale.ROOT, "  %-16s", shape));
            sb.append(check("inference vs ONNX Runtime (faster variant)", ort, mine.get(Op.INFERENCE.id()), 1.0));
            sb.append(check("training forward vs nd4j", ndTf, mine.get(Op.TRAIN_FORWARD.id()), 5.0));
            sb.append(check("backward vs nd4j", ndBw, mine.get(Op.BACKWARD.id()), 5.0));
            sb.append('\n');
        }
        return sb.toString();
    }

    private Double best(String shape, String op, String implPrefix) {
        Double best = null;
        for (Row r : rows) {
            if (r.shape().equals(shape) && r.op().equals(op) && r.impl().startsWith(implPrefix) && r.time() != null) {
                best = best == null ? r.time().median() : Math.min(best, r.time().median());
            }
        }
        return best;
    }

    private static String check(String what, Double peer, Double mine, double target) {
        if (peer == null || mine == null) {
            return "  " + what + ": -;";
        }
        double s = peer / mine;
        return String.format(Locale.ROOT, "  %s %.2fx (>= %.1fx %s);", what, s, target, s >= target ? "met" : "NOT met");
    }

    private static String f(double v) {
        return v >= 100 ? String.format(Locale.ROOT, "%.1f", v) : String.format(Locale.ROOT, "%.3f", v);
    }

    static String loadAverage() {
        try {
            String[] p = Files.readString(Path.of("/proc/loadavg")).trim().split("\\s+");
            return p[0] + ", " + p[1] + ", " + p[2];
        } catch (IOException e) {
            return "unknown";
        }
    }

    private static String cpuModel() {
        try {
            for (String l : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
                if (l.startsWith("model name")) {
                    return l.substring(l.indexOf(':') + 1).trim();
                }
            }
        } catch (IOException e) {
            // fall through
        }
        return System.getProperty("os.arch");
    }

    /**
     * Which nd4j / DL4J ops really reach oneDNN: a child JVM (same class path and JVM options) runs
     * each op once per shape with ONEDNN_VERBOSE=1, and the oneDNN "exec" lines it prints name the
     * primitive, its implementation, the propagation kind and the problem dimensions.
     */
    static final class OneDnnProbe {
        private OneDnnProbe() {
        }

        static void child(String mode, List<int[]> shapes) {
            for (int[] shape : shapes) {
                long n = elements(shape);
                int c = shape[1];
                float[] x = new float[(int) n];
                float[] dy = new float[(int) n];
                SplittableRandom r = new SplittableRandom(1);
                for (int i = 0; i < n; i++) {
                    x[i] = (float) r.nextDouble();
                    dy[i] = (float) r.nextDouble();
                }
                float[] ones = new float[c];
                Arrays.fill(ones, 1f);
                float[] zeros = new float[c];
                System.out.println("PROBE " + mode + " " + BenchRunner.shapeText(shape));
                System.out.flush();
                try {
                    if (mode.equals("nd4j")) {
                        Nd4jPeer nd = new Nd4jPeer(shape, x, dy, ones, zeros, zeros, ones, EPS);
                        nd.inference();
                        nd.trainingForward();
                        nd.backward();
                        nd.close();
                    } else {
                        Dl4jPeer dl = new Dl4jPeer(shape, x, dy, ones, zeros, EPS);
                        dl.trainingForward();
                        dl.backward();
                        System.out.println("HELPER " + BenchRunner.shapeText(shape) + " " + dl.helper());
                        dl.close();
                    }
                } catch (Exception | Error e) {
                    System.out.println("FAILED " + BenchRunner.shapeText(shape) + " " + firstLine(e));
                }
                System.out.flush();
            }
        }

        static Map<String, String> parent(List<int[]> shapes, Set<String> peers) {
            Map<String, String> found = new LinkedHashMap<>();
            for (String mode : List.of("nd4j", "dl4j")) {
                if (!peers.contains(mode)) {
                    continue;
                }
                List<String> out;
                try {
                    out = runChild(mode, shapes);
                } catch (IOException | InterruptedException e) {
                    found.put("probe " + mode, "failed: " + e);
                    continue;
                }
                String version = out.stream().filter(l -> l.contains("_verbose,info,oneDNN")).findFirst()
                        .map(l -> l.substring(l.indexOf("oneDNN"))).orElse(null);
                if (version != null) {
                    found.putIfAbsent("oneDNN library", version);
                }
                for (int[] shape : shapes) {
                    String st = BenchRunner.shapeText(shape);
                    String dims = oneDnnDims(shape);
                    Set<String> execs = new LinkedHashSet<>();
                    for (String l : out) {
                        String[] f = l.split(",");
                        if (f.length > 5 && f[0].endsWith("_verbose") && f[1].equals("exec")
                                && Arrays.asList(f).contains(dims)) {
                            execs.add(f[5] + " " + f[3] + " " + f[4]);
                        }
                        if ((l.startsWith("FAILED " + st + " ") || l.startsWith("HELPER " + st + " "))) {
                            found.put(st + " " + mode + " " + l.substring(0, l.indexOf(' ')).toLowerCase(Locale.ROOT),
                                    l.substring(l.indexOf(' ', 7) + 1));
                        }
                    }
                    found.put(st + " " + mode, execs.isEmpty() ? "no oneDNN primitive executed" : String.join("; ", execs));
                }
            }
            return found;
        }

        /** oneDNN's problem descriptor for batch normalization: mb32ic64ih112iw112. */
        static String oneDnnDims(int[] s) {
            StringBuilder sb = new StringBuilder("mb").append(s[0]).append("ic").append(s[1]);
            String[] names = switch (s.length) {
                case 3 -> new String[]{"iw"};
                case 4 -> new String[]{"ih", "iw"};
                case 5 -> new String[]{"id", "ih", "iw"};
                default -> new String[0];
            };
            for (int i = 0; i < names.length; i++) {
                sb.append(names[i]).append(s[2 + i]);
            }
            return sb.toString();
        }

        private static List<String> runChild(String mode, List<int[]> shapes) throws IOException, InterruptedException {
            List<String> cmd = new ArrayList<>();
            cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
            cmd.addAll(ManagementFactory.getRuntimeMXBean().getInputArguments());
            cmd.add("-cp");
            cmd.add(System.getProperty("java.class.path"));
            cmd.add(PeersBench.class.getName());
            cmd.add(PROBE_FLAG);
            cmd.add(mode);
            cmd.add("--shapes");
            StringBuilder sb = new StringBuilder();
            for (int[] s : shapes) {
                sb.append(sb.length() == 0 ? "" : ",").append(BenchRunner.shapeText(s));
            }
            cmd.add(sb.toString());
            ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
            pb.environment().put("ONEDNN_VERBOSE", "1");
            pb.environment().put("DNNL_VERBOSE", "1");
            Process p = pb.start();
            List<String> lines = new ArrayList<>();
            try (BufferedReader in = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
                String l;
                while ((l = in.readLine()) != null) {
                    lines.add(l);
                }
            }
            int rc = p.waitFor();
            if (rc != 0) {
                lines.add("FAILED probe exit code " + rc);
            }
            return lines;
        }
    }
}
