package dev.clnorm.backend.java;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@link RowKernels} with the incubating Vector API: the reductions C2 will not vectorise by itself
 * (float adds must keep their order) run as SIMD lanes, each lane its own partial sum, the lanes
 * added at the end of a run. Loaded only when the jdk.incubator.vector module is present.
 */
final class VectorRowKernels implements RowKernels {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int N = S.length();

    // Row tails: a row of at least one vector whose length is not a multiple of N (14x14: 196 values,
    // twelve vectors and four) ends with one more full vector laid over its last N values instead of a
    // scalar loop. The lanes that vector shares with the one before are masked out of the sums
    // (ALREADY_SEEN[t]: the first N - t lanes, t values left) and simply recomputed, to the same
    // values, by the elementwise passes, which therefore only do so where the output is not an input.
    // Interleaved A/B on 32x1024x14x14 (2-core machine): backward 0.94-0.97x, training forward
    // 0.94-0.98x the time of the scalar tails; the same in the OpenCL helpers gained nothing on POCL.
    private static final VectorMask<Float>[] ALREADY_SEEN = alreadySeenMasks();

    @SuppressWarnings("unchecked")
    private static VectorMask<Float>[] alreadySeenMasks() {
        VectorMask<Float>[] masks = new VectorMask[N];
        for (int t = 0; t < N; t++) {
            boolean[] seen = new boolean[N];
            for (int i = 0; i < N - t; i++) {
                seen[i] = true;
            }
            masks[t] = VectorMask.fromArray(S, seen, 0);
        }
        return masks;
    }

    // The segment loops below are single loops over all full vectors of all rows (the row changes
    // inside): a vector accumulator carried across a nested loop is not kept in registers by C2
    // (it boxes it, allocating per row), which made short rows slower, not faster.

    @Override
    public int laneWidth() {
        return N;
    }

    @Override
    public void addShiftedSumsLanes(float[] x, int from, int to, float shift, float[] lanes, int at, double[] rest,
                                    int restAt) {
        int e = from;
        int bound = from + S.loopBound(to - from);
        if (bound > from) {
            FloatVector s = FloatVector.fromArray(S, lanes, at);
            FloatVector q = FloatVector.fromArray(S, lanes, at + N);
            for (; e < bound; e += N) {
                FloatVector d = FloatVector.fromArray(S, x, e).sub(shift);
                s = s.add(d);
                d = d.mul(SQ_SCALE);
                q = d.fma(d, q);
            }
            if (e < to) {
                FloatVector d = FloatVector.fromArray(S, x, to - N).sub(shift).blend(0f, ALREADY_SEEN[to - e]);
                s = s.add(d);
                d = d.mul(SQ_SCALE);
                q = d.fma(d, q);
                e = to;
            }
            s.intoArray(lanes, at);
            q.intoArray(lanes, at + N);
        }
        RowKernels.addShiftedSums(x, e, to, shift, rest, restAt);
    }

    @Override
    public void momentsRows(float[] x, int start, int rows, int stride, int len, float shift, double[] out) {
        int bound = S.loopBound(len);
        int vectors = rows * (bound / N);
        FloatVector acc = FloatVector.zero(S);
        for (int k = 0, at = start, i = 0; k < vectors; k++) {
            acc = acc.add(FloatVector.fromArray(S, x, at + i).sub(shift));
            i += N;
            if (i == bound) {
                i = 0;
                at += stride;
            }
        }
        double s = acc.reduceLanes(VectorOperators.ADD);
        for (int r = 0; r < rows; r++) {
            for (int e = start + r * stride + bound; e < start + r * stride + len; e++) {
                s += x[e] - shift;
            }
        }
        double n = (double) rows * len;
        float meanDev = (float) (s / n);
        FloatVector q = FloatVector.zero(S);
        for (int k = 0, at = start, i = 0; k < vectors; k++) {
            FloatVector d = FloatVector.fromArray(S, x, at + i).sub(shift).sub(meanDev).mul(SQ_SCALE);
            q = d.fma(d, q);
            i += N;
            if (i == bound) {
                i = 0;
                at += stride;
            }
        }
        double sq = q.reduceLanes(VectorOperators.ADD);
        for (int r = 0; r < rows; r++) {
            for (int e = start + r * stride + bound; e < start + r * stride + len; e++) {
                double d = ((x[e] - shift) - meanDev) * SQ_SCALE;
                sq += d * d;
            }
        }
        // sum (x - m)^2 = sum (x - mf)^2 - n (m - mf)^2 for the float-rounded mean mf.
        double off = s / n - meanDev;
        out[0] = s;
        out[1] = Math.max(sq * SQ_UNSCALE - n * off * off, 0);
    }

    // The column loops take four rows per step: the per-column accumulators and parameters are loaded
    // and stored once per four rows of x instead of once per row, which is what bounded these loops
    // (seven loads and a store per vector of x), not memory.

    @Override
    public void columnSums(float[] x, int start, int rows, int stride, int cols, float[] shift, float[] s,
                           float[] q) {
        int bound = S.loopBound(cols);
        int quads = rows & ~3;
        java.util.Arrays.fill(s, 0, cols, 0f);
        java.util.Arrays.fill(q, 0, cols, 0f);
        for (int r = 0; r < quads; r += 4) {
            int at = start + r * stride;
            for (int j = 0; j < bound; j += N) {
                FloatVector sh = FloatVector.fromArray(S, shift, j);
                FloatVector d0 = FloatVector.fromArray(S, x, at + j).sub(sh);
                FloatVector d1 = FloatVector.fromArray(S, x, at + stride + j).sub(sh);
                FloatVector d2 = FloatVector.fromArray(S, x, at + 2 * stride + j).sub(sh);
                FloatVector d3 = FloatVector.fromArray(S, x, at + 3 * stride + j).sub(sh);
                d0.add(d1).add(d2.add(d3)).add(FloatVector.fromArray(S, s, j)).intoArray(s, j);
                d0 = d0.mul(SQ_SCALE);
                d1 = d1.mul(SQ_SCALE);
                d2 = d2.mul(SQ_SCALE);
                d3 = d3.mul(SQ_SCALE);
                d0.fma(d0, d1.mul(d1)).add(d2.fma(d2, d3.mul(d3))).add(FloatVector.fromArray(S, q, j)).intoArray(q, j);
            }
        }
        for (int r = quads; r < rows; r++) {
            int at = start + r * stride;
            for (int j = 0; j < bound; j += N) {
                FloatVector d = FloatVector.fromArray(S, x, at + j).sub(FloatVector.fromArray(S, shift, j));
                d.add(FloatVector.fromArray(S, s, j)).intoArray(s, j);
                d = d.mul(SQ_SCALE);
                d.fma(d, FloatVector.fromArray(S, q, j)).intoArray(q, j);
            }
        }
        for (int r = 0; r < rows; r++) {
            int at = start + r * stride;
            for (int j = bound; j < cols; j++) {
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
        int e = from;
        int bound = from + S.loopBound(to - from);
        if (bound > from) {
            FloatVector sb = FloatVector.fromArray(S, lanes, at);
            FloatVector sg = FloatVector.fromArray(S, lanes, at + N);
            for (; e < bound; e += N) {
                FloatVector d = FloatVector.fromArray(S, dy, e);
                sb = sb.add(d);
                sg = d.fma(FloatVector.fromArray(S, x, e).sub(h).sub(l).mul(is), sg);
            }
            if (e < to) {
                VectorMask<Float> seen = ALREADY_SEEN[to - e];
                FloatVector d = FloatVector.fromArray(S, dy, to - N).blend(0f, seen);
                sb = sb.add(d);
                sg = d.fma(FloatVector.fromArray(S, x, to - N).sub(h).sub(l).mul(is).blend(0f, seen), sg);
                e = to;
            }
            sb.intoArray(lanes, at);
            sg.intoArray(lanes, at + N);
        }
        double b = 0;
        double g = 0;
        for (; e < to; e++) {
            float xhat = ((x[e] - h) - l) * is;
            b += dy[e];
            g += (double) dy[e] * xhat;
        }
        rest[restAt] += b;
        rest[restAt + 1] += g;
    }

    @Override
    public void gradSumsRows(float[] x, float[] dy, int start, int rows, int stride, int len, float h, float l,
                             float is, double[] out) {
        int bound = S.loopBound(len);
        int vectors = rows * (bound / N);
        FloatVector sb = FloatVector.zero(S);
        FloatVector sg = FloatVector.zero(S);
        for (int k = 0, at = start, i = 0; k < vectors; k++) {
            FloatVector d = FloatVector.fromArray(S, dy, at + i);
            FloatVector xhat = FloatVector.fromArray(S, x, at + i).sub(h).sub(l).mul(is);
            sb = sb.add(d);
            sg = d.fma(xhat, sg);
            i += N;
            if (i == bound) {
                i = 0;
                at += stride;
            }
        }
        double b = sb.reduceLanes(VectorOperators.ADD);
        double g = sg.reduceLanes(VectorOperators.ADD);
        for (int r = 0; r < rows; r++) {
            for (int e = start + r * stride + bound; e < start + r * stride + len; e++) {
                float xhat = ((x[e] - h) - l) * is;
                b += dy[e];
                g += (double) dy[e] * xhat;
            }
        }
        out[0] += b;
        out[1] += g;
    }

    @Override
    public void columnGradSums(float[] x, float[] dy, int start, int rows, int stride, int cols, float[] h,
                               float[] l, float[] is, float[] sb, float[] sg) {
        int bound = S.loopBound(cols);
        int quads = rows & ~3;
        java.util.Arrays.fill(sb, 0, cols, 0f);
        java.util.Arrays.fill(sg, 0, cols, 0f);
        for (int r = 0; r < quads; r += 4) {
            int at = start + r * stride;
            for (int j = 0; j < bound; j += N) {
                FloatVector vh = FloatVector.fromArray(S, h, j);
                FloatVector vl = FloatVector.fromArray(S, l, j);
                FloatVector vis = FloatVector.fromArray(S, is, j);
                FloatVector d0 = FloatVector.fromArray(S, dy, at + j);
                FloatVector d1 = FloatVector.fromArray(S, dy, at + stride + j);
                FloatVector d2 = FloatVector.fromArray(S, dy, at + 2 * stride + j);
                FloatVector d3 = FloatVector.fromArray(S, dy, at + 3 * stride + j);
                FloatVector g = d0.mul(FloatVector.fromArray(S, x, at + j).sub(vh).sub(vl).mul(vis));
                g = d1.fma(FloatVector.fromArray(S, x, at + stride + j).sub(vh).sub(vl).mul(vis), g);
                g = d2.fma(FloatVector.fromArray(S, x, at + 2 * stride + j).sub(vh).sub(vl).mul(vis), g);
                g = d3.fma(FloatVector.fromArray(S, x, at + 3 * stride + j).sub(vh).sub(vl).mul(vis), g);
                d0.add(d1).add(d2.add(d3)).add(FloatVector.fromArray(S, sb, j)).intoArray(sb, j);
                g.add(FloatVector.fromArray(S, sg, j)).intoArray(sg, j);
            }
        }
        for (int r = quads; r < rows; r++) {
            int at = start + r * stride;
            for (int j = 0; j < bound; j += N) {
                FloatVector d = FloatVector.fromArray(S, dy, at + j);
                FloatVector xhat = FloatVector.fromArray(S, x, at + j).sub(FloatVector.fromArray(S, h, j))
                        .sub(FloatVector.fromArray(S, l, j)).mul(FloatVector.fromArray(S, is, j));
                d.add(FloatVector.fromArray(S, sb, j)).intoArray(sb, j);
                d.fma(xhat, FloatVector.fromArray(S, sg, j)).intoArray(sg, j);
            }
        }
        for (int r = 0; r < rows; r++) {
            int at = start + r * stride;
            for (int j = bound; j < cols; j++) {
                float d = dy[at + j];
                sb[j] += d;
                sg[j] += d * (((x[at + j] - h[j]) - l[j]) * is[j]);
            }
        }
    }

    @Override
    public void affine(float[] x, float[] y, int from, int to, float h, float l, float is, float ga, float be) {
        int e = from;
        int bound = from + S.loopBound(to - from);
        for (; e < bound; e += N) {
            FloatVector xhat = FloatVector.fromArray(S, x, e).sub(h).sub(l).mul(is);
            xhat.mul(ga).add(be).intoArray(y, e);
        }
        if (e < to && bound > from && y != x) {
            FloatVector xhat = FloatVector.fromArray(S, x, to - N).sub(h).sub(l).mul(is);
            xhat.mul(ga).add(be).intoArray(y, to - N);
            return;
        }
        for (; e < to; e++) {
            y[e] = ga * (((x[e] - h) - l) * is) + be;
        }
    }

    // affineColumns and dxColumns keep a separate loop for the rows after the last group of four: one
    // loop with a variable group size measured 1.06-1.10x the (N, C) backward time (C2 unrolls the fixed
    // four; interleaved A/B on 4096x1024).

    @Override
    public void affineColumns(float[] x, float[] y, int start, int rows, int stride, int cols, float[] h, float[] l,
                              float[] is, float[] ga, float[] be) {
        int bound = S.loopBound(cols);
        int quads = rows & ~3;
        for (int r = 0; r < quads; r += 4) {
            int at = start + r * stride;
            for (int j = 0; j < bound; j += N) {
                FloatVector vh = FloatVector.fromArray(S, h, j);
                FloatVector vl = FloatVector.fromArray(S, l, j);
                FloatVector vis = FloatVector.fromArray(S, is, j);
                FloatVector vga = FloatVector.fromArray(S, ga, j);
                FloatVector vbe = FloatVector.fromArray(S, be, j);
                for (int k = 0, e = at + j; k < 4; k++, e += stride) {
                    FloatVector.fromArray(S, x, e).sub(vh).sub(vl).mul(vis).mul(vga).add(vbe).intoArray(y, e);
                }
            }
        }
        for (int r = quads; r < rows; r++) {
            int at = start + r * stride;
            for (int j = 0; j < bound; j += N) {
                FloatVector xhat = FloatVector.fromArray(S, x, at + j).sub(FloatVector.fromArray(S, h, j))
                        .sub(FloatVector.fromArray(S, l, j)).mul(FloatVector.fromArray(S, is, j));
                xhat.mul(FloatVector.fromArray(S, ga, j)).add(FloatVector.fromArray(S, be, j)).intoArray(y, at + j);
            }
        }
        for (int r = 0; r < rows; r++) {
            int at = start + r * stride;
            for (int j = bound; j < cols; j++) {
                y[at + j] = ga[j] * (((x[at + j] - h[j]) - l[j]) * is[j]) + be[j];
            }
        }
    }

    @Override
    public void dx(float[] x, float[] dy, float[] dx, int from, int to, float h, float l, float is, float scale,
                   float db, float dg) {
        int e = from;
        int bound = from + S.loopBound(to - from);
        for (; e < bound; e += N) {
            FloatVector xhat = FloatVector.fromArray(S, x, e).sub(h).sub(l).mul(is);
            FloatVector.fromArray(S, dy, e).sub(db).sub(xhat.mul(dg)).mul(scale).intoArray(dx, e);
        }
        if (e < to && bound > from && dx != x && dx != dy) {
            FloatVector xhat = FloatVector.fromArray(S, x, to - N).sub(h).sub(l).mul(is);
            FloatVector.fromArray(S, dy, to - N).sub(db).sub(xhat.mul(dg)).mul(scale).intoArray(dx, to - N);
            return;
        }
        for (; e < to; e++) {
            float xhat = ((x[e] - h) - l) * is;
            dx[e] = scale * (dy[e] - db - xhat * dg);
        }
    }

    @Override
    public void dxColumns(float[] x, float[] dy, float[] dx, int start, int rows, int stride, int cols, float[] h,
                          float[] l, float[] is, float[] scale, float[] db, float[] dg) {
        int bound = S.loopBound(cols);
        int quads = rows & ~3;
        for (int r = 0; r < quads; r += 4) {
            int at = start + r * stride;
            for (int j = 0; j < bound; j += N) {
                FloatVector vh = FloatVector.fromArray(S, h, j);
                FloatVector vl = FloatVector.fromArray(S, l, j);
                FloatVector vis = FloatVector.fromArray(S, is, j);
                FloatVector vsc = FloatVector.fromArray(S, scale, j);
                FloatVector vdb = FloatVector.fromArray(S, db, j);
                FloatVector vdg = FloatVector.fromArray(S, dg, j);
                for (int k = 0, e = at + j; k < 4; k++, e += stride) {
                    FloatVector xhat = FloatVector.fromArray(S, x, e).sub(vh).sub(vl).mul(vis);
                    FloatVector.fromArray(S, dy, e).sub(vdb).sub(xhat.mul(vdg)).mul(vsc).intoArray(dx, e);
                }
            }
        }
        for (int r = quads; r < rows; r++) {
            int at = start + r * stride;
            for (int j = 0; j < bound; j += N) {
                FloatVector xhat = FloatVector.fromArray(S, x, at + j).sub(FloatVector.fromArray(S, h, j))
                        .sub(FloatVector.fromArray(S, l, j)).mul(FloatVector.fromArray(S, is, j));
                FloatVector.fromArray(S, dy, at + j).sub(FloatVector.fromArray(S, db, j))
                        .sub(xhat.mul(FloatVector.fromArray(S, dg, j))).mul(FloatVector.fromArray(S, scale, j))
                        .intoArray(dx, at + j);
            }
        }
        for (int r = 0; r < rows; r++) {
            int at = start + r * stride;
            for (int j = bound; j < cols; j++) {
                float xhat = ((x[at + j] - h[j]) - l[j]) * is[j];
                dx[at + j] = scale[j] * (dy[at + j] - db[j] - xhat * dg[j]);
            }
        }
    }

    @Override
    public double sumPair(float[] a, float[] b, int from, int to) {
        // Two accumulators, so that consecutive vector adds do not wait on each other.
        FloatVector s0 = FloatVector.zero(S);
        FloatVector s1 = FloatVector.zero(S);
        int e = from;
        for (; e + 2 * N <= to; e += 2 * N) {
            s0 = s0.add(FloatVector.fromArray(S, a, e).add(FloatVector.fromArray(S, b, e)));
            s1 = s1.add(FloatVector.fromArray(S, a, e + N).add(FloatVector.fromArray(S, b, e + N)));
        }
        double s = s0.add(s1).reduceLanes(VectorOperators.ADD);
        for (; e < to; e++) {
            s += a[e] + b[e];
        }
        return s;
    }

    @Override
    public void addPair(float[] a, float[] b, float[] out, int from, int to, float minus) {
        int e = from;
        for (int bound = from + S.loopBound(to - from); e < bound; e += N) {
            FloatVector.fromArray(S, a, e).add(FloatVector.fromArray(S, b, e)).sub(minus).intoArray(out, e);
        }
        for (; e < to; e++) {
            out[e] = a[e] + b[e] - minus;
        }
    }

    @Override
    public double sum(float[] a, int from, int to) {
        // Two accumulators, as in sumPair.
        FloatVector s0 = FloatVector.zero(S);
        FloatVector s1 = FloatVector.zero(S);
        int e = from;
        for (; e + 2 * N <= to; e += 2 * N) {
            s0 = s0.add(FloatVector.fromArray(S, a, e));
            s1 = s1.add(FloatVector.fromArray(S, a, e + N));
        }
        double s = s0.add(s1).reduceLanes(VectorOperators.ADD);
        for (; e < to; e++) {
            s += a[e];
        }
        return s;
    }

    @Override
    public void centre(float[] a, float[] out, int from, int to, float minus) {
        int e = from;
        for (int bound = from + S.loopBound(to - from); e < bound; e += N) {
            FloatVector.fromArray(S, a, e).sub(minus).intoArray(out, e);
        }
        for (; e < to; e++) {
            out[e] = a[e] - minus;
        }
    }
}
