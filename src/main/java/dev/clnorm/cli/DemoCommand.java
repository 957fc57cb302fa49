package dev.clnorm.cli;

import dev.clnorm.BatchNorm;
import dev.clnorm.Devices;
import dev.clnorm.Geometry;
import dev.clnorm.Layout;
import dev.clnorm.ReferenceBatchNorm;
import dev.clnorm.Tensor;
import dev.clnorm.backend.Backend;
import dev.clnorm.backend.DeviceInfo;
import dev.clnorm.backend.opencl.ClDevice;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * A few training steps of one BatchNorm layer on every device, checked against the float64
 * reference, then a small timing table. The bench command gives the real performance figures.
 */
@Command(name = "demo", mixinStandardHelpOptions = true,
        description = "Train a BatchNorm layer for a few steps on every device, check each against the float64 "
                + "reference and time a training step.")
final class DemoCommand implements java.util.concurrent.Callable<Integer> {
    /** PyTorch's CPU-vs-GPU bound for float32 results against a float64 reference. */
    private static final double TOLERANCE = 2e-4;
    /** dgamma/dbeta are sums: their bound grows with the sum of magnitudes (see BatchNormParityTest). */
    private static final double SUM_TOLERANCE = 2e-6;

    @Option(names = "--shape", split = ",", description = "Input shape N,C[,spatial...] (default ${DEFAULT-VALUE}).",
            defaultValue = "32,64,28,28")
    int[] shape;

    @Option(names = "--steps", description = "Training steps (default ${DEFAULT-VALUE}).", defaultValue = "5")
    int steps;

    @Option(names = "--repeats", description = "Timed training steps per device (default ${DEFAULT-VALUE}).",
            defaultValue = "20")
    int repeats;

    @Option(names = "--seed", description = "Random seed (default ${DEFAULT-VALUE}).", defaultValue = "1")
    long seed;

    private record Outcome(DeviceInfo device, double yErr, double dxErr, double dgammaErr, double dbetaErr,
                           double runningErr, boolean pass, double medianMs) {
    }

    @Override
    public Integer call() {
        if (steps < 1 || repeats < 1) {
            throw new IllegalArgumentException("--steps and --repeats must be >= 1, got " + steps + " and " + repeats);
        }
        Geometry g = Geometry.of(shape, Layout.CHANNELS_FIRST);
        if (g.valuesPerChannel() < 2) {
            throw new IllegalArgumentException("the demo trains, so it needs more than 1 value per channel, got shape "
                    + Arrays.toString(shape));
        }
        System.out.printf(Locale.ROOT, "clnorm demo: BatchNorm(%d) on input %s, %d training steps, seed %d%n",
                g.channels(), Arrays.toString(shape), steps, seed);
        List<String> selectors = new ArrayList<>();
        selectors.add("java");
        for (ClDevice d : Devices.openClDevices()) {
            selectors.add(d.info().id());
        }
        for (String p : Devices.openClProblems()) {
            System.out.println("note: " + p);
        }

        Batch[] batches = new Batch[steps];
        for (int s = 0; s < steps; s++) {
            batches[s] = Batch.random(g, seed * 1000 + s);
        }
        System.out.println("computing the float64 reference...");
        Expected expected = Expected.of(g, batches);

        List<Outcome> outcomes = new ArrayList<>();
        for (String selector : selectors) {
            try (Backend backend = Devices.open(selector)) {
                System.out.println("running on " + backend.info().describe() + " ...");
                outcomes.add(runOn(backend, g, batches, expected));
            }
        }

        System.out.println();
        System.out.println("Agreement with the float64 reference after " + steps + " steps (max |error|; tolerance "
                + TOLERANCE + ", dgamma/dbeta " + TOLERANCE + " + " + SUM_TOLERANCE + " x sum of |terms|):");
        Table agreement = new Table("device", "y", "dx", "dgamma", "dbeta", "running stats", "result");
        for (Outcome o : outcomes) {
            agreement.row(o.device().id() + " " + o.device().name(), sci(o.yErr()), sci(o.dxErr()), sci(o.dgammaErr()),
                    sci(o.dbetaErr()), sci(o.runningErr()), o.pass() ? "PASS" : "FAIL");
        }
        System.out.print(agreement.render());

        System.out.println();
        System.out.println("Training step (forward + backward + running-stat update, device-resident tensors), median of "
                + repeats + " (a quick look; `scripts/clnorm bench` is the measurement tool):");
        Table timing = new Table("device", "median ms", "GB/s (24 B/elem)", "vs Java");
        double javaMs = outcomes.get(0).medianMs();
        double bytes = 24.0 * g.elements();  // 12 B/element forward + 12 B/element backward (REFERENCE.md §3)
        for (Outcome o : outcomes) {
            timing.row(o.device().id() + " " + o.device().name(), String.format(Locale.ROOT, "%.3f", o.medianMs()),
                    String.format(Locale.ROOT, "%.2f", bytes / (o.medianMs() * 1e6)),
                    String.format(Locale.ROOT, "%.2fx", javaMs / o.medianMs()));
        }
        System.out.print(timing.render());
        boolean all = outcomes.stream().allMatch(Outcome::pass);
        System.out.println(all ? "All devices agree with the float64 reference." : "SOME DEVICES DISAGREE.");
        return all ? 0 : 1;
    }

    private static String sci(double v) {
        return String.format(Locale.ROOT, "%.2e", v);
    }

    /** One batch of input and upstream gradient. */
    private record Batch(float[] x, float[] dy) {
        static Batch random(Geometry g, long seed) {
            SplittableRandom r = new SplittableRandom(seed);
            double[] mean = new double[g.channels()];
            double[] std = new double[g.channels()];
            for (int c = 0; c < g.channels(); c++) {
                mean[c] = (r.nextDouble() * 2 - 1) * 3;
                std[c] = 0.5 + 1.5 * r.nextDouble();
            }
            float[] x = new float[(int) g.elements()];
            float[] dy = new float[x.length];
            for (int k = 0; k < x.length; k++) {
                int c = (int) ((k / g.inner()) % g.channels());
                x[k] = (float) (mean[c] + std[c] * gaussian(r));
                dy[k] = (float) gaussian(r);
            }
            return new Batch(x, dy);
        }

        private static double gaussian(SplittableRandom r) {
            return Math.sqrt(-2 * Math.log(1 - r.nextDouble())) * Math.cos(2 * Math.PI * r.nextDouble());
        }
    }

    /** The reference's results for the last step and its running statistics after all steps. */
    private record Expected(double[] y, ReferenceBatchNorm.Grads grads, ReferenceBatchNorm.GradMagnitudes magnitudes,
                            double[] runningMean, double[] runningVar) {
        static Expected of(Geometry g, Batch[] batches) {
            int nc = g.channels();
            double[] rm = new double[nc];
            double[] rv = new double[nc];
            Arrays.fill(rv, 1.0);
            double[] gamma = new double[nc];
            Arrays.fill(gamma, 1.0);
            double[] x = null;
            for (Batch b : batches) {
                x = ReferenceBatchNorm.toDouble(b.x());
                ReferenceBatchNorm.updateRunning(rm, rv, ReferenceBatchNorm.stats(x, g), 0.1);
            }
            double[] dy = ReferenceBatchNorm.toDouble(batches[batches.length - 1].dy());
            double[] y = ReferenceBatchNorm.trainingForward(x, g, gamma, new double[nc], 1e-5);
            return new Expected(y, ReferenceBatchNorm.backward(x, dy, g, gamma, 1e-5),
                    ReferenceBatchNorm.gradMagnitudes(x, dy, g, 1e-5), rm, rv);
        }
    }

    private Outcome runOn(Backend backend, Geometry g, Batch[] batches, Expected e) {
        int nc = g.channels();
        try (BatchNorm bn = BatchNorm.builder(nc).backend(backend).build();
             Tensor x = Tensor.zeros(backend, Layout.CHANNELS_FIRST, shape);
             Tensor dy = Tensor.zeros(backend, Layout.CHANNELS_FIRST, shape);
             Tensor y = Tensor.zeros(backend, Layout.CHANNELS_FIRST, shape);
             Tensor dx = Tensor.zeros(backend, Layout.CHANNELS_FIRST, shape)) {
            for (Batch b : batches) {
                x.upload(b.x());
                dy.upload(b.dy());
                bn.forwardTraining(x, y);
                bn.backward(x, dy, dx);
            }
            double yErr = maxErr(e.y(), y.download());
            double dxErr = maxErr(e.grads().dx(), dx.download());
            float[] dgamma = bn.gradWeight();
            float[] dbeta = bn.gradBias();
            boolean sumsOk = true;
            for (int c = 0; c < nc; c++) {
                sumsOk &= Math.abs(dgamma[c] - e.grads().dgamma()[c])
                        <= TOLERANCE + SUM_TOLERANCE * e.magnitudes().dgamma()[c];
                sumsOk &= Math.abs(dbeta[c] - e.grads().dbeta()[c])
                        <= TOLERANCE + SUM_TOLERANCE * e.magnitudes().dbeta()[c];
            }
            double runningErr = Math.max(maxErr(e.runningMean(), bn.runningMean()),
                    maxErr(e.runningVar(), bn.runningVar()));
            double dgErr = maxErr(e.grads().dgamma(), dgamma);
            double dbErr = maxErr(e.grads().dbeta(), dbeta);
            boolean pass = yErr <= TOLERANCE && dxErr <= TOLERANCE && runningErr <= TOLERANCE && sumsOk;

            // Timing: same tensors, nothing crosses to the host inside the loop.
            for (int w = 0; w < 3; w++) {
                bn.forwardTraining(x, y);
                bn.backward(x, dy, dx);
            }
            backend.finish();
            double[] ms = new double[repeats];
            for (int r = 0; r < repeats; r++) {
                long t0 = System.nanoTime();
                bn.forwardTraining(x, y);
                bn.backward(x, dy, dx);
                backend.finish();
                ms[r] = (System.nanoTime() - t0) / 1e6;
            }
            Arrays.sort(ms);
            double median = repeats % 2 == 1 ? ms[repeats / 2] : (ms[repeats / 2 - 1] + ms[repeats / 2]) / 2;
            return new Outcome(backend.info(), yErr, dxErr, dgErr, dbErr, runningErr, pass, median);
        }
    }

    private static double maxErr(double[] expected, float[] actual) {
        double worst = 0;
        for (int i = 0; i < expected.length; i++) {
            double d = Math.abs(expected[i] - actual[i]);
            worst = Double.isNaN(d) ? Double.POSITIVE_INFINITY : Math.max(worst, d);
        }
        return worst;
    }
}
