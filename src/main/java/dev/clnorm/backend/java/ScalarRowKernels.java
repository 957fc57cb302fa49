package dev.clnorm.backend.java;

/** Plain loops: what C2 vectorises by itself (elementwise maps), scalar otherwise. */
final class ScalarRowKernels implements RowKernels {

    @Override
    public int laneWidth() {
        return 1;
    }

    @Override
    public void addShiftedSumsLanes(float[] x, int from, int to, float shift, float[] lanes, int at, double[] rest,
                                    int restAt) {
        RowKernels.addShiftedSums(x, from, to, shift, rest, restAt);
    }

    @Override
    public void momentsRows(float[] x, int start, int rows, int stride, int len, float shift, double[] out) {
        double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        for (int r = 0; r < rows; r++) {
            int base = start + r * stride;
            int e = base;
            int to = base + len;
            for (; e + 3 < to; e += 4) {
                a0 += x[e] - shift;
                a1 += x[e + 1] - shift;
                a2 += x[e + 2] - shift;
                a3 += x[e + 3] - shift;
            }
            for (; e < to; e++) {
                a0 += x[e] - shift;
            }
        }
        double s = (a0 + a1) + (a2 + a3);
        double n = (double) rows * len;
        float meanDev = (float) (s / n);
        double q0 = 0, q1 = 0;
        for (int r = 0; r < rows; r++) {
            int base = start + r * stride;
            int e = base;
            int to = base + len;
            for (; e + 1 < to; e += 2) {
                double d0 = ((x[e] - shift) - meanDev) * SQ_SCALE;
                double d1 = ((x[e + 1] - shift) - meanDev) * SQ_SCALE;
                q0 += d0 * d0;
                q1 += d1 * d1;
            }
            for (; e < to; e++) {
                double d = ((x[e] - shift) - meanDev) * SQ_SCALE;
                q0 += d * d;
            }
        }
        // sum (x - m)^2 = sum (x - mf)^2 - n (m - mf)^2 for the float-rounded mean mf.
        double off = s / n - meanDev;
        out[0] = s;
        out[1] = Math.max((q0 + q1) * SQ_UNSCALE - n * off * off, 0);
    }

    @Override
    public void columnSums(float[] x, int start, int rows, int stride, int cols, float[] shift, float[] s,
                           float[] q) {
        java.util.Arrays.fill(s, 0, cols, 0f);
        java.util.Arrays.fill(q, 0, cols, 0f);
        for (int r = 0; r < rows; r++) {
            int at = start + r * stride;
            for (int j = 0; j < cols; j++) {
                float d = x[at + j] - shift[j];
                float ds = d * SQ_SCALE;
                s[j] += d;
                q[j] += ds * ds;
            }
        }
    }

    @Override
    public void addGradLanes(float[] x, float[] dy, int from, int to, float h, float l, float is, float[] lanes,
                             int at, double[] rest, int restAt) {
        double b = 0;
        double g = 0;
        for (int e = from; e < to; e++) {
            float xh = ((x[e] - h) - l) * is;
            b += dy[e];
            g += (double) dy[e] * xh;
        }
        rest[restAt] += b;
        rest[restAt + 1] += g;
    }

    @Override
    public void gradSumsRows(float[] x, float[] dy, int start, int rows, int stride, int len, float h, float l,
                             float is, double[] out) {
        double b0 = 0, b1 = 0, g0 = 0, g1 = 0;
        for (int r = 0; r < rows; r++) {
            int e = start + r * stride;
            int to = e + len;
            for (; e + 1 < to; e += 2) {
                float xh0 = ((x[e] - h) - l) * is;
                float xh1 = ((x[e + 1] - h) - l) * is;
                b0 += dy[e];
                b1 += dy[e + 1];
                g0 += (double) dy[e] * xh0;
                g1 += (double) dy[e + 1] * xh1;
            }
            for (; e < to; e++) {
                float xh = ((x[e] - h) - l) * is;
                b0 += dy[e];
                g0 += (double) dy[e] * xh;
            }
        }
        out[0] += b0 + b1;
        out[1] += g0 + g1;
    }

    @Override
    public void columnGradSums(float[] x, float[] dy, int start, int rows, int stride, int cols, float[] h,
                               float[] l, float[] is, float[] sb, float[] sg) {
        java.util.Arrays.fill(sb, 0, cols, 0f);
        java.util.Arrays.fill(sg, 0, cols, 0f);
        for (int r = 0; r < rows; r++) {
            int at = start + r * stride;
            for (int j = 0; j < cols; j++) {
                float d = dy[at + j];
                sb[j] += d;
                sg[j] += d * (((x[at + j] - h[j]) - l[j]) * is[j]);
            }
        }
    }

    @Override
    public void affine(float[] x, float[] y, int from, int to, float h, float l, float is, float ga, float be) {
        for (int e = from; e < to; e++) {
            y[e] = ga * (((x[e] - h) - l) * is) + be;
        }
    }

    @Override
    public void affineColumns(float[] x, float[] y, int start, int rows, int stride, int cols, float[] h, float[] l,
                              float[] is, float[] ga, float[] be) {
        for (int r = 0, at = start; r < rows; r++, at += stride) {
            for (int j = 0; j < cols; j++) {
                y[at + j] = ga[j] * (((x[at + j] - h[j]) - l[j]) * is[j]) + be[j];
            }
        }
    }

    @Override
    public void dx(float[] x, float[] dy, float[] dx, int from, int to, float h, float l, float is, float scale,
                   float db, float dg) {
        for (int e = from; e < to; e++) {
            float xhat = ((x[e] - h) - l) * is;
            dx[e] = scale * (dy[e] - db - xhat * dg);
        }
    }

    @Override
    public void dxColumns(float[] x, float[] dy, float[] dx, int start, int rows, int stride, int cols, float[] h,
                          float[] l, float[] is, float[] scale, float[] db, float[] dg) {
        for (int r = 0, at = start; r < rows; r++, at += stride) {
            for (int j = 0; j < cols; j++) {
                float xhat = ((x[at + j] - h[j]) - l[j]) * is[j];
                dx[at + j] = scale[j] * (dy[at + j] - db[j] - xhat * dg[j]);
            }
        }
    }

    @Override
    public double sumPair(float[] a, float[] b, int from, int to) {
        // Four accumulators: one would make the loop wait on each add's latency, not on memory.
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        int e = from;
        for (; e + 3 < to; e += 4) {
            s0 += a[e] + b[e];
            s1 += a[e + 1] + b[e + 1];
            s2 += a[e + 2] + b[e + 2];
            s3 += a[e + 3] + b[e + 3];
        }
        for (; e < to; e++) {
            s0 += a[e] + b[e];
        }
        return (s0 + s1) + (s2 + s3);
    }

    @Override
    public void addPair(float[] a, float[] b, float[] out, int from, int to, float minus) {
        for (int e = from; e < to; e++) {
            out[e] = a[e] + b[e] - minus;
        }
    }

    @Override
    public double sum(float[] a, int from, int to) {
        // Four accumulators, as in sumPair.
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        int e = from;
        for (; e + 3 < to; e += 4) {
            s0 += a[e];
            s1 += a[e + 1];
            s2 += a[e + 2];
            s3 += a[e + 3];
        }
        for (; e < to; e++) {
            s0 += a[e];
        }
        return (s0 + s1) + (s2 + s3);
    }

    @Override
    public void centre(float[] a, float[] out, int from, int to, float minus) {
        for (int e = from; e < to; e++) {
            out[e] = a[e] - minus;
        }
    }
}
