package dev.clnorm.train;

import dev.clnorm.backend.Backend;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.Arrays;
import java.util.SplittableRandom;

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
