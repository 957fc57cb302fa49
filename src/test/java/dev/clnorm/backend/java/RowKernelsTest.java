package dev.clnorm.backend.java;

import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Both implementations of the Java backend's inner loops against float64 sums of the same data.
 * The scalar loops run wherever the Vector API is missing, so they are tested here directly even
 * though the suite's Java backend picks the vector ones. Tolerances: float32 lane sums of at most
 * RUN values, relative 1e-5 of the sum of magnitudes (a few units of 2^-24 per term, generously).
 */
class RowKernelsTest {

    private static RowKernels[] implementations() {
        RowKernels best = RowKernels.best();
        return best instanceof ScalarRowKernels ? new RowKernels[]{best}
                : new RowKernels[]{new ScalarRowKernels(), best};
    }

    @Test
    void vectorLoopsAreUsedUnderTheTestJvm() {
        // The surefire JVM is started with --add-modules jdk.incubator.vector (pom.xml).
        assertEquals("vector", JavaBatchNormOps.kernelKind());
    }

    @Test
    void momentsMatchDoubleSums() {
        SplittableRandom r = new SplittableRandom(3);
        float[] x = new float[5000];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) (1e4 + 0.01 * (r.nextDouble() * 2 - 1));
        }
        for (RowKernels k : implementations()) {
            for (int[] range : new int[][]{{0, 4096}, {3, 1000}, {17, 18}, {100, 133}}) {
                float shift = x[0];
                double s = 0;
                for (int e = range[0]; e < range[1]; e++) {
                    s += (double) x[e] - shift;
                }
                double mean = shift + s / (range[1] - range[0]);
                double m2 = 0;
                for (int e = range[0]; e < range[1]; e++) {
                    m2 += (x[e] - mean) * (x[e] - mean);
                }
                double[] out = new double[2];
                k.moments(x, range[0], range[1], shift, out);
                assertEquals(s, out[0], 1e-5 * Math.max(1e-3, Math.abs(s)) + 1e-7, k.getClass().getSimpleName());
                assertEquals(m2, out[1], 1e-5 * m2 + 1e-12, k.getClass().getSimpleName() + " M2");
            }
        }
    }

    @Test
    void columnLoopsMatchRowLoops() {
        SplittableRandom r = new SplittableRandom(4);
        int rows = 37;
        int cols = 45;
        float[] x = new float[rows * cols];
        float[] dy = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) (r.nextDouble() * 4 - 1);
            dy[i] = (float) (r.nextDouble() * 2 - 1);
        }
        float[] shift = new float[cols];
        float[] h = new float[cols];
        float[] l = new float[cols];
        float[] is = new float[cols];
        for (int j = 0; j < cols; j++) {
            shift[j] = x[j];
            h[j] = (float) r.nextDouble();
            l[j] = (float) (r.nextDouble() * 1e-8);
            is[j] = (float) (0.5 + r.nextDouble());
        }
        for (RowKernels k : implementations()) {
            float[] s = new float[cols];
            float[] q = new float[cols];
            k.columnSums(x, 0, rows, cols, cols, shift, s, q);
            float[] sb = new float[cols];
            float[] sg = new float[cols];
            k.columnGradSums(x, dy, 0, rows, cols, cols, h, l, is, sb, sg);
            for (int j = 0; j < cols; j++) {
                double ds = 0;
                double db = 0;
                double dg = 0;
                for (int i = 0; i < rows; i++) {
                    ds += x[i * cols + j] - shift[j];
                    db += dy[i * cols + j];
                    dg += dy[i * cols + j] * (((x[i * cols + j] - h[j]) - l[j]) * is[j]);
                }
                double dq = 0;
                for (int i = 0; i < rows; i++) {
                    double d = (double) x[i * cols + j] - shift[j];
                    dq += d * d;
                }
                assertEquals(ds, s[j], 1e-4, "column sum " + j);
                // q is the sum of squares about the shift, scaled by SQ_SCALE^2.
                assertEquals(dq, q[j] * RowKernels.SQ_UNSCALE, 1e-5 * dq + 1e-6, "column sum of squares " + j);
                assertEquals(db, sb[j], 1e-4, "column dbeta " + j);
                assertEquals(dg, sg[j], 1e-4, "column dgamma " + j);
            }
            // All rows at once (the vector loops take four rows per step, then the leftover row).
            float[] y1 = new float[rows * cols];
            float[] y2 = new float[rows * cols];
            float[] dx1 = new float[rows * cols];
            float[] dx2 = new float[rows * cols];
            float[] sc = new float[cols];
            float[] dbs = new float[cols];
            float[] dgs = new float[cols];
            for (int j = 0; j < cols; j++) {
                sc[j] = 1.5f * is[j];
                dbs[j] = sb[j] / rows;
                dgs[j] = sg[j] / rows;
            }
            k.affineColumns(x, y1, 0, rows, cols, cols, h, l, is, is, h);
            k.dxColumns(x, dy, dx1, 0, rows, cols, cols, h, l, is, sc, dbs, dgs);
            for (int i = 0; i < rows * cols; i++) {
                int j = i % cols;
                k.affine(x, y2, i, i + 1, h[j], l[j], is[j], is[j], h[j]);
                k.dx(x, dy, dx2, i, i + 1, h[j], l[j], is[j], sc[j], dbs[j], dgs[j]);
            }
            for (int i = 0; i < rows * cols; i++) {
                // Same operations in the same order per element: equal to the bit.
                assertEquals(y2[i], y1[i], 0f, "affine column " + i % cols + " row " + i / cols);
                assertEquals(dx2[i], dx1[i], 0f, "dx column " + i % cols + " row " + i / cols);
            }
        }
    }

    /**
     * The column passes over rows lying {@code stride} apart (a block of channels' span in each
     * sample): each written value equals the row-by-row form's, and nothing between the rows changes.
     * Row counts that are not multiples of the vector loops' four rows per step.
     */
    @Test
    void stridedColumnPassesEqualTheElementwiseForm() {
        SplittableRandom r = new SplittableRandom(21);
        int cols = 37;
        int stride = 53;
        for (RowKernels k : implementations()) {
            for (int rows : new int[]{1, 5, 7, 8}) {
                int start = 3;
                int n = start + rows * stride;
                float[] x = new float[n];
                float[] dy = new float[n];
                for (int i = 0; i < n; i++) {
                    x[i] = (float) (r.nextDouble() * 4 - 1);
                    dy[i] = (float) (r.nextDouble() * 2 - 1);
                }
                float[][] p = new float[6][cols];
                for (float[] a : p) {
                    for (int j = 0; j < cols; j++) {
                        a[j] = (float) (0.5 + r.nextDouble());
                    }
                }
                float[] y = new float[n];
                float[] dx = new float[n];
                java.util.Arrays.fill(y, -7f);
                java.util.Arrays.fill(dx, -7f);
                k.affineColumns(x, y, start, rows, stride, cols, p[0], p[1], p[2], p[3], p[4]);
                k.dxColumns(x, dy, dx, start, rows, stride, cols, p[0], p[1], p[2], p[3], p[4], p[5]);
                float[] ry = new float[n];
                float[] rdx = new float[n];
                for (int i = 0; i < n; i++) {
                    int row = (i - start) / stride;
                    int j = (i - start) % stride;
                    if (i < start || j >= cols) {
                        assertEquals(-7f, y[i], 0f, "affine wrote outside the rows at " + i);
                        assertEquals(-7f, dx[i], 0f, "dx wrote outside the rows at " + i);
                        continue;
                    }
                    k.affine(x, ry, i, i + 1, p[0][j], p[1][j], p[2][j], p[3][j], p[4][j]);
                    k.dx(x, dy, rdx, i, i + 1, p[0][j], p[1][j], p[2][j], p[3][j], p[4][j], p[5][j]);
                    // Same operations in the same order per element: equal to the bit.
                    assertEquals(ry[i], y[i], 0f, "affine row " + row + " column " + j + ", " + rows + " rows");
                    assertEquals(rdx[i], dx[i], 0f, "dx row " + row + " column " + j + ", " + rows + " rows");
                }
            }
        }
    }

    /** Segments of several short rows give what the rows' values give when gathered into one run. */
    @Test
    void rowSegmentsEqualTheGatheredRun() {
        SplittableRandom r = new SplittableRandom(9);
        for (int len : new int[]{1, 7, 49, 196, 33}) {
            int rows = 13;
            int stride = len * 5 + 3;
            float[] x = new float[rows * stride];
            float[] dy = new float[x.length];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) (1000 + r.nextDouble() * 4);
                dy[i] = (float) (r.nextDouble() * 2 - 1);
            }
            float[] gx = new float[rows * len];
            float[] gdy = new float[gx.length];
            for (int row = 0; row < rows; row++) {
                System.arraycopy(x, 2 + row * stride, gx, row * len, len);
                System.arraycopy(dy, 2 + row * stride, gdy, row * len, len);
            }
            float shift = x[2];
            for (RowKernels k : implementations()) {
                String what = k.getClass().getSimpleName() + " len " + len;
                double[] seg = new double[2];
                double[] run = new double[2];
                k.momentsRows(x, 2, rows, stride, len, shift, seg);
                k.moments(gx, 0, gx.length, shift, run);
                assertEquals(run[0], seg[0], 1e-5 * Math.abs(run[0]) + 1e-6, what + " sum");
                assertEquals(run[1], seg[1], 1e-5 * run[1] + 1e-9, what + " M2");
                double[] gs = new double[2];
                double[] gr = new double[2];
                k.gradSumsRows(x, dy, 2, rows, stride, len, 1000.5f, 1e-5f, 0.8f, gs);
                k.gradSums(gx, gdy, 0, gx.length, 1000.5f, 1e-5f, 0.8f, gr);
                assertEquals(gr[0], gs[0], 1e-5 * Math.abs(gr[0]) + 1e-5, what + " sum dy");
                assertEquals(gr[1], gs[1], 1e-5 * Math.abs(gr[1]) + 1e-5, what + " sum dy*xhat");
            }
        }
    }

    /** The per-row passes of the short-rows traversal against double sums over the same values. */
    @Test
    void rowPassesMatchDoubleSums() {
        SplittableRandom r = new SplittableRandom(21);
        for (int len : new int[]{1, 15, 16, 49, 196, 511}) {
            float[] x = new float[len + 5];
            float[] dy = new float[x.length];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) (1e4 + r.nextDouble() * 3);
                dy[i] = (float) (r.nextDouble() * 2 - 1);
            }
            float shift = x[3];
            double s = 0;
            double qShift = 0;
            double b = 0;
            double g = 0;
            for (int e = 3; e < 3 + len; e++) {
                s += (double) x[e] - shift;
                double d = ((double) x[e] - shift) * RowKernels.SQ_SCALE;
                qShift += d * d;
                b += dy[e];
                g += dy[e] * (((x[e] - 1e4f) - 0.25f) * 0.7f);
            }
            for (RowKernels k : implementations()) {
                String what = k.getClass().getSimpleName() + " len " + len;
                // Lanes start at 0.5 each (a previous row's partial sums): the kernel adds to them, and the
                // lanes' growth plus the rest is the row's sum; squares are summed about the shift.
                int w = k.laneWidth();
                float[] lanes = new float[2 * w + 2];
                java.util.Arrays.fill(lanes, 0.5f);
                // The square lanes start at 0, as each run's do: scaled squares (SQ_SCALE^2 = 2^-32) vanish next to 0.5.
                java.util.Arrays.fill(lanes, 1 + w, 1 + 2 * w, 0f);
                double[] rest = {7, 11, 13};
                k.addShiftedSumsLanes(x, 3, 3 + len, shift, lanes, 1, rest, 1);
                assertEquals(7, rest[0], 0, what + " slot before untouched");
                assertEquals(s, rest[1] - 11 + laneGrowth(lanes, 1, w, 0.5f), 1e-6 * len * 3, what + " sum");
                assertEquals(qShift, rest[2] - 13 + laneGrowth(lanes, 1 + w, w, 0f), 1e-6 * qShift + 1e-12,
                        what + " sum of squares");
                assertEquals(0.5f, lanes[0], 0f, what + " lane before untouched");
                assertEquals(0.5f, lanes[2 * w + 1], 0f, what + " lane after untouched");
                double[] out = {7, 11, 13};
                float[] gl = new float[2 * w];
                // The mean's low part is far larger than a real one, so that dropping it anywhere shows.
                k.addGradLanes(x, dy, 3, 3 + len, 1e4f, 0.25f, 0.7f, gl, 0, out, 1);
                assertEquals(7, out[0], 0, what + " slot before untouched");
                assertEquals(11 + b, out[1] + laneGrowth(gl, 0, w, 0f), 1e-5 * len, what + " sum dy");
                assertEquals(13 + g, out[2] + laneGrowth(gl, w, w, 0f), 1e-5 * len, what + " sum dy*xhat");
            }
        }
    }

    /**
     * affine and dx over rows of every tail length, written into other arrays and in place, against
     * the scalar formula value by value (the same float operations in the same order, so exactly):
     * the vector loops end a row with a vector over its last values, which must leave neighbouring
     * rows alone and must not read values it has already overwritten.
     */
    @Test
    void elementwiseRowPassesEqualTheScalarFormulaOnEveryTailInPlaceOrNot() {
        SplittableRandom r = new SplittableRandom(22);
        float h = 3f, l = 0.25f, is = 1.5f, ga = 0.75f, be = -2f, sc = 1.25f, db = 0.125f, dg = -0.5f;
        // Every tail length for vectors of up to 32 lanes (lengths 1 to 64), and a 14x14 row and a long one.
        int[] lengths = java.util.stream.IntStream.concat(java.util.stream.IntStream.rangeClosed(1, 64),
                java.util.stream.IntStream.of(196, 511)).toArray();
        for (int len : lengths) {
            float[] x = new float[len + 8];
            float[] dy = new float[x.length];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) (r.nextDouble() * 8);
                dy[i] = (float) (r.nextDouble() * 2 - 1);
            }
            float[] wantY = x.clone();
            float[] wantDx = dy.clone();
            for (int e = 3; e < 3 + len; e++) {
                float xhat = ((x[e] - h) - l) * is;
                wantY[e] = ga * xhat + be;
                wantDx[e] = sc * (dy[e] - db - xhat * dg);
            }
            for (RowKernels k : implementations()) {
                String what = k.getClass().getSimpleName() + " len " + len;
                float[] y = x.clone();
                k.affine(x, y, 3, 3 + len, h, l, is, ga, be);
                assertArrayEquals(wantY, y, what + " affine");
                float[] inPlace = x.clone();
                k.affine(inPlace, inPlace, 3, 3 + len, h, l, is, ga, be);
                assertArrayEquals(wantY, inPlace, what + " affine in place");
                float[] dx = dy.clone();
                k.dx(x, dy, dx, 3, 3 + len, h, l, is, sc, db, dg);
                assertArrayEquals(wantDx, dx, what + " dx");
                float[] dyInPlace = dy.clone();
                k.dx(x, dyInPlace, dyInPlace, 3, 3 + len, h, l, is, sc, db, dg);
                assertArrayEquals(wantDx, dyInPlace, what + " dx over dy");
                float[] xInPlace = x.clone();
                k.dx(xInPlace, dy, xInPlace, 3, 3 + len, h, l, is, sc, db, dg);
                float[] wantOverX = x.clone();
                System.arraycopy(wantDx, 3, wantOverX, 3, len);
                assertArrayEquals(wantOverX, xInPlace, what + " dx over x");
            }
        }
    }

    private static double laneGrowth(float[] lanes, int at, int w, float start) {
        double t = 0;
        for (int j = at; j < at + w; j++) {
            t += (double) lanes[j] - start;
        }
        return t;
    }

    @Test
    void backwardFloorLoopsSumAndCentreEveryElementOfTheirRange() {
        java.util.SplittableRandom r = new java.util.SplittableRandom(9);
        float[] a = new float[1000];
        float[] b = new float[a.length];
        for (int i = 0; i < a.length; i++) {
            a[i] = (float) (r.nextDouble() * 3);
            b[i] = (float) (r.nextDouble() - 0.5);
        }
        for (RowKernels k : implementations()) {
            for (int[] range : new int[][]{{0, 1000}, {3, 1000}, {17, 18}, {100, 133}, {5, 5}}) {
                double want = 0;
                double wantAbs = 0;
                for (int i = range[0]; i < range[1]; i++) {
                    want += (double) a[i] + b[i];
                    wantAbs += Math.abs((double) a[i] + b[i]);
                }
                // Float lanes: the worst-case bound of a float32 sum, count x 2^-24 x sum of |terms|;
                // a vector of elements left out (|a + b| is about 1.5 on average) exceeds it many times over.
                double tol = (range[1] - range[0]) * 0x1p-24 * wantAbs;
                assertEquals(want, k.sumPair(a, b, range[0], range[1]), tol, k + " sum " + range[0] + ".." + range[1]);
                float[] out = new float[a.length];
                java.util.Arrays.fill(out, -7f);
                k.addPair(a, b, out, range[0], range[1], 0.25f);
                for (int i = 0; i < a.length; i++) {
                    float expected = i >= range[0] && i < range[1] ? a[i] + b[i] - 0.25f : -7f;
                    assertEquals(expected, out[i], k + " out[" + i + "] of " + range[0] + ".." + range[1]);
                }
            }
        }
    }

    @Test
    void forwardFloorLoopsSumAndCentreEveryElementOfTheirRange() {
        java.util.SplittableRandom r = new java.util.SplittableRandom(10);
        float[] a = new float[1000];
        for (int i = 0; i < a.length; i++) {
            a[i] = (float) (r.nextDouble() * 3);
        }
        for (RowKernels k : implementations()) {
            for (int[] range : new int[][]{{0, 1000}, {3, 1000}, {17, 18}, {100, 133}, {5, 5}}) {
                double want = 0;
                double wantAbs = 0;
                for (int i = range[0]; i < range[1]; i++) {
                    want += a[i];
                    wantAbs += Math.abs(a[i]);
                }
                // As above: the float32 worst case; a left-out vector (a is about 1.5 on average) is far beyond it.
                double tol = (range[1] - range[0]) * 0x1p-24 * wantAbs;
                assertEquals(want, k.sum(a, range[0], range[1]), tol, k + " sum " + range[0] + ".." + range[1]);
                float[] out = new float[a.length];
                java.util.Arrays.fill(out, -7f);
                k.centre(a, out, range[0], range[1], 0.25f);
                for (int i = 0; i < a.length; i++) {
                    float expected = i >= range[0] && i < range[1] ? a[i] - 0.25f : -7f;
                    assertEquals(expected, out[i], k + " out[" + i + "] of " + range[0] + ".." + range[1]);
                }
            }
        }
    }
}
