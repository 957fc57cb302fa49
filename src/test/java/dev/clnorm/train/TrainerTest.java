package dev.clnorm.train;

import dev.clnorm.backend.Backend;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.Arrays;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The training loop end to end on a small learnable problem: shuffles, loss readings, evaluation.
 * Each sample is a noisy copy of one of 4 random prototypes; the label is the prototype.
 */
class TrainerTest {
    private static final int FEATURES = 16;
    private static final int CLASSES = 4;

    static Dataset prototypes(String name, int n, long seed) {
        SplittableRandom protoRng = new SplittableRandom(99);
        float[][] proto = new float[CLASSES][FEATURES];
        for (float[] p : proto) {
            for (int f = 0; f < FEATURES; f++) {
                p[f] = (float) protoRng.nextDouble();
            }
        }
        SplittableRandom r = new SplittableRandom(seed);
        float[] x = new float[n * FEATURES];
        int[] y = new int[n];
        for (int i = 0; i < n; i++) {
            y[i] = r.nextInt(CLASSES);
            for (int f = 0; f < FEATURES; f++) {
                x[i * FEATURES + f] = (float) Math.min(1, Math.max(0, proto[y[i]][f] + 0.25 * (r.nextDouble() - 0.5)));
            }
        }
        return new Dataset(name, x, y, n, FEATURES, CLASSES);
    }

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void trainsASmallProblem(Backend backend) {
        Dataset train = prototypes("train", 200, 1);
        Dataset test = prototypes("test", 50, 2);
        Trainer.Options o = new Trainer.Options(3, 16, 1e-2, 7, 4, 32, new int[]{FEATURES, 24, 24, CLASSES});
        int[] epochEnds = new int[1];
        try (TrainOps ops = TrainOps.of(backend); Trainer.Resident data = new Trainer.Resident(backend, train, test, 3, 7)) {
            for (boolean bn : new boolean[]{true, false}) {
                Trainer.Run run = Trainer.train(ops, data, bn, o, new Trainer.Listener() {
                    @Override
                    public void epochEnd(String variant, Trainer.EpochResult r) {
                        epochEnds[0]++;
                    }
                });
                String tag = backend.info().id() + " " + run.variant();
                assertEquals(3, run.epochs().size(), tag);
                // 200 / 16 = 12 steps per epoch (the last 8 samples dropped), a reading every 4 steps.
                assertEquals(12, run.last().steps(), tag);
                assertEquals(9, run.curve().size(), tag);
                assertEquals(36, run.curve().get(8).step(), tag);
                assertEquals(3.0, run.curve().get(8).epoch(), 1e-12, tag);
                // Chance is 25%; the prototypes are far apart compared with the noise.
                assertTrue(run.last().test().accuracy() >= 0.9, tag + " accuracy " + run.last().test().accuracy());
                assertEquals(50, run.last().test().count());
                double first = run.curve().get(0).loss();
                double last = run.curve().get(run.curve().size() - 1).loss();
                assertTrue(last < first / 2, tag + " loss fell from " + first + " to " + last);
                assertEquals(bn, run.state().containsKey("bn1.running_var"), tag);
            }
        }
        assertEquals(6, epochEnds[0]);
    }

    /**
     * With the cosine schedule, step t of T runs at lr (1 + cos(pi t / T)) / 2: the run equals, bit for
     * bit, a model stepped by hand at those rates, and differs from the constant-rate run.
     */
    @org.junit.jupiter.api.Test
    void cosineScheduleSetsEveryStepsRate() {
        Dataset train = prototypes("train", 200, 1);
        Dataset test = prototypes("test", 50, 2);
        int[] widths = {FEATURES, 24, 24, CLASSES};
        double lr = 1e-2;
        try (dev.clnorm.backend.java.JavaBackend backend = new dev.clnorm.backend.java.JavaBackend(2);
             TrainOps ops = TrainOps.of(backend);
             Trainer.Resident data = new Trainer.Resident(backend, train, test, 2, 7)) {
            for (boolean bn : new boolean[]{true, false}) {
                Trainer.Options cosine = new Trainer.Options(2, 16, lr, 7, 4, 32, widths, 0, 1e-8, LrSchedule.COSINE);
                Trainer.Run run = Trainer.train(ops, data, bn, cosine, new Trainer.Listener() {
                });
                Trainer.Run constant = Trainer.train(ops, data, bn, new Trainer.Options(2, 16, lr, 7, 4, 32, widths),
                        new Trainer.Listener() {
                        });
                int steps = 200 / 16;
                int total = 2 * steps;
                try (Mlp byHand = new Mlp(ops, widths, bn, 7, Mlp.Adam.of(lr))) {
                    for (int t = 0; t < total; t++) {
                        byHand.setLearningRate(lr * 0.5 * (1 + Math.cos(Math.PI * t / total)));
                        int epoch = t / steps;
                        byHand.trainStep(data.trainImages, data.trainLabels, data.orders,
                                epoch * train.count() + (t % steps) * 16, 16);
                    }
                    assertEquals(lr * 0.5 * (1 + Math.cos(Math.PI * (total - 1) / total)), byHand.learningRate());
                    Map<String, Mlp.Named> expected = byHand.state();
                    assertEquals(expected.keySet(), run.state().keySet());
                    boolean differs = false;
                    for (String name : expected.keySet()) {
                        assertArrayEquals(expected.get(name).values(), run.state().get(name).values(),
                                name + " (batch norm " + bn + ")");
                        differs |= !Arrays.equals(expected.get(name).values(), constant.state().get(name).values());
                    }
                    assertTrue(differs, "the schedule changed the training (batch norm " + bn + ")");
                }
            }
        }
    }

    @org.junit.jupiter.api.Test
    void optionsRejectAMissingSchedule() {
        IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                () -> new Trainer.Options(1, 16, 1e-3, 1, 1, 1, new int[]{4, 2}, 0, 1e-8, null));
        assertTrue(e.getMessage().contains("schedule"), e.getMessage());
    }

    @org.junit.jupiter.api.Test
    void shufflesArePermutationsThatDifferPerEpoch() {
        int[] s = Trainer.shuffles(50, 2, 3);
        int[] first = Arrays.copyOfRange(s, 0, 50);
        int[] second = Arrays.copyOfRange(s, 50, 100);
        int[] sorted = first.clone();
        Arrays.sort(sorted);
        for (int i = 0; i < 50; i++) {
            assertEquals(i, sorted[i]);
        }
        sorted = second.clone();
        Arrays.sort(sorted);
        for (int i = 0; i < 50; i++) {
            assertEquals(i, sorted[i]);
        }
        assertTrue(!Arrays.equals(first, second), "each epoch has its own order");
        assertTrue(Arrays.equals(s, Trainer.shuffles(50, 2, 3)), "the seed fixes the order");
    }
}
