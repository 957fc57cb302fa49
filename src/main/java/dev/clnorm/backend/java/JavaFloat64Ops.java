package dev.clnorm.backend.java;

import dev.clnorm.Geometry;
import dev.clnorm.backend.BatchNormBuffers;
import dev.clnorm.backend.DeviceBuffer;
import dev.clnorm.backend.ElementType;
import dev.clnorm.backend.Epilogue;
import dev.clnorm.backend.RunningUpdate;

import java.util.stream.IntStream;

/**
 * Batch norm on FLOAT64 tensors for the Java backend: float64 arithmetic with float64 parameters
 * and statistics, one task per channel over all cores.
 *
 * <p>Deliberately plain: the float32 paths ({@link JavaBatchNormOps}) are tuned for bandwidth,
 * while float64 users want precision first. Statistics are the compensated two-pass form
 * (sum of x - shift, then squared deviations from that mean minus the square of the residual
 * sum / m), which is accurate to a few units in the last place of a double for any data a double
 * can hold. The policies are the same as the float32 paths: a channel with non-finite statistics
 * is left out of the running update and counted; ReLU keeps NaN.
 */
final class JavaFloat64Ops {
    private final JavaBackend backend;

    JavaFloat64Ops(JavaBackend backend) {
        this.backend = backend;
    }

    private double[] d(DeviceBuffer b, String what) {
        return JavaBackend.cast(backend, b, ElementType.FLOAT64, what).doubles();
    }

    /** One task per channel; counted as one launch like the float32 paths' parallel passes. */
    private void perChannel(int channels, java.util.function.IntConsumer task) {
        backend.counters().launches.incrementAndGet();
        backend.pool().submit(() -> IntStream.range(0, channels).parallel().forEach(task)).join();
    }

    /** Flat index of value i (0 <= i < outer * inner) of channel c. */
    private static int at(Geometry g, int c, long i) {
        long o = i / g.inner();
        return (int) ((o * g.channels() + c) * g.inner() + i % g.inner());
    }

    void trainingForward(Geometry g, DeviceBuffer xb, DeviceBuffer yb, BatchNormBuffers s, double eps,
                         RunningUpdate update, Epilogue e) {
        double[] x = d(xb, "x");
        double[] mean = d(s.saveMean(), "save_mean");
        double[] meanLo = d(s.saveMeanLo(), "save_mean_lo");
        double[] invstd = d(s.saveInvstd(), "save_invstd");
        double[] rm = d(s.runningMean(), "running_mean");
        double[] rv = d(s.runningVar(), "running_var");
        int[] skipped = JavaBackend.cast(backend, s.skippedUpdates(), ElementType.INT32, "skipped").ints();
        long m = g.valuesPerChannel();
        perChannel(g.channels(), c -> {
            double shift = x[at(g, c, 0)];
            double sum = 0;
            for (long i = 0; i < m; i++) {
                sum += x[at(g, c, i)] - shift;
            }
            double meanDev = sum / m;
            double sq = 0;
            double residual = 0;
            for (long i = 0; i < m; i++) {
                double dev = x[at(g, c, i)] - shift - meanDev;
                sq += dev * dev;
                residual += dev;
            }
            // The second pass's residual sum corrects the first pass's rounding (compensated two-pass).
            double var = Math.max((sq - residual * residual / m) / m, 0);
            double mu = shift + meanDev;
            mean[c] = mu;
            meanLo[c] = 0;
            invstd[c] = 1.0 / Math.sqrt(var + eps);
            if (update.enabled()) {
                double fed = update.unbiasedVariance() ? var * m / (m - 1) : var;
                if (Double.isFinite(mu) && Double.isFinite(fed)) {
                    rm[c] = update.keep() * rm[c] + update.batchWeight() * mu;
                    rv[c] = update.keep() * rv[c] + update.batchWeight() * fed;
                } else {
                    skipped[c] += 1;
                }
            }
        });
        affine(g, x, d(yb, "y"), mean, invstd, d(s.gamma(), "gamma"), d(s.beta(), "beta"), e);
    }

    void inferenceForward(Geometry g, DeviceBuffer xb, DeviceBuffer yb, BatchNormBuffers s, double eps, Epilogue e) {
        double[] rv = d(s.runningVar(), "running_var");
        double[] invstd = new double[g.channels()];
        for (int c = 0; c < invstd.length; c++) {
            invstd[c] = 1.0 / Math.sqrt(rv[c] + eps);
        }
        affine(g, d(xb, "x"), d(yb, "y"), d(s.runningMean(), "running_mean"), invstd, d(s.gamma(), "gamma"),
                d(s.beta(), "beta"), e);
    }

    /** y = act(gamma * (x - mean) * invstd + beta + residual). */
    private void affine(Geometry g, double[] x, double[] y, double[] mean, double[] invstd, double[] gamma,
                        double[] beta, Epilogue e) {
        double[] z = e.residual() != null ? d(e.residual(), "residual") : null;
        boolean relu = e.relu();
        long m = g.valuesPerChannel();
        perChannel(g.channels(), c -> {
            for (long i = 0; i < m; i++) {
                int k = at(g, c, i);
                double v = gamma[c] * ((x[k] - mean[c]) * invstd[c]) + beta[c];
                if (z != null) {
                    v += z[k];
                }
                y[k] = relu && v < 0 ? 0.0 : v;  // NaN is kept, as torch.relu keeps it
            }
        });
    }

    void backward(Geometry g, DeviceBuffer xb, DeviceBuffer dyb, DeviceBuffer dxb, BatchNormBuffers s,
                  DeviceBuffer dgammab, DeviceBuffer dbetab, boolean statsConstant, Epilogue e) {
        double[] x = d(xb, "x");
        double[] dyIn = d(dyb, "dy");
        double[] dx = d(dxb, "dx");
        double[] yAct = e.relu() ? d(e.output(), "y") : null;
        double[] dres = e.residualGrad() != null ? d(e.residualGrad(), "dresidual") : null;
        double[] mean = d(s.saveMean(), "save_mean");
        double[] invstd = d(s.saveInvstd(), "save_invstd");
        double[] gamma = d(s.gamma(), "gamma");
        double[] dgamma = d(dgammab, "dgamma");
        double[] dbeta = d(dbetab, "dbeta");
        long m = g.valuesPerChannel();
        // 1/m scales the mean and variance terms of dx; constant statistics have none.
        double invM = statsConstant ? 0.0 : 1.0 / m;
        perChannel(g.channels(), c -> {
            double sumDy = 0;
            double sumDyXhat = 0;
            for (long i = 0; i < m; i++) {
                int k = at(g, c, i);
                double dy = yAct != null && !(yAct[k] > 0) ? 0.0 : dyIn[k];
                sumDy += dy;
                sumDyXhat += dy * ((x[k] - mean[c]) * invstd[c]);
            }
            dbeta[c] = sumDy;
            dgamma[c] = sumDyXhat;
            double scale = gamma[c] * invstd[c];
            double db = sumDy * invM;
            double dg = sumDyXhat * invM;
            for (long i = 0; i < m; i++) {
                int k = at(g, c, i);
                double dy = yAct != null && !(yAct[k] > 0) ? 0.0 : dyIn[k];
                double xhat = (x[k] - mean[c]) * invstd[c];
                dx[k] = scale * (dy - db - xhat * dg);
                if (dres != null) {
                    dres[k] = dy;
                }
            }
        });
    }

    void savedStatsFromRunning(BatchNormBuffers s, double eps) {
        double[] rm = d(s.runningMean(), "running_mean");
        double[] rv = d(s.runningVar(), "running_var");
        double[] mean = d(s.saveMean(), "save_mean");
        double[] meanLo = d(s.saveMeanLo(), "save_mean_lo");
        double[] invstd = d(s.saveInvstd(), "save_invstd");
        for (int c = 0; c < rm.length; c++) {
            mean[c] = rm[c];
            meanLo[c] = 0;
            invstd[c] = 1.0 / Math.sqrt(rv[c] + eps);
        }
        backend.counters().launches.incrementAndGet();
    }
}
