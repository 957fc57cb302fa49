package dev.clnorm.train;

import java.io.BufferedWriter;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Loss curves as CSV, one reading per line: {@code variant,lr,device,epoch,step,steps,loss}, so
 * runs made at different times (or on different machines) can be compared.
 */
public final class CurveCsv {
    static final String HEADER = "variant,lr,device,epoch,step,steps,loss";

    private CurveCsv() {
    }

    public static void write(Path file, List<Trainer.Run> runs) throws IOException {
        Path parent = file.toAbsolutePath().getParent();
        if (parent != null) {
            Files.createDirectories(parent);
        }
        try (BufferedWriter w = Files.newBufferedWriter(file)) {
            w.write(HEADER);
            w.newLine();
            for (Trainer.Run r : runs) {
                for (Trainer.LossPoint p : r.curve()) {
                    w.write(String.format(Locale.ROOT, "%s,%s,%s,%.9f,%d,%d,%s", r.variant(), Double.toString(r.lr()),
                            r.device(), p.epoch(), p.step(), p.steps(), Double.toString(p.loss())));
                    w.newLine();
                }
            }
        }
    }

    /** The curves of a CSV written by {@link #write}, one run per (variant, lr, device); no epoch results. */
    public static List<Trainer.Run> read(Path file) throws IOException {
        if (!Files.isRegularFile(file)) {
            throw new IllegalArgumentException("loss-curve CSV " + file + " does not exist");
        }
        List<String> lines = Files.readAllLines(file);
        if (lines.isEmpty() || !lines.get(0).trim().equals(HEADER)) {
            throw new IllegalArgumentException(file + ": not a loss-curve CSV (expected the header '" + HEADER + "')");
        }
        Map<String, List<Trainer.LossPoint>> curves = new LinkedHashMap<>();
        Map<String, String[]> keys = new LinkedHashMap<>();
        for (int i = 1; i < lines.size(); i++) {
            String line = lines.get(i).trim();
            if (line.isEmpty()) {
                continue;
            }
            String[] f = line.split(",");
            if (f.length != 7) {
                throw new IllegalArgumentException(file + ":" + (i + 1) + ": expected 7 fields, got " + f.length);
            }
            try {
                String key = f[0] + "," + f[1] + "," + f[2];
                keys.putIfAbsent(key, f);
                curves.computeIfAbsent(key, k -> new ArrayList<>()).add(new Trainer.LossPoint(
                        Double.parseDouble(f[3]), Long.parseLong(f[4]), Integer.parseInt(f[5]), Double.parseDouble(f[6])));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(file + ":" + (i + 1) + ": " + e.getMessage());
            }
        }
        List<Trainer.Run> runs = new ArrayList<>();
        for (Map.Entry<String, List<Trainer.LossPoint>> e : curves.entrySet()) {
            String[] f = keys.get(e.getKey());
            runs.add(new Trainer.Run(f[0], f[2], f[2], Double.parseDouble(f[1]), e.getValue(), List.of(), Map.of(),
                    "?"));
        }
        return runs;
    }
}
