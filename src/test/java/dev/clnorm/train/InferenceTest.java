package dev.clnorm.train;

import dev.clnorm.backend.Backend;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Evaluation runs in inference mode (batch-norm running statistics): a sample's prediction does not
 * depend on the batch around it, a batch of 1 included, and equals the float64 reference's
 * inference-mode result.
 */
class InferenceTest {
    private static final int[] WIDTHS = {10, 12, 12, 5};
    private static final int BATCH = 8;

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void batchOfOnePredictsLikeTheSameSampleInABatch(Backend backend) {
        try (TrainOps ops = TrainOps.of(backend);
             Mlp model = new Mlp(ops, WIDTHS, true, 21, Mlp.Adam.of(1e-2));
             TinyData data = new TinyData(backend, 64, WIDTHS[0], WIDTHS[3], 22)) {
            // A few steps so that running statistics and parameters are far from their initial values.
            for (int s = 0; s < 6; s++) {
                model.trainStep(data.images, data.labelBuffer, data.order, (s % 4) * 16, 16);
            }
            float[] x = Arrays.copyOf(data.x, BATCH * WIDTHS[0]);
            float[] batchLogits = model.logits(x, BATCH);
            int[] batchPred = model.predict(x, BATCH);
            int classes = WIDTHS[3];

            ReferenceMlp ref = new ReferenceMlp(WIDTHS, true, model.state());
            double[] xd = new double[x.length];
            for (int i = 0; i < x.length; i++) {
                xd[i] = x[i];
            }
            double[] expected = ref.forward(xd, null, BATCH, false, false).logits;
            double[] trainingMode = ref.forward(xd, null, BATCH, true, false).logits;

            double spread = 0;
            for (int r = 0; r < BATCH; r++) {
                float[] one = model.logits(Arrays.copyOfRange(x, r * WIDTHS[0], (r + 1) * WIDTHS[0]), 1);
                int[] onePred = model.predict(Arrays.copyOfRange(x, r * WIDTHS[0], (r + 1) * WIDTHS[0]), 1);
                assertEquals(batchPred[r], onePred[0], backend.info().id() + ": prediction of sample " + r
                        + " alone vs in a batch of " + BATCH);
                assertEquals(argmax(batchLogits, r, classes), batchPred[r], "predict() is the argmax of logits()");
                for (int c = 0; c < classes; c++) {
                    float inBatch = batchLogits[r * classes + c];
                    // Inference is per sample; only the matrix products' summation order may differ
                    // between 1 and 8 rows: float32 rounding of sums of ~12 terms, ~1e-6.
                    if (Math.abs(one[c] - inBatch) > 1e-5 + 1e-5 * Math.abs(inBatch)) {
                        fail(backend.info().id() + " sample " + r + " class " + c + ": alone " + one[c]
                                + ", in a batch " + inBatch);
                    }
                    // And it is the reference's inference-mode (running statistics) result.
                    if (Math.abs(expected[r * classes + c] - inBatch) > 1e-4 + 1e-4 * Math.abs(inBatch)) {
                        fail(backend.info().id() + " sample " + r + " class " + c + ": reference inference "
                                + expected[r * classes + c] + ", device " + inBatch);
                    }
                    spread = Math.max(spread, Math.abs(trainingMode[r * classes + c] - expected[r * classes + c]));
                }
            }
            // Not vacuous: batch statistics would give clearly different logits than running ones.
            assertTrue(spread > 1e-2, "training-mode and inference-mode logits differ by " + spread);
        }
    }

    private static int argmax(float[] z, int r, int classes) {
        int best = 0;
        for (int c = 1; c < classes; c++) {
            if (z[r * classes + c] > z[r * classes + best]) {
                best = c;
            }
        }
        return best;
    }
}
