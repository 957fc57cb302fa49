package dev.clnorm;

import org.apache.commons.math3.stat.descriptive.moment.Mean;
import org.apache.commons.math3.stat.descriptive.moment.Variance;

/**
 * The float64 batch-norm reference every backend is tested against (and the demo and parity tools
 * compare with): the textbook formulas of Ioffe & Szegedy written once, plainly, with Commons Math
 * computing the statistics. Slow on purpose; never used on a hot path.
 */
public final class ReferenceBatchNorm {
    private ReferenceBatchNorm() {
    }

    /** Values of channel c gathered from a tensor of the given geometry. */
    public static double[] channel(float[] x, Geometry g, int c) {
        double[] v = new double[(int) g.valuesPerChannel()];
        int k = 0;
        for (int o = 0; o < g.outer(); o++) {
            for (int i = 0; i < g.inner(); i++) {
                v[k++] = x[(o * g.channels() + c) * g.inner() + i];
            }
        }
        return v;
    }

    public static double[] channel(double[] x, Geometry g, int c) {
        double[] v = new double[(int) g.valuesPerChannel()];
        int k = 0;
        for (int o = 0; o < g.outer(); o++) {
            for (int i = 0; i < g.inner(); i++) {
                v[k++] = x[(o * g.channels() + c) * g.inner() + i];
            }
        }
        return v;
    }

    public static double[] toDouble(float[] x) {
        double[] d = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            d[i] = x[i];
        }
        return d;
    }

    /** Batch mean, biased variance (normalises) and unbiased variance (feeds running_var). */
    public record Stats(double[] mean, double[] var, double[] unbiasedVar) {
    }

    public static Stats stats(double[] x, Geometry g) {
        int nc = g.channels();
        double[] mean = new double[nc];
        double[] var = new double[nc];
        double[] unbiased = new double[nc];
        for (int c = 0; c < nc; c++) {
            double[] v = channel(x, g, c);
            mean[c] = new Mean().evaluate(v);
            var[c] = new Variance(false).evaluate(v);
            unbiased[c] = new Variance(true).evaluate(v);
        }
        return new Stats(mean, var, unbiased);
    }

    /** y = gamma * (x - mean) / sqrt(var + eps) + beta, per channel. */
    public static double[] normalize(double[] x, Geometry g, double[] mean, double[] var, double[] gamma, double[] beta,
                              double eps) {
        double[] y = new double[x.length];
        for (int o = 0; o < g.outer(); o++) {
            for (int c = 0; c < g.channels(); c++) {
                double invstd = 1.0 / Math.sqrt(var[c] + eps);
                for (int i = 0; i < g.inner(); i++) {
                    int at = (o * g.channels() + c) * g.inner() + i;
                    y[at] = gamma[c] * (x[at] - mean[c]) * invstd + beta[c];
                }
            }
        }
        return y;
    }

    public static double[] trainingForward(double[] x, Geometry g, double[] gamma, double[] beta, double eps) {
        Stats s = stats(x, g);
        return normalize(x, g, s.mean(), s.var(), gamma, beta, eps);
    }

    /** PyTorch's update: running = (1 - f) * running + f * batch, with the unbiased variance. */
    public static void updateRunning(double[] runningMean, double[] runningVar, Stats s, double factor) {
        for (int c = 0; c < runningMean.length; c++) {
            runningMean[c] = (1 - factor) * runningMean[c] + factor * s.mean()[c];
            runningVar[c] = (1 - factor) * runningVar[c] + factor * s.unbiasedVar()[c];
        }
    }

    /** dx, dgamma, dbeta of the training forward. */
    public record Grads(double[] dx, double[] dgamma, double[] dbeta) {
    }

    /**
     * Backward in the compact form: dbeta = sum dy, dgamma = sum dy*xhat,
     * dx = gamma*invstd/m * (m*dy - dbeta - xhat*dgamma).
     */
    public static Grads backward(double[] x, double[] dy, Geometry g, double[] gamma, double eps) {
        Stats s = stats(x, g);
        int nc = g.channels();
        double m = g.valuesPerChannel();
        double[] dgamma = new double[nc];
        double[] dbeta = new double[nc];
        double[] invstd = new double[nc];
        for (int c = 0; c < nc; c++) {
            invstd[c] = 1.0 / Math.sqrt(s.var()[c] + eps);
        }
        for (int o = 0; o < g.outer(); o++) {
            for (int c = 0; c < nc; c++) {
                for (int i = 0; i < g.inner(); i++) {
                    int at = (o * nc + c) * g.inner() + i;
                    double xhat = (x[at] - s.mean()[c]) * invstd[c];
                    dbeta[c] += dy[at];
                    dgamma[c] += dy[at] * xhat;
                }
            }
        }
        double[] dx = new double[x.length];
        for (int o = 0; o < g.outer(); o++) {
            for (int c = 0; c < nc; c++) {
                for (int i = 0; i < g.inner(); i++) {
                    int at = (o * nc + c) * g.inner() + i;
                    double xhat = (x[at] - s.mean()[c]) * invstd[c];
                    dx[at] = gamma[c] * invstd[c] / m * (m * dy[at] - dbeta[c] - xhat * dgamma[c]);
                }
            }
        }
        return new Grads(dx, dgamma, dbeta);
    }

    /** Inference: the same affine map with the running statistics. */
    public static double[] inference(double[] x, Geometry g, double[] runningMean, double[] runningVar, double[] gamma,
                              double[] beta, double eps) {
        return normalize(x, g, runningMean, runningVar, gamma, beta, eps);
    }

    /**
     * Per channel, sum(|dy|) and sum(|dy * xhat|): the magnitudes that bound the float32 rounding
     * of dbeta and dgamma, which are sums of those terms.
     */
    public record GradMagnitudes(double[] dbeta, double[] dgamma) {
    }

    public static GradMagnitudes gradMagnitudes(double[] x, double[] dy, Geometry g, double eps) {
        Stats s = stats(x, g);
        int nc = g.channels();
        double[] b = new double[nc];
        double[] gm = new double[nc];
        for (int o = 0; o < g.outer(); o++) {
            for (int c = 0; c < nc; c++) {
                double invstd = 1.0 / Math.sqrt(s.var()[c] + eps);
                for (int i = 0; i < g.inner(); i++) {
                    int at = (o * nc + c) * g.inner() + i;
                    b[c] += Math.abs(dy[at]);
                    gm[c] += Math.abs(dy[at] * (x[at] - s.mean()[c]) * invstd);
                }
            }
        }
        return new GradMagnitudes(b, gm);
    }
}
