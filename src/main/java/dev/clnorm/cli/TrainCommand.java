package dev.clnorm.cli;

import dev.clnorm.Devices;
import dev.clnorm.backend.Backend;
import dev.clnorm.train.Charts;
import dev.clnorm.train.Checkpoint;
import dev.clnorm.train.CurveCsv;
import dev.clnorm.train.Dataset;
import dev.clnorm.train.FashionMnist;
import dev.clnorm.train.LrSchedule;
import dev.clnorm.train.TrainOps;
import dev.clnorm.train.Trainer;
import me.tongfei.progressbar.ConsoleProgressBarConsumer;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.stream.Collectors;

/**
 * Trains a Fashion-MNIST MLP with and without batch norm on one or more devices, entirely on the
 * device, and reports per-epoch training loss, test accuracy and time.
 */
@Command(name = "train", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Train a Fashion-MNIST MLP (784-1024-1024-10, ReLU, softmax cross-entropy, Adam) with and "
                + "without batch norm, entirely on the device, and print per-epoch training loss, test accuracy "
                + "and time.",
                "Data: Debian's dataset-fashion-mnist package (" + FashionMnist.DEFAULT_DIR + ") or --data DIR."})
final class TrainCommand implements Callable<Integer> {
    @Option(names = "--epochs", description = "Passes over the training set (default ${DEFAULT-VALUE}).",
            defaultValue = "5")
    int epochs;

    @Option(names = "--lr", split = ",", description = "Adam learning rate (of the first step when --lr-schedule "
            + "decays it); a comma-separated list trains each (default ${DEFAULT-VALUE}).", defaultValue = "0.001")
    double[] lr;

    @Option(names = "--lr-schedule", description = "constant, or cosine: decay from --lr towards 0 over the whole "
            + "run, step by step (PyTorch's CosineAnnealingLR with T_max = all steps, eta_min 0) "
            + "(default ${DEFAULT-VALUE}).", defaultValue = "cosine")
    String lrSchedule;

    @Option(names = "--batch-norm", description = "on, off or both (default ${DEFAULT-VALUE}).",
            defaultValue = "both")
    String batchNorm;

    @Option(names = "--device", split = ",", description = "Device selector(s): auto, java, opencl, cpu, gpu, "
            + "opencl:P:D; a comma-separated list trains on each and compares their loss curves "
            + "(default ${DEFAULT-VALUE}).", defaultValue = "auto")
    String[] devices;

    @Option(names = "--seed", description = "Seeds initialisation and shuffling (default ${DEFAULT-VALUE}).",
            defaultValue = "1")
    long seed;

    @Option(names = "--batch", description = "Training batch size (default ${DEFAULT-VALUE}).", defaultValue = "128")
    int batch;

    @Option(names = "--hidden", split = ",", description = "Hidden layer widths (default ${DEFAULT-VALUE}).",
            defaultValue = "1024,1024")
    int[] hidden;

    @Option(names = "--data", description = "Folder with the Fashion-MNIST IDX files (default ${DEFAULT-VALUE}).",
            defaultValue = FashionMnist.DEFAULT_DIR)
    Path data;

    @Option(names = "--chart", description = "Write loss and accuracy curves of every run to this PNG file.")
    Path chart;

    @Option(names = "--save", description = "Write each trained model (parameters and batch-norm state, PyTorch "
            + "names) to this .npz; with several runs, -bn / -plain (and the learning rate or device) are "
            + "added before the extension.")
    Path save;

    @Option(names = "--loss-every", description = "Read the device's loss accumulator every K steps "
            + "(default ${DEFAULT-VALUE}); nothing else crosses to the host during an epoch.", defaultValue = "20")
    int lossEvery;

    @Option(names = "--eval-batch", description = "Batch size of the evaluation (default ${DEFAULT-VALUE}).",
            defaultValue = "1000")
    int evalBatch;

    @Option(names = "--train-samples", description = "Use only the first N training samples (quick runs).")
    Integer trainSamples;

    @Option(names = "--test-samples", description = "Use only the first N test samples (quick runs).")
    Integer testSamples;

    @Option(names = "--curve-csv", description = "Write every loss reading of every run to this CSV file "
            + "(variant, lr, device, epoch, step, steps, loss).")
    Path curveCsv;

    @Option(names = "--compare-with", description = "A CSV written by --curve-csv: print how far this run's loss "
            + "curves are from the ones there (same variant and learning rate; the schedule spans the whole run, so "
            + "give the same --epochs and --lr-schedule).")
    Path compareWith;

    @Option(names = "--jitter-ulps", description = "Move every initial dense weight N float32 units in the last "
            + "place (alternately up and down) before training: shows how much rounding-size differences grow "
            + "during training (default ${DEFAULT-VALUE}).", defaultValue = "0")
    int jitterUlps;

    @Option(names = "--adam-eps", description = "Adam's epsilon (default ${DEFAULT-VALUE}, PyTorch's). A larger "
            + "one (1e-5) stops gradients that are pure rounding noise from becoming learning-rate-sized steps.",
            defaultValue = "1e-8")
    double adamEps;

    @Option(names = "--progress", description = "Progress bar: auto (when on a terminal), on or off "
            + "(default ${DEFAULT-VALUE}).", defaultValue = "auto")
    String progress;

    @Override
    public Integer call() throws IOException {
        List<Boolean> variants = switch (batchNorm.toLowerCase(Locale.ROOT)) {
            case "on" -> List.of(true);
            case "off" -> List.of(false);
            case "both" -> List.of(true, false);
            default -> throw new IllegalArgumentException("--batch-norm must be on, off or both, got '" + batchNorm
                    + "'");
        };
        boolean showProgress = switch (progress.toLowerCase(Locale.ROOT)) {
            case "on" -> true;
            case "off" -> false;
            case "auto" -> System.console() != null;
            default -> throw new IllegalArgumentException("--progress must be auto, on or off, got '" + progress + "'");
        };
        LrSchedule schedule = LrSchedule.parse(lrSchedule);
        if (hidden.length == 0 || Arrays.stream(hidden).anyMatch(h -> h <= 0)) {
            throw new IllegalArgumentException("--hidden needs positive widths, got " + Arrays.toString(hidden));
        }
        int[] widths = new int[hidden.length + 2];
        widths[0] = FashionMnist.ROWS * FashionMnist.COLS;
        System.arraycopy(hidden, 0, widths, 1, hidden.length);
        widths[widths.length - 1] = FashionMnist.CLASSES;

        List<Trainer.Run> reference = compareWith == null ? List.of() : CurveCsv.read(compareWith);
        FashionMnist.Split split = FashionMnist.load(data);
        Dataset train = trainSamples == null ? split.train() : split.train().head(trainSamples);
        Dataset test = testSamples == null ? split.test() : split.test().head(testSamples);
        String lrs = Arrays.stream(lr).mapToObj(Double::toString).collect(Collectors.joining(", "));
        System.out.printf(Locale.ROOT, "clnorm train: Fashion-MNIST from %s (%d training / %d test samples), MLP %s, "
                        + "Adam lr %s%s, batch %d, %d epoch%s, seed %d%n", data, train.count(), test.count(),
                Arrays.stream(widths).mapToObj(Integer::toString).collect(Collectors.joining("-")), lrs,
                schedule == LrSchedule.COSINE ? " (cosine decay to 0 over the run)" : " (constant)", batch,
                epochs, epochs == 1 ? "" : "s", seed);
        if (adamEps != 1e-8) {
            System.out.println("Adam eps " + adamEps);
        }
        if (jitterUlps > 0) {
            System.out.println("initial dense weights moved " + jitterUlps + " float32 ulp(s) (--jitter-ulps)");
        }

        List<Trainer.Run> runs = new ArrayList<>();
        for (String selector : devices) {
            try (Backend backend = Devices.open(selector);
                 TrainOps ops = TrainOps.of(backend);
                 Trainer.Resident resident = new Trainer.Resident(backend, train, test, epochs, seed)) {
                System.out.println("device " + backend.info().describe() + "; dense layers: " + ops.gemmDescription());
                for (double rate : lr) {
                    Trainer.Options o = new Trainer.Options(epochs, batch, rate, seed, lossEvery, evalBatch, widths,
                            jitterUlps, adamEps, schedule);
                    for (boolean bn : variants) {
                        Trainer.Run run = Trainer.train(ops, resident, bn, o, new Printer(showProgress, rate,
                                lr.length > 1));
                        runs.add(run);
                    }
                }
            }
        }

        System.out.println();
        summary(runs);
        if (devices.length > 1) {
            List<Trainer.Run> first = runs.stream().filter(r -> r.device().equals(runs.get(0).device())).toList();
            List<Trainer.Run> others = runs.stream().filter(r -> !r.device().equals(runs.get(0).device())).toList();
            agreement(first, others, runs.get(0).device());
        }
        if (!reference.isEmpty()) {
            agreement(reference, runs, compareWith.toString());
        }
        if (curveCsv != null) {
            CurveCsv.write(curveCsv, runs);
            System.out.println("loss curves written to " + curveCsv);
        }
        if (chart != null) {
            String title = String.format(Locale.ROOT, "Fashion-MNIST MLP %s, Adam%s, batch %d, seed %d",
                    Arrays.stream(widths).mapToObj(Integer::toString).collect(Collectors.joining("-")),
                    schedule == LrSchedule.COSINE ? " with cosine lr decay" : "", batch, seed);
            if (lr.length == 1) {
                title += ", lr " + lr[0];
            }
            if (devices.length == 1 && !runs.isEmpty()) {
                title += ", " + runs.get(0).device() + " " + runs.get(0).deviceName();
            }
            Charts.write(chart, runs, title);
            System.out.println("chart written to " + chart);
        }
        if (save != null) {
            for (Trainer.Run r : runs) {
                Path file = saveName(r, runs.size() > 1);
                Checkpoint.write(file, r.state());
                System.out.println("model (" + Charts.label(r, true, true) + ") saved to " + file);
            }
        }
        return 0;
    }

    private Path saveName(Trainer.Run r, boolean several) {
        if (!several) {
            return save;
        }
        String name = save.getFileName().toString();
        int dot = name.lastIndexOf('.');
        String stem = dot > 0 ? name.substring(0, dot) : name;
        String ext = dot > 0 ? name.substring(dot) : ".npz";
        StringBuilder suffix = new StringBuilder("-" + r.variant());
        if (lr.length > 1) {
            suffix.append("-lr").append(r.lr());
        }
        if (devices.length > 1) {
            suffix.append("-").append(r.device().replaceAll("[^A-Za-z0-9]+", "_"));
        }
        return save.resolveSibling(stem + suffix + ext);
    }

    /** Prints one line per epoch and drives the progress bar. */
    private static final class Printer implements Trainer.Listener {
        private final boolean showProgress;
        private final double lr;
        private final boolean showLr;
        private ProgressBar bar;
        private String prefix = "";

        Printer(boolean showProgress, double lr, boolean showLr) {
            this.showProgress = showProgress;
            this.lr = lr;
            this.showLr = showLr;
        }

        @Override
        public void epochStart(String variant, int epoch, int epochs, int steps) {
            prefix = String.format(Locale.ROOT, "[%-5s%s] epoch %d/%d", variant, showLr ? " lr " + lr : "", epoch,
                    epochs);
            if (showProgress) {
                bar = new ProgressBarBuilder().setTaskName(prefix).setInitialMax(steps)
                        .setStyle(ProgressBarStyle.ASCII).setUpdateIntervalMillis(250).setUnit(" steps", 1)
                        .setConsumer(new ConsoleProgressBarConsumer(System.err)).build();
            }
        }

        @Override
        public void stepDone() {
            if (bar != null) {
                bar.step();
            }
        }

        @Override
        public void loss(Trainer.LossPoint point) {
            if (bar != null) {
                bar.setExtraMessage(String.format(Locale.ROOT, "loss %.4f", point.loss()));
            }
        }

        @Override
        public void epochEnd(String variant, Trainer.EpochResult r) {
            if (bar != null) {
                bar.close();
                bar = null;
            }
            System.out.printf(Locale.ROOT, "%s  train loss %s  test loss %s  test acc %6.2f%%  time %.1f s "
                            + "(%.1f ms/step, eval %.1f s)%n", prefix, num(r.trainLoss()), num(r.test().loss()),
                    100 * r.test().accuracy(), r.trainSeconds(), 1000 * r.trainSeconds() / r.steps(), r.evalSeconds());
            System.out.flush();
        }
    }

    private static String num(double v) {
        return Double.isFinite(v) ? String.format(Locale.ROOT, "%.4f", v) : "   NaN (diverged)";
    }

    private void summary(List<Trainer.Run> runs) {
        Table t = new Table("variant", "lr", "device", "final test acc", "best test acc", "final train loss",
                "s/epoch (mean)", "ms/step");
        for (Trainer.Run r : runs) {
            double best = r.epochs().stream().mapToDouble(e -> e.test().accuracy()).max().orElse(Double.NaN);
            double sec = r.epochs().stream().mapToDouble(Trainer.EpochResult::trainSeconds).average().orElse(Double.NaN);
            double ms = 1000 * sec / r.last().steps();
            t.row(r.variant().equals("bn") ? "batch norm" : "plain", Double.toString(r.lr()), r.device(),
                    String.format(Locale.ROOT, "%.2f%%", 100 * r.last().test().accuracy()),
                    String.format(Locale.ROOT, "%.2f%%", 100 * best), num(r.last().trainLoss()),
                    String.format(Locale.ROOT, "%.1f", sec), String.format(Locale.ROOT, "%.1f", ms));
        }
        System.out.print(t.render());
    }

    /** Loss-curve agreement of each run with the reference run of the same variant and learning rate. */
    private void agreement(List<Trainer.Run> reference, List<Trainer.Run> runs, String against) {
        System.out.println();
        System.out.println("Loss-curve agreement with " + against + " (same seed; relative difference of every loss "
                + "reading, each the mean of " + lossEvery + " steps. Adam turns rounding-level gradients into lr-sized "
                + "steps, so float32 differences grow during training: compare with --jitter-ulps 1 on one device):");
        Table t = new Table("variant", "lr", "device", "vs", "readings", "first reading: rel", "epoch 1: max |diff|",
                "epoch 1: median rel", "epoch 1: max rel", "all epochs: max rel");
        for (Trainer.Run ref : reference) {
            for (Trainer.Run r : runs) {
                if (!r.variant().equals(ref.variant()) || r.lr() != ref.lr()) {
                    continue;
                }
                int n = Math.min(ref.curve().size(), r.curve().size());
                double maxAbs1 = 0;
                double maxRel = 0;
                List<Double> rel1 = new ArrayList<>();
                for (int i = 0; i < n; i++) {
                    Trainer.LossPoint a = ref.curve().get(i);
                    Trainer.LossPoint b = r.curve().get(i);
                    double d = Math.abs(a.loss() - b.loss());
                    double rel = d / Math.max(Math.abs(a.loss()), 1e-30);
                    if (Double.isNaN(d)) {
                        rel = d = Double.POSITIVE_INFINITY;
                    }
                    maxRel = Math.max(maxRel, rel);
                    if (a.epoch() <= 1.0 + 1e-9) {
                        rel1.add(rel);
                        maxAbs1 = Math.max(maxAbs1, d);
                    }
                }
                if (rel1.isEmpty()) {
                    continue;
                }
                double first = rel1.get(0);
                List<Double> sorted = new ArrayList<>(rel1);
                sorted.sort(null);
                double median = sorted.get(sorted.size() / 2);
                double max1 = sorted.get(sorted.size() - 1);
                t.row(ref.variant(), Double.toString(ref.lr()), r.device(), ref.device(), rel1.size() + " / " + n,
                        sci(first), sci(maxAbs1), sci(median), sci(max1), sci(maxRel));
            }
        }
        System.out.print(t.render());
    }

    private static String sci(double v) {
        return String.format(Locale.ROOT, "%.2e", v);
    }
}
