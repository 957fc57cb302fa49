package dev.clnorm.backend.java;

/**
 * The Java backend's inner loops: one contiguous run of one channel (rows traversal), or a block
 * of outer rows across all columns (cols traversal). Two implementations: {@link ScalarRowKernels}
 * everywhere, {@link VectorRowKernels} (the incubating Vector API) when the JVM was started with
 * {@code --add-modules jdk.incubator.vector}. Both give the same statistics to float rounding;
 * each is deterministic.
 */
interface RowKernels {

    /** Deviations are multiplied by this (2^-16, exact) before squaring in float. */
    float SQ_SCALE = 1.0f / 65536.0f;
    /** Undoes SQ_SCALE on a sum of squares (2^32), in double. */
    double SQ_UNSCALE = 65536.0 * 65536.0;

    /**
     * Moments of x[from, to): out[0] = sum(x - shift), out[1] = sum of squared deviations from the
     * run's own mean (a second pass, served from cache, so no E[x^2] - E[x]^2 cancellation).
     * Deviations are taken as (x - shift) - mean_of_(x - shift): both terms are small next to a large
     * channel mean, so nothing is lost to the mean's float rounding; squares are scaled by
     * {@link #SQ_SCALE}^2 while summed in float lanes so that |x| ~ 1e19 cannot overflow.
     */
    default void moments(float[] x, int from, int to, float shift, double[] out) {
        momentsRows(x, from, 1, 0, to - from, shift, out);
    }

    /**
     * {@link #moments} of the values of {@code rows} segments of {@code len} values, segment r
     * starting at {@code start + r * stride}: one pair of reductions for a channel's short rows
     * (e.g. 32 rows of 14x14) instead of one per row.
     */
    void momentsRows(float[] x, int start, int rows, int stride, int len, float shift, double[] out);

    /** Width of the lane accumulators the *Lanes methods add into (1: they add nothing there). */
    int laneWidth();

    /**
     * Shifted sums of one row, x[from, to) - shift, in one sweep: whole vectors go lane by lane into
     * lanes[at, at + laneWidth()) (sum of d = x - shift) and lanes[at + laneWidth(), at + 2 laneWidth())
     * (sum of (d * SQ_SCALE)^2), the rest into rest[restAt] and rest[restAt + 1]. Rows of one channel
     * accumulate in the same lanes, reduced once per run instead of once per row, which is what short
     * rows (7x7) spend their time on; the caller takes the squared deviations as q - s^2 / n and so
     * picks shifts near the run mean (see JavaBatchNormOps#SHORT_FIRST_RUN).
     */
    void addShiftedSumsLanes(float[] x, int from, int to, float shift, float[] lanes, int at, double[] rest,
                             int restAt);

    /** The scalar part of {@link #addShiftedSumsLanes}: x[from, to) into rest[restAt], rest[restAt + 1]. */
    static void addShiftedSums(float[] x, int from, int to, float shift, double[] rest, int restAt) {
        double s = 0;
        double q = 0;
        for (int e = from; e < to; e++) {
            float d = x[e] - shift;
            double ds = d * SQ_SCALE;
            s += d;
            q += ds * ds;
        }
        rest[restAt] += s;
        rest[restAt + 1] += q;
    }

    /**
     * Per-column shifted sums of a block of {@code rows} rows of {@code cols} columns starting at
     * {@code start} with row stride {@code stride}, in one sweep: s[j] = sum(x - shift[j]) and
     * q[j] = sum(((x - shift[j]) * SQ_SCALE)^2) (overwrites s, q). The caller takes the block's
     * squared deviations as q - s^2 / rows, which is exact enough only while the shift lies within
     * a few standard deviations of the block mean: it picks the shifts so, checks every column and
     * recomputes the ones that fail (see JavaBatchNormOps#mergeColumnRun).
     */
    void columnSums(float[] x, int start, int rows, int stride, int cols, float[] shift, float[] s, float[] q);

    /** out[0] += sum(dy), out[1] += sum(dy * xhat) over [from, to), xhat = ((x - h) - l) * is. */
    default void gradSums(float[] x, float[] dy, int from, int to, float h, float l, float is, double[] out) {
        gradSumsRows(x, dy, from, 1, 0, to - from, h, l, is, out);
    }

    /**
     * {@link #gradSums} over one row, as {@link #addShiftedSumsLanes}: whole vectors go lane by lane into
     * lanes[at, at + laneWidth()) (sum of dy) and lanes[at + laneWidth(), at + 2 laneWidth()) (sum of
     * dy * xhat), the rest into rest[restAt] and rest[restAt + 1].
     */
    void addGradLanes(float[] x, float[] dy, int from, int to, float h, float l, float is, float[] lanes, int at,
                      double[] rest, int restAt);

    /** {@link #gradSums} over {@code rows} segments of {@code len} values, as {@link #momentsRows}. */
    void gradSumsRows(float[] x, float[] dy, int start, int rows, int stride, int len, float h, float l, float is,
                      double[] out);

    /** Per-column sb[j] = sum(dy), sg[j] = sum(dy * xhat) over a block of rows (overwrites sb, sg). */
    void columnGradSums(float[] x, float[] dy, int start, int rows, int stride, int cols, float[] h, float[] l,
                        float[] is, float[] sb, float[] sg);

    /** y = ga * (((x - h) - l) * is) + be over [from, to). */
    void affine(float[] x, float[] y, int from, int to, float h, float l, float is, float ga, float be);

    /**
     * The same with per-column parameters over {@code rows} rows of cols values, row r at
     * {@code start + r * stride}.
     */
    void affineColumns(float[] x, float[] y, int start, int rows, int stride, int cols, float[] h, float[] l,
                       float[] is, float[] ga, float[] be);

    /** dx = scale * (dy - db - xhat * dg) over [from, to). */
    void dx(float[] x, float[] dy, float[] dx, int from, int to, float h, float l, float is, float scale, float db,
            float dg);

    /** The same with per-column parameters over {@code rows} rows of cols values, row r at start + r * stride. */
    void dxColumns(float[] x, float[] dy, float[] dx, int start, int rows, int stride, int cols, float[] h,
                   float[] l, float[] is, float[] scale, float[] db, float[] dg);

    /** Bench reference (see JavaBackend.backwardFloor): sum of a[i] + b[i] over [from, to). */
    double sumPair(float[] a, float[] b, int from, int to);

    /** Bench reference: out[i] = a[i] + b[i] - minus over [from, to). */
    void addPair(float[] a, float[] b, float[] out, int from, int to, float minus);

    /** Bench reference (see JavaBackend.forwardFloor): sum of a[i] over [from, to). */
    double sum(float[] a, int from, int to);

    /** Bench reference: out[i] = a[i] - minus over [from, to). */
    void centre(float[] a, float[] out, int from, int to, float minus);

    /** The fastest implementation this JVM can run. */
    static RowKernels best() {
        boolean vectorModule = ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent();
        if (vectorModule && !Boolean.getBoolean("clnorm.java.scalar")) {
            try {
                return (RowKernels) Class.forName("dev.clnorm.backend.java.VectorRowKernels")
                        .getDeclaredConstructor().newInstance();
            } catch (ReflectiveOperationException | LinkageError e) {
                // Fall through to the scalar loops: same results, only slower.
            }
        }
        return new ScalarRowKernels();
    }
}
