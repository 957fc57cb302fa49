package dev.clnorm.cli;

import dev.clnorm.bench.BenchResult;
import dev.clnorm.bench.BenchRunner;
import dev.clnorm.bench.Op;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * {@code bench --compare FILE}: another tool's timings on the same shapes (scripts/bench-torch.py writes
 * them) next to this run's, with the ratio of median times. The file holds the bench JSON fields:
 * {@code {"results": [{"device", "device_name", "shape", "layout", "op", "elements", "median_ms",
 * "p10_ms", "p90_ms", "gbps"}, ...]}}; shape is a list of integers or "32x64x56x56", layout defaults
 * to CHANNELS_FIRST, gbps is recomputed from the traffic model when absent.
 */
final class BenchCompare {
    private BenchCompare() {
    }

    /** One timing from the other tool. */
    record External(String device, String deviceName, int[] shape, String layout, Op op, long elements, double medianMs,
                    Double p10Ms, Double p90Ms, double gbps) {
    }

    /** The file's results; a missing file, malformed JSON or a bad entry throws IllegalArgumentException naming it. */
    static List<External> load(Path file) {
        String text;
        try {
            text = Files.readString(file, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new IllegalArgumentException("--compare: cannot read " + file + ": " + e.getMessage(), e);
        }
        Object root;
        try {
            root = JsonReader.parse(text);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--compare: " + file + ": " + e.getMessage(), e);
        }
        Object results = root instanceof Map<?, ?> m ? m.get("results") : root;
        if (!(results instanceof List<?> list)) {
            throw new IllegalArgumentException("--compare: " + file + " should hold {\"results\": [...]} as written by "
                    + "scripts/bench-torch.py");
        }
        List<External> out = new ArrayList<>();
        for (int i = 0; i < list.size(); i++) {
            String where = "--compare: " + file + ": results[" + i + "]";
            if (!(list.get(i) instanceof Map<?, ?> e)) {
                throw new IllegalArgumentException(where + " is not an object");
            }
            String device = string(e, "device", where, null);
            int[] shape = shape(e.get("shape"), where);
            String layout = string(e, "layout", where, "CHANNELS_FIRST").toUpperCase(Locale.ROOT);
            Op op;
            try {
                op = Op.parse(string(e, "op", where, null));
            } catch (IllegalArgumentException ex) {
                throw new IllegalArgumentException(where + ": " + ex.getMessage(), ex);
            }
            long elements = 1;
            for (int d : shape) {
                elements *= d;
            }
            Double given = number(e, "elements", where, false);
            if (given != null && given.longValue() != elements) {
                throw new IllegalArgumentException(where + ": elements " + given.longValue() + " does not match shape "
                        + BenchRunner.shapeText(shape) + " (" + elements + ")");
            }
            double median = number(e, "median_ms", where, true);
            if (!(median > 0)) {
                throw new IllegalArgumentException(where + ": median_ms must be > 0, got " + median);
            }
            Double gbps = number(e, "gbps", where, false);
            out.add(new External(device, string(e, "device_name", where, device), shape, layout, op, elements, median,
                    number(e, "p10_ms", where, false), number(e, "p90_ms", where, false),
                    gbps != null ? gbps : op.bytesPerElement() * (double) elements / (median * 1e6)));
        }
        return out;
    }

    private static String string(Map<?, ?> e, String key, String where, String fallback) {
        Object v = e.get(key);
        if (v == null) {
            if (fallback != null) {
                return fallback;
            }
            throw new IllegalArgumentException(where + " has no \"" + key + "\"");
        }
        if (!(v instanceof String s)) {
            throw new IllegalArgumentException(where + ": \"" + key + "\" should be a string, got " + v);
        }
        return s;
    }

    private static Double number(Map<?, ?> e, String key, String where, boolean required) {
        Object v = e.get(key);
        if (v == null) {
            if (required) {
                throw new IllegalArgumentException(where + " has no \"" + key + "\"");
            }
            return null;
        }
        if (!(v instanceof Double d)) {
            throw new IllegalArgumentException(where + ": \"" + key + "\" should be a number, got " + v);
        }
        return d;
    }

    private static int[] shape(Object v, String where) {
        if (v instanceof String s) {
            try {
                return BenchRunner.parseShape(s);
            } catch (IllegalArgumentException ex) {
                throw new IllegalArgumentException(where + ": " + ex.getMessage(), ex);
            }
        }
        if (v instanceof List<?> dims && dims.size() >= 2) {
            int[] shape = new int[dims.size()];
            for (int i = 0; i < shape.length; i++) {
                if (!(dims.get(i) instanceof Double d) || d != Math.rint(d) || d < 1 || d > Integer.MAX_VALUE) {
                    throw new IllegalArgumentException(where + ": shape " + dims + " should hold positive integers");
                }
                shape[i] = d.intValue();
            }
            return shape;
        }
        throw new IllegalArgumentException(where + ": \"shape\" should be a list of at least two integers or a string "
                + "like 32x64x56x56, got " + v);
    }

    /**
     * Every (clnorm result, external result) pair with the same shape, layout and op, side by side, with
     * external median / clnorm median (above 1: clnorm is faster); then the external results that have
     * no counterpart in this run.
     */
    static String render(List<BenchResult> ours, List<External> theirs, Path file) {
        Table t = new Table("shape", "op", "clnorm device", "clnorm ms", "clnorm GB/s", "other device", "other ms",
                "other GB/s", "other ms / clnorm ms");
        boolean[] matched = new boolean[theirs.size()];
        for (BenchResult r : ours) {
            if (r.op() == Op.COPY) {
                continue;
            }
            for (int i = 0; i < theirs.size(); i++) {
                External x = theirs.get(i);
                if (x.op() == r.op() && Arrays.equals(x.shape(), r.shape()) && x.layout().equals(r.layout())) {
                    matched[i] = true;
                    t.row(BenchRunner.shapeText(r.shape()), r.op().id(), r.deviceId(), f3(r.wall().median()),
                            f2(r.gbps()), x.device(), f3(x.medianMs()), f2(x.gbps()),
                            String.format(Locale.ROOT, "%.2f", x.medianMs() / r.wall().median()));
                }
            }
        }
        StringBuilder sb = new StringBuilder("Comparison with " + file + " (median wall times; the last column above 1 "
                + "means clnorm is faster):\n").append(t.render());
        for (int i = 0; i < theirs.size(); i++) {
            if (!matched[i]) {
                External x = theirs.get(i);
                sb.append("note: ").append(file.getFileName()).append(": ").append(x.device()).append(' ')
                        .append(BenchRunner.shapeText(x.shape())).append(' ').append(x.layout()).append(' ')
                        .append(x.op().id()).append(" has no counterpart in this run\n");
            }
        }
        return sb.toString();
    }

    private static String f3(double v) {
        return String.format(Locale.ROOT, "%.3f", v);
    }

    private static String f2(double v) {
        return String.format(Locale.ROOT, "%.2f", v);
    }
}
