package dev.clnorm.train;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The float64 reference of {@link Mlp}: the same network (dense, optional batch norm with batch
 * statistics, ReLU, softmax cross-entropy, Adam as torch.optim.Adam) written plainly with
 * per-element loops in PyTorch's parameter layout, (out, in) weights. Slow on purpose; for tiny
 * networks in tests only.
 */
final class ReferenceMlp {
    final int[] widths;
    final boolean batchNorm;
    /** Parameters by PyTorch name, as in {@link Mlp#state()}: fcN.weight (out x in), fcN.bias, bnN.weight, bnN.bias. */
    final Map<String, double[]> params = new LinkedHashMap<>();
    final Map<String, double[]> runningMean = new LinkedHashMap<>();
    final Map<String, double[]> runningVar = new LinkedHashMap<>();
    final Map<String, double[]> adamM = new LinkedHashMap<>();
    final Map<String, double[]> adamV = new LinkedHashMap<>();
    long steps;

    /** Starts from a model's downloaded state (so both start from bit-identical float32 values). */
    ReferenceMlp(int[] widths, boolean batchNorm, Map<String, Mlp.Named> state) {
        this.widths = widths.clone();
        this.batchNorm = batchNorm;
        for (Mlp.Named n : state.values()) {
            double[] v = new double[n.values().length];
            for (int i = 0; i < v.length; i++) {
                v[i] = n.values()[i];
            }
            String name = n.name();
            if (name.endsWith(".running_mean")) {
                runningMean.put(name.substring(0, name.indexOf('.')), v);
            } else if (name.endsWith(".running_var")) {
                runningVar.put(name.substring(0, name.indexOf('.')), v);
            } else if (!name.endsWith(".num_batches_tracked")) {
                params.put(name, v);
                adamM.put(name, new double[v.length]);
                adamV.put(name, new double[v.length]);
            }
        }
    }

    int layers() {
        return widths.length - 1;
    }

    boolean hasBn(int i) {
        return batchNorm && i + 1 < layers();
    }

    /** Everything a forward pass leaves for backward. */
    static final class Pass {
        double[][] input;   // per layer: its input (rows x in)
        double[][] h;       // dense output incl. bias (rows x out)
        double[][] xhat;    // BN normalised values
        double[][] invstd;  // BN 1/sqrt(var + eps) per channel
        double[][] a;       // after BN and ReLU
        double[] logits;
        double loss;
        double[] dlogits;
    }

    /** Forward; training uses batch statistics (and updates running ones when {@code update}). */
    Pass forward(double[] x, int[] labels, int rows, boolean training, boolean update) {
        int n = layers();
        Pass p = new Pass();
        p.input = new double[n][];
        p.h = new double[n][];
        p.xhat = new double[n][];
        p.invstd = new double[n][];
        p.a = new double[n][];
        double[] in = x;
        for (int i = 0; i < n; i++) {
            int fin = widths[i];
            int fout = widths[i + 1];
            double[] w = params.get("fc" + (i + 1) + ".weight");
            double[] b = params.get("fc" + (i + 1) + ".bias");
            double[] h = new double[rows * fout];
            for (int r = 0; r < rows; r++) {
                for (int o = 0; o < fout; o++) {
                    double s = b == null ? 0 : b[o];
                    for (int k = 0; k < fin; k++) {
                        s += in[r * fin + k] * w[o * fin + k];
                    }
                    h[r * fout + o] = s;
                }
            }
            p.input[i] = in;
            p.h[i] = h;
            if (i + 1 == n) {
                p.logits = h;
                break;
            }
            double[] z = h;
            if (hasBn(i)) {
                String bn = "bn" + (i + 1);
                double[] gamma = params.get(bn + ".weight");
                double[] beta = params.get(bn + ".bias");
                double[] xhat = new double[rows * fout];
                double[] invstd = new double[fout];
                z = new double[rows * fout];
                for (int c = 0; c < fout; c++) {
                    double mean;
                    double var;
                    if (training) {
                        double s = 0;
                        for (int r = 0; r < rows; r++) {
                            s += h[r * fout + c];
                        }
                        mean = s / rows;
                        double q = 0;
                        for (int r = 0; r < rows; r++) {
                            double d = h[r * fout + c] - mean;
                            q += d * d;
                        }
                        var = q / rows;
                        if (update) {
                            runningMean.get(bn)[c] = 0.9 * runningMean.get(bn)[c] + 0.1 * mean;
                            runningVar.get(bn)[c] = 0.9 * runningVar.get(bn)[c] + 0.1 * q / (rows - 1);
                        }
                    } else {
                        mean = runningMean.get(bn)[c];
                        var = runningVar.get(bn)[c];
                    }
                    invstd[c] = 1.0 / Math.sqrt(var + Mlp.BN_EPS);
                    for (int r = 0; r < rows; r++) {
                        xhat[r * fout + c] = (h[r * fout + c] - mean) * invstd[c];
                        z[r * fout + c] = gamma[c] * xhat[r * fout + c] + beta[c];
                    }
                }
                p.xhat[i] = xhat;
                p.invstd[i] = invstd;
            }
            double[] a = new double[rows * fout];
            for (int k = 0; k < a.length; k++) {
                a[k] = Math.max(0.0, z[k]);
            }
            p.a[i] = a;
            in = a;
        }
        int classes = widths[n];
        p.dlogits = new double[rows * classes];
        double loss = 0;
        for (int r = 0; r < rows; r++) {
            double m = Double.NEGATIVE_INFINITY;
            for (int c = 0; c < classes; c++) {
                m = Math.max(m, p.logits[r * classes + c]);
            }
            double s = 0;
            for (int c = 0; c < classes; c++) {
                s += Math.exp(p.logits[r * classes + c] - m);
            }
            if (labels != null) {
                loss += m + Math.log(s) - p.logits[r * classes + labels[r]];
                for (int c = 0; c < classes; c++) {
                    double prob = Math.exp(p.logits[r * classes + c] - m) / s;
                    p.dlogits[r * classes + c] = (prob - (c == labels[r] ? 1 : 0)) / rows;
                }
            }
        }
        p.loss = loss / rows;
        return p;
    }

    /** Gradients of the mean loss by parameter name, from a training-mode pass. */
    Map<String, double[]> backward(Pass p, int rows) {
        Map<String, double[]> g = new LinkedHashMap<>();
        int n = layers();
        double[] d = p.dlogits;   // gradient w.r.t. h of the current layer
        for (int i = n - 1; i >= 0; i--) {
            int fin = widths[i];
            int fout = widths[i + 1];
            double[] in = p.input[i];
            double[] gw = new double[fout * fin];
            for (int o = 0; o < fout; o++) {
                for (int k = 0; k < fin; k++) {
                    double s = 0;
                    for (int r = 0; r < rows; r++) {
                        s += d[r * fout + o] * in[r * fin + k];
                    }
                    gw[o * fin + k] = s;
                }
            }
            g.put("fc" + (i + 1) + ".weight", gw);
            if (params.containsKey("fc" + (i + 1) + ".bias")) {
                double[] gb = new double[fout];
                for (int r = 0; r < rows; r++) {
                    for (int o = 0; o < fout; o++) {
                        gb[o] += d[r * fout + o];
                    }
                }
                g.put("fc" + (i + 1) + ".bias", gb);
            }
            if (i == 0) {
                break;
            }
            double[] w = params.get("fc" + (i + 1) + ".weight");
            double[] da = new double[rows * fin];
            for (int r = 0; r < rows; r++) {
                for (int k = 0; k < fin; k++) {
                    double s = 0;
                    for (int o = 0; o < fout; o++) {
                        s += d[r * fout + o] * w[o * fin + k];
                    }
                    da[r * fin + k] = p.a[i - 1][r * fin + k] > 0 ? s : 0.0;
                }
            }
            if (hasBn(i - 1)) {
                String bn = "bn" + i;
                double[] gamma = params.get(bn + ".weight");
                double[] xhat = p.xhat[i - 1];
                double[] invstd = p.invstd[i - 1];
                double[] dgamma = new double[fin];
                double[] dbeta = new double[fin];
                double[] dh = new double[rows * fin];
                for (int c = 0; c < fin; c++) {
                    for (int r = 0; r < rows; r++) {
                        dbeta[c] += da[r * fin + c];
                        dgamma[c] += da[r * fin + c] * xhat[r * fin + c];
                    }
                    for (int r = 0; r < rows; r++) {
                        dh[r * fin + c] = gamma[c] * invstd[c] / rows
                                * (rows * da[r * fin + c] - dbeta[c] - xhat[r * fin + c] * dgamma[c]);
                    }
                }
                g.put(bn + ".weight", dgamma);
                g.put(bn + ".bias", dbeta);
                d = dh;
            } else {
                d = da;
            }
        }
        return g;
    }

    /** One training step; returns the loss and gradients it used. */
    Map<String, double[]> step(double[] x, int[] labels, int rows, Mlp.Adam adam, double[] lossOut) {
        Pass p = forward(x, labels, rows, true, true);
        lossOut[0] = p.loss;
        Map<String, double[]> g = backward(p, rows);
        steps++;
        double stepSize = adam.lr() / (1 - Math.pow(adam.beta1(), steps));
        double bc2Sqrt = Math.sqrt(1 - Math.pow(adam.beta2(), steps));
        for (Map.Entry<String, double[]> e : g.entrySet()) {
            double[] pv = params.get(e.getKey());
            double[] m = adamM.get(e.getKey());
            double[] v = adamV.get(e.getKey());
            double[] gv = e.getValue();
            for (int k = 0; k < pv.length; k++) {
                m[k] = adam.beta1() * m[k] + (1 - adam.beta1()) * gv[k];
                v[k] = adam.beta2() * v[k] + (1 - adam.beta2()) * gv[k] * gv[k];
                pv[k] -= stepSize * m[k] / (Math.sqrt(v[k]) / bc2Sqrt + adam.eps());
            }
        }
        return g;
    }

    /** Mean training-mode loss for the current parameters (no state change): for finite differences. */
    double loss(double[] x, int[] labels, int rows) {
        return forward(x, labels, rows, true, false).loss;
    }
}
