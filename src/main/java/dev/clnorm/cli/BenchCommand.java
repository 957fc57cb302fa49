package dev.clnorm.cli;

import dev.clnorm.Devices;
import dev.clnorm.Layout;
import dev.clnorm.bench.BenchResult;
import dev.clnorm.bench.BenchRunner;
import dev.clnorm.bench.Op;
import dev.clnorm.backend.Backend;
import dev.clnorm.backend.opencl.ClDevice;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

/** Throughput of every device on every shape, against each device's same-run copy bandwidth. */
@Command(name = "bench", mixinStandardHelpOptions = true,
        description = "Time training forward, inference, backward and a full training step per device and shape; "
                + "report GB/s against the same-run copy bandwidth and the speed-up over the Java backend.")
final class BenchCommand implements Callable<Integer> {

    @Option(names = "--devices", split = ",", description = "Device selectors (default: java and every OpenCL device).")
    List<String> devices;

    @Option(names = "--shapes", split = ",", description = "Shapes like 32x64x56x56,4096x1024 (default: ResNet-50 "
            + "shapes at N=32, 20x6x65536, 4096x1024, 128x1024, 32x64).")
    List<String> shapes;

    @Option(names = "--layout", description = "nchw or nhwc (default ${DEFAULT-VALUE}).", defaultValue = "nchw")
    String layout;

    @Option(names = "--ops", split = ",", description = "Operations: train_forward, forward_floor, inference, "
            + "backward, backward_floor, train_step (default: all). The floors are references, not batch norm: the "
            + "memory traffic of training forward (backward) when x (x and dy) leave the cache between its two "
            + "passes, without its arithmetic.")
    List<String> ops;

    @Option(names = "--warmup", defaultValue = "3", description = "Untimed calls first (default ${DEFAULT-VALUE}).")
    int warmup;

    @Option(names = "--warmup-seconds", defaultValue = "0.5", paramLabel = "S",
            description = "After --warmup calls, keep warming up for at least S seconds and then until the JIT "
                    + "has compiled nothing for 0.5 s (at most 20 x S), so the Java backend is timed compiled "
                    + "(default ${DEFAULT-VALUE}; 0: --warmup calls only).")
    double warmupSeconds;

    @Option(names = "--repeats", defaultValue = "10", description = "Timed calls (default ${DEFAULT-VALUE}).")
    int repeats;

    @Option(names = "--csv", description = "Also write the results as CSV to this file.")
    Path csv;

    @Option(names = "--json", description = "Also write the results as JSON to this file.")
    Path json;

    @Option(names = "--chart", paramLabel = "FILE.png", description = "Also draw GB/s per shape and device, one panel "
            + "per operation, with each device's copy bandwidth (timed beside that operation) as a dashed reference line (PNG).")
    Path chart;

    @Option(names = "--compare", paramLabel = "FILE.json", description = "Print another tool's timings of the same "
            + "shapes (e.g. scripts/bench-torch.py --out FILE.json) next to this run's, with the ratio.")
    Path compare;

    @Override
    public Integer call() {
        Layout lay = switch (layout.toLowerCase(Locale.ROOT)) {
            case "nchw", "channels_first" -> Layout.CHANNELS_FIRST;
            case "nhwc", "channels_last" -> Layout.CHANNELS_LAST;
            default -> throw new IllegalArgumentException("--layout must be nchw or nhwc, got " + layout);
        };
        List<int[]> shapeList = new ArrayList<>();
        if (shapes == null) {
            shapeList.addAll(BenchRunner.defaultShapes());
        } else {
            for (String s : shapes) {
                shapeList.add(BenchRunner.parseShape(s));
            }
        }
        EnumSet<Op> opSet = EnumSet.noneOf(Op.class);
        if (ops == null) {
            opSet.addAll(EnumSet.of(Op.TRAIN_FORWARD, Op.FORWARD_FLOOR, Op.INFERENCE, Op.BACKWARD, Op.BACKWARD_FLOOR,
                    Op.TRAIN_STEP));
        } else {
            for (String o : ops) {
                opSet.add(Op.parse(o));
            }
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
        if (chart != null && !chart.getFileName().toString().toLowerCase(Locale.ROOT).endsWith(".png")) {
            throw new IllegalArgumentException("--chart writes a PNG; give a file name ending in .png, got " + chart);
        }
        if (chart != null && chart.toAbsolutePath().getParent() != null
                && !Files.isDirectory(chart.toAbsolutePath().getParent())) {
            throw new IllegalArgumentException("--chart: folder " + chart.toAbsolutePath().getParent() + " does not exist");
        }
        // Read the comparison file first: a bad file fails before minutes of benchmarking.
        List<BenchCompare.External> other = compare == null ? null : BenchCompare.load(compare);
        BenchRunner runner = new BenchRunner(warmup, repeats, warmupSeconds);
        boolean anyTiny = shapeList.stream().anyMatch(BenchRunner::isTiny);
        double loadBefore = loadAverage();

        List<BenchResult> results = new ArrayList<>();
        List<BenchRunner.LaunchLatency> latencies = new ArrayList<>();
        List<String> notes = new ArrayList<>();
        int total = selectors.size() * shapeList.size();
        int done = 0;
        long started = System.nanoTime();
        for (String selector : selectors) {
            try (Backend backend = Devices.open(selector)) {
                for (int[] shape : shapeList) {
                    done++;
                    String why = BenchRunner.wontFit(backend, shape);
                    if (why != null) {
                        notes.add("skipped " + BenchRunner.shapeText(shape) + " on " + backend.info().id() + ": " + why);
                        continue;
                    }
                    int step = done;
                    results.addAll(runner.run(backend, shape, lay, opSet, op -> Progress.show(step, total, started,
                            backend.info().id() + " " + BenchRunner.shapeText(shape) + " " + op)));
                }
                if (anyTiny) {
                    Progress.show(done, total, started, backend.info().id() + " empty launch");
                    latencies.add(runner.emptyLaunch(backend));
                }
            }
        }
        Progress.clear();
        double loadAfter = loadAverage();

        System.out.print(render(results));
        for (String note : notes) {
            System.out.println("note: " + note);
        }
        System.out.println("GB/s = minimum traffic (train_forward and forward_floor 12, inference 8, backward and "
                + "backward_floor 12, "
                + "train_step 24, copy 8 bytes/element) / median wall time; kernel ms from OpenCL profiling events; % copy against the "
                + "same device's copy of the same element count, timed between the operation's own timed calls; vs java = Java median / device median.");
        if (!latencies.isEmpty()) {
            System.out.println();
            System.out.print(renderLatency(results, latencies));
        }
        System.out.println(String.format(Locale.ROOT, "load average (1 min) at start %.2f, at end %.2f, on %d cores",
                loadBefore, loadAfter, Runtime.getRuntime().availableProcessors()));
        if (other != null) {
            System.out.println();
            System.out.print(BenchCompare.render(results, other, compare));
        }
        write(csv, toCsv(results));
        write(json, toJson(results, latencies, loadBefore, loadAfter));
        if (chart != null) {
            String title = String.format(Locale.ROOT, "clnorm bench: effective GB/s (median of %d) per shape; dashed: "
                    + "copy bandwidth timed beside each operation; %d cores, load avg %.1f", repeats,
                    Runtime.getRuntime().availableProcessors(), Math.max(loadBefore, loadAfter));
            try {
                BenchChart.write(chart, results, title);
            } catch (IOException e) {
                throw new IllegalArgumentException("--chart: cannot write " + chart + ": " + e.getMessage(), e);
            }
            System.out.println("chart written to " + chart);
        }
        return 0;
    }

    /** The 1-minute system load average, or NaN where the platform has none. */
    static double loadAverage() {
        double l = java.lang.management.ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage();
        return l < 0 ? Double.NaN : l;
    }

    /**
     * Tiny shapes: per-call wall time against the bare launch latency measured in this run, and
     * how many launches each call makes.
     */
    static String renderLatency(List<BenchResult> results, List<BenchRunner.LaunchLatency> latencies) {
        StringBuilder sb = new StringBuilder("Launch overhead (shapes of at most " + BenchRunner.TINY_ELEMENTS
                + " elements), against an empty launch measured in this run:\n");
        for (BenchRunner.LaunchLatency l : latencies) {
            sb.append(String.format(Locale.ROOT, "  %s: %s: median %.4f ms (p10-p90 %.4f-%.4f)%s%n", l.deviceId(),
                    l.what(), l.wall().median(), l.wall().p10(), l.wall().p90(),
                    l.kernel() == null ? "" : String.format(Locale.ROOT, ", device time %.4f ms", l.kernel().median())));
        }
        Table t = new Table("device", "shape", "op", "median ms", "launches/call", "empty launch ms",
                "launches x empty ms", "median / empty launch");
        for (BenchResult r : results) {
            // Only batch norm: the yardsticks are there for the memory-bound shapes.
            if (r.op().isYardstick() || !BenchRunner.isTiny(r.shape())) {
                continue;
            }
            BenchRunner.LaunchLatency l = latencies.stream().filter(x -> x.deviceId().equals(r.deviceId())).findFirst()
                    .orElse(null);
            if (l == null) {
                continue;
            }
            double empty = l.wall().median();
            t.row(r.deviceId(), BenchRunner.shapeText(r.shape()), r.op().id(), f3(r.wall().median()),
                    String.format(Locale.ROOT, "%.1f", r.launchesPerCall()), String.format(Locale.ROOT, "%.4f", empty),
                    f3(r.launchesPerCall() * empty), String.format(Locale.ROOT, "%.1f", r.wall().median() / empty));
        }
        return sb.append(t.render()).toString();
    }

    private static void write(Path file, String text) {
        if (file == null) {
            return;
        }
        try {
            Files.writeString(file, text, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + file, e);
        }
    }

    private static String key(BenchResult r) {
        return BenchRunner.shapeText(r.shape()) + "/" + r.layout() + "/" + r.op();
    }

    /** Java backend's median per (shape, op), for the speed-up column. */
    private static Map<String, Double> javaMedians(List<BenchResult> results) {
        Map<String, Double> m = new LinkedHashMap<>();
        for (BenchResult r : results) {
            if (r.deviceId().equals("java")) {
                m.put(key(r), r.wall().median());
            }
        }
        return m;
    }

    static String render(List<BenchResult> results) {
        Map<String, Double> java = javaMedians(results);
        Table t = new Table("device", "shape", "op", "median ms", "p10-p90 ms", "kernel ms", "GB/s", "kernel GB/s",
                "% copy", "vs java");
        for (BenchResult r : results) {
            Double j = java.get(key(r));
            t.row(r.deviceId(), BenchRunner.shapeText(r.shape()), r.op().id(), f3(r.wall().median()),
                    f3(r.wall().p10()) + "-" + f3(r.wall().p90()),
                    r.kernel() == null ? "-" : f3(r.kernel().median()), f2(r.gbps()),
                    r.kernelGbps() == null ? "-" : f2(r.kernelGbps()),
                    r.op() == Op.COPY ? "100" : String.format(Locale.ROOT, "%.0f", r.percentOfCopy()),
                    j == null ? "-" : String.format(Locale.ROOT, "%.2fx", j / r.wall().median()));
        }
        return t.render();
    }

    static String toCsv(List<BenchResult> results) {
        Map<String, Double> java = javaMedians(results);
        StringBuilder sb = new StringBuilder("device,device_name,shape,layout,op,elements,median_ms,p10_ms,p90_ms,"
                + "min_ms,kernel_median_ms,gbps,kernel_gbps,copy_gbps,pct_of_copy,speedup_vs_java\n");
        for (BenchResult r : results) {
            Double j = java.get(key(r));
            sb.append(String.join(",", r.deviceId(), '"' + r.deviceName().replace("\"", "'") + '"',
                    BenchRunner.shapeText(r.shape()), r.layout(), r.op().id(), Long.toString(r.elements()),
                    num(r.wall().median()), num(r.wall().p10()), num(r.wall().p90()), num(r.wall().min()),
                    r.kernel() == null ? "" : num(r.kernel().median()), num(r.gbps()),
                    r.kernelGbps() == null ? "" : num(r.kernelGbps()), num(r.copyGbps()), num(r.percentOfCopy()),
                    j == null ? "" : num(j / r.wall().median()))).append('\n');
        }
        return sb.toString();
    }

    static String toJson(List<BenchResult> results, List<BenchRunner.LaunchLatency> latencies, double loadBefore,
                         double loadAfter) {
        Map<String, Double> java = javaMedians(results);
        StringBuilder sb = new StringBuilder("{\n  \"tool\": \"clnorm bench\",\n");
        sb.append("  \"cores\": ").append(Runtime.getRuntime().availableProcessors())
                .append(",\n  \"load_average_start\": ").append(Double.isNaN(loadBefore) ? "null" : num(loadBefore))
                .append(",\n  \"load_average_end\": ").append(Double.isNaN(loadAfter) ? "null" : num(loadAfter))
                .append(",\n  \"launch_latency\": [");
        for (int i = 0; i < latencies.size(); i++) {
            BenchRunner.LaunchLatency l = latencies.get(i);
            sb.append(i == 0 ? "\n" : ",\n").append("    {\"device\": ").append(Json.str(l.deviceId()))
                    .append(", \"what\": ").append(Json.str(l.what()))
                    .append(", \"median_ms\": ").append(num(l.wall().median()))
                    .append(", \"p10_ms\": ").append(num(l.wall().p10()))
                    .append(", \"p90_ms\": ").append(num(l.wall().p90()))
                    .append(", \"kernel_median_ms\": ").append(l.kernel() == null ? "null" : num(l.kernel().median()))
                    .append('}');
        }
        sb.append(latencies.isEmpty() ? "],\n" : "\n  ],\n").append("  \"results\": [\n");
        for (int i = 0; i < results.size(); i++) {
            BenchResult r = results.get(i);
            Double j = java.get(key(r));
            StringBuilder shape = new StringBuilder("[");
            for (int d = 0; d < r.shape().length; d++) {
                shape.append(d == 0 ? "" : ", ").append(r.shape()[d]);
            }
            shape.append(']');
            sb.append("    {\"device\": ").append(Json.str(r.deviceId()))
                    .append(", \"device_name\": ").append(Json.str(r.deviceName()))
                    .append(", \"shape\": ").append(shape)
                    .append(", \"layout\": ").append(Json.str(r.layout()))
                    .append(", \"op\": ").append(Json.str(r.op().id()))
                    .append(", \"elements\": ").append(r.elements())
                    .append(", \"median_ms\": ").append(num(r.wall().median()))
                    .append(", \"p10_ms\": ").append(num(r.wall().p10()))
                    .append(", \"p90_ms\": ").append(num(r.wall().p90()))
                    .append(", \"kernel_median_ms\": ").append(r.kernel() == null ? "null" : num(r.kernel().median()))
                    .append(", \"gbps\": ").append(num(r.gbps()))
                    .append(", \"copy_gbps\": ").append(num(r.copyGbps()))
                    .append(", \"pct_of_copy\": ").append(num(r.percentOfCopy()))
                    .append(", \"speedup_vs_java\": ").append(j == null ? "null" : num(j / r.wall().median()))
                    .append(", \"launches_per_call\": ").append(num(r.launchesPerCall()))
                    .append('}').append(i + 1 < results.size() ? ",\n" : "\n");
        }
        return sb.append("  ]\n}\n").toString();
    }

    private static String f3(double v) {
        return String.format(Locale.ROOT, "%.3f", v);
    }

    private static String f2(double v) {
        return String.format(Locale.ROOT, "%.2f", v);
    }

    private static String num(double v) {
        return String.format(Locale.ROOT, "%.6g", v);
    }
}
