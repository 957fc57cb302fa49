package dev.clnorm;

import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Proves the float64 reference's backward against central finite differences of its own forward,
 * so the reference every backend is judged by is itself right. Loss = sum(w * y) for a fixed
 * random w, whose gradient with respect to y is w.
 */
class ReferenceGradientCheckTest {
    private static final double H = 1e-6;
    /** Central differences have O(h^2) truncation error plus rounding ~1e-16/h: 1e-6 is generous. */
    private static final double TOL = 1e-6;

    private static double loss(double[] x, double[] w, Geometry g, double[] gamma, double[] beta, double eps) {
        double[] y = ReferenceBatchNorm.trainingForward(x, g, gamma, beta, eps);
        double s = 0;
        for (int i = 0; i < y.length; i++) {
            s += w[i] * y[i];
        }
        return s;
    }

    private static double[] random(int n, SplittableRandom r, double lo, double hi) {
        double[] v = new double[n];
        for (int i = 0; i < n; i++) {
            v[i] = lo + (hi - lo) * r.nextDouble();
        }
        return v;
    }

    private static void check(int[] shape, Layout layout) {
        Geometry g = Geometry.of(shape, layout);
        SplittableRandom r = new SplittableRandom(42);
        int n = (int) g.elements();
        double[] x = random(n, r, -3, 3);
        double[] w = random(n, r, -1, 1);
        double[] gamma = random(g.channels(), r, 0.5, 1.5);
        double[] beta = random(g.channels(), r, -1, 1);
        double eps = 1e-3;  // a larger eps keeps the check sensitive to eps being applied consistently

        ReferenceBatchNorm.Grads grads = ReferenceBatchNorm.backward(x, w, g, gamma, eps);
        double worst = 0;
        for (int i = 0; i < n; i++) {
            double keep = x[i];
            x[i] = keep + H;
            double up = loss(x, w, g, gamma, beta, eps);
            x[i] = keep - H;
            double down = loss(x, w, g, gamma, beta, eps);
            x[i] = keep;
            double numeric = (up - down) / (2 * H);
            worst = Math.max(worst, Math.abs(numeric - grads.dx()[i]));
            assertEquals(numeric, grads.dx()[i], TOL, "dx[" + i + "]");
        }
        for (int c = 0; c < g.channels(); c++) {
            double keep = gamma[c];
            gamma[c] = keep + H;
            double up = loss(x, w, g, gamma, beta, eps);
            gamma[c] = keep - H;
            double down = loss(x, w, g, gamma, beta, eps);
            gamma[c] = keep;
            assertEquals((up - down) / (2 * H), grads.dgamma()[c], TOL, "dgamma[" + c + "]");

            keep = beta[c];
            beta[c] = keep + H;
            up = loss(x, w, g, gamma, beta, eps);
            beta[c] = keep - H;
            down = loss(x, w, g, gamma, beta, eps);
            beta[c] = keep;
            assertEquals((up - down) / (2 * H), grads.dbeta()[c], TOL, "dbeta[" + c + "]");
        }
        assertTrue(worst < TOL);
    }

    @Test
    void dxDgammaDbetaMatchFiniteDifferencesRank2() {
        check(new int[]{6, 3}, Layout.CHANNELS_FIRST);
    }

    @Test
    void dxDgammaDbetaMatchFiniteDifferencesRank4() {
        check(new int[]{2, 3, 2, 3}, Layout.CHANNELS_FIRST);
    }

    @Test
    void dxDgammaDbetaMatchFiniteDifferencesChannelsLast() {
        check(new int[]{2, 2, 3, 4}, Layout.CHANNELS_LAST);
    }

    @Test
    void statisticsAgreeWithDirectFormulas() {
        // The reference's Commons Math statistics against the definitions, on hand-checkable data.
        Geometry g = Geometry.of(new int[]{4, 1}, Layout.CHANNELS_FIRST);
        ReferenceBatchNorm.Stats s = ReferenceBatchNorm.stats(new double[]{1, 2, 3, 4}, g);
        assertEquals(2.5, s.mean()[0], 0);
        assertEquals(1.25, s.var()[0], 1e-15);         // (2.25 + 0.25 + 0.25 + 2.25) / 4
        assertEquals(5.0 / 3.0, s.unbiasedVar()[0], 1e-15);  // same sum / 3
    }
}
