package dev.clnorm;

import dev.clnorm.backend.Backend;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import static dev.clnorm.Close.assertClose;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Eight threads at once on one device, every result checked against the float64 reference:
 * separate layers running training steps (forward, backward) and inference concurrently, and one
 * layer shared by all threads (its methods are synchronized; a forward/backward pair is not shared).
 * Tolerances as in {@link BatchNormParityTest}: 2e-4 absolute, dgamma/dbeta 2e-4 + 2e-6 * sum(|terms|).
 */
class ConcurrencyTest {
    private static final int THREADS = 8;
    private static final int STEPS = 4;
    private static final double TOL = 2e-4;
    private static final double EPS = 1e-5;

    /** Runs every task on its own thread, all released together; rethrows the first failure. */
    private static <T> List<T> runTogether(List<Callable<T>> tasks) throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(tasks.size());
        CyclicBarrier start = new CyclicBarrier(tasks.size());
        try {
            List<Future<T>> futures = new ArrayList<>();
            for (Callable<T> task : tasks) {
                futures.add(pool.submit(() -> {
                    start.await(30, TimeUnit.SECONDS);
                    return task.call();
                }));
            }
            List<T> results = new ArrayList<>();
            for (Future<T> f : futures) {
                try {
                    results.add(f.get(120, TimeUnit.SECONDS));
                } catch (ExecutionException e) {
                    if (e.getCause() instanceof Error err) {
                        throw err;
                    }
                    throw (Exception) e.getCause();
                }
            }
            return results;
        } finally {
            pool.shutdownNow();
        }
    }

    private static double[] ones(int n) {
        double[] v = new double[n];
        Arrays.fill(v, 1.0);
        return v;
    }

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void eightThreadsTrainTheirOwnLayersOnOneDevice(Backend backend) throws Exception {
        long buffers = backend.liveBuffers();
        long kernels = backend.liveKernels();
        List<Callable<Integer>> tasks = new ArrayList<>();
        for (int t = 0; t < THREADS; t++) {
            final int id = t;
            // Different shapes, channel counts and layouts per thread, so a mix-up shows.
            Layout layout = t % 2 == 0 ? Layout.CHANNELS_FIRST : Layout.CHANNELS_LAST;
            int n = 4 + t;
            int c = 2 + t % 3;
            int[] shape = layout == Layout.CHANNELS_FIRST ? new int[]{n, c, 5, 7} : new int[]{n, 5, 7, c};
            Geometry g = Geometry.of(shape, layout);
            float[][] xs = new float[STEPS][];
            float[][] dys = new float[STEPS][];
            for (int s = 0; s < STEPS; s++) {
                xs[s] = TestData.channelData(g, 1000L * t + s, 3.0, 0.5, 2.0);
                dys[s] = TestData.gaussian(xs[s].length, 5000L * t + s);
            }
            float[] gamma = TestData.uniform(c, 77 + t, 0.5, 1.5);
            float[] beta = TestData.uniform(c, 99 + t, -1, 1);
            tasks.add(() -> {
                double[] gd = TestData.toDouble(gamma);
                double[] bd = TestData.toDouble(beta);
                double[] rm = new double[c];
                double[] rv = ones(c);
                try (BatchNorm bn = BatchNorm.builder(c).backend(backend).build();
                     Tensor y = Tensor.zeros(backend, layout, shape)) {
                    bn.setWeight(gamma);
                    bn.setBias(beta);
                    for (int s = 0; s < STEPS; s++) {
                        String where = "thread " + id + " step " + s + " on " + backend;
                        double[] xd = TestData.toDouble(xs[s]);
                        double[] dyd = TestData.toDouble(dys[s]);
                        try (Tensor x = Tensor.upload(backend, xs[s], layout, shape);
                             Tensor dy = Tensor.upload(backend, dys[s], layout, shape)) {
                            bn.forwardTraining(x, y);
                            try (Tensor dx = bn.backward(x, dy)) {
                                ReferenceBatchNorm.Stats st = ReferenceBatchNorm.stats(xd, g);
                                assertClose(ReferenceBatchNorm.normalize(xd, g, st.mean(), st.var(), gd, bd, EPS),
                                        y.download(), TOL, "y of " + where);
                                ReferenceBatchNorm.Grads r = ReferenceBatchNorm.backward(xd, dyd, g, gd, EPS);
                                assertClose(r.dx(), dx.download(), TOL, "dx of " + where);
                                ReferenceBatchNorm.GradMagnitudes mag =
                                        ReferenceBatchNorm.gradMagnitudes(xd, dyd, g, EPS);
                                assertClose(r.dgamma(), bn.gradWeight(), sumTolerance(mag.dgamma()), "dgamma of " + where);
                                assertClose(r.dbeta(), bn.gradBias(), sumTolerance(mag.dbeta()), "dbeta of " + where);
                                ReferenceBatchNorm.updateRunning(rm, rv, st, 0.1);
                            }
                        }
                    }
                    assertClose(rm, bn.runningMean(), TOL, "running mean of thread " + id);
                    assertClose(rv, bn.runningVar(), TOL, "running var of thread " + id);
                    try (Tensor x = Tensor.upload(backend, xs[0], layout, shape);
                         Tensor out = bn.forwardInference(x)) {
                        assertClose(ReferenceBatchNorm.inference(TestData.toDouble(xs[0]), g, rm, rv, gd, bd, EPS),
                                out.download(), TOL, "inference of thread " + id);
                    }
                    return (int) bn.numBatchesTracked();
                }
            });
        }
        for (int tracked : runTogether(tasks)) {
            assertEquals(STEPS, tracked);
        }
        backend.finish();
        assertEquals(buffers, backend.liveBuffers(), "threads released every buffer");
        assertEquals(kernels, backend.liveKernels(), "threads released every kernel");
    }

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void eightThreadsShareOneLayer(Backend backend) throws Exception {
        int c = 3;
        int[] shape = {6, c, 4, 5};
        Geometry g = Geometry.of(shape, Layout.CHANNELS_FIRST);
        float[] batch = TestData.channelData(g, 4242, 3.0, 0.5, 2.0);
        double[] bd = TestData.toDouble(batch);
        ReferenceBatchNorm.Stats st = ReferenceBatchNorm.stats(bd, g);
        double[] yTrain = ReferenceBatchNorm.normalize(bd, g, st.mean(), st.var(), ones(c), new double[c], EPS);
        int perThread = 5;
        try (BatchNorm shared = BatchNorm.builder(c).backend(backend).build()) {
            // Training from 8 threads on the same batch: every call is atomic, so each output is the
            // batch's normalisation, and the running statistics see exactly 8 * 5 updates, whose order
            // does not matter because they are all the same batch.
            List<Callable<Void>> train = new ArrayList<>();
            for (int t = 0; t < THREADS; t++) {
                final int id = t;
                train.add(() -> {
                    for (int k = 0; k < perThread; k++) {
                        assertClose(yTrain, shared.forwardTraining(batch, shape), TOL, "thread " + id + " call " + k);
                    }
                    return null;
                });
            }
            runTogether(train);
            int updates = THREADS * perThread;
            assertEquals(updates, shared.numBatchesTracked());
            double[] rm = new double[c];
            double[] rv = ones(c);
            for (int k = 0; k < updates; k++) {
                ReferenceBatchNorm.updateRunning(rm, rv, st, 0.1);
            }
            assertClose(rm, shared.runningMean(), TOL, "running mean after " + updates + " concurrent updates");
            assertClose(rv, shared.runningVar(), TOL, "running var after " + updates + " concurrent updates");

            // Inference from 8 threads on different inputs: all read the same running statistics.
            List<Callable<Void>> infer = new ArrayList<>();
            for (int t = 0; t < THREADS; t++) {
                final int id = t;
                infer.add(() -> {
                    for (int k = 0; k < perThread; k++) {
                        float[] x = TestData.channelData(g, 31L * id + k, 3.0, 0.5, 2.0);
                        double[] expected = ReferenceBatchNorm.inference(TestData.toDouble(x), g, rm, rv, ones(c),
                                new double[c], EPS);
                        try (Tensor xt = Tensor.upload(backend, x, shape); Tensor y = shared.forwardInference(xt)) {
                            assertClose(expected, y.download(), TOL, "inference thread " + id + " call " + k);
                        }
                    }
                    return null;
                });
            }
            runTogether(infer);
        }
    }

    private static double[] sumTolerance(double[] magnitudes) {
        double[] t = new double[magnitudes.length];
        for (int i = 0; i < t.length; i++) {
            t[i] = TOL + 2e-6 * magnitudes[i];
        }
        return t;
    }
}
