// Shared helpers for the batch-norm kernels. The host prepends this file to every kernel file
// it builds, the way CLBlast assembles its sources, so each helper exists in exactly one place.
//
// Tensor geometry: every supported layout is viewed as (outer, channels, inner), row-major.
//   NCHW-family  (N, C, spatial...): outer = N,            inner = prod(spatial)
//   channels-last (N, spatial..., C): outer = N*prod(spatial), inner = 1
// Element (o, c, i) lives at ((o * channels) + c) * inner + i. A "row" is one (o, c) pair.

#ifndef CLNORM_COMMON_CL
#define CLNORM_COMMON_CL

// Running (count, mean, var) summary of a set of values, var = M2 / n the mean squared deviation
// (the biased variance). Keeping var rather than M2 = sum of squared deviations bounds every stored
// quantity by the data's spread instead of letting it grow with n: in float32, M2 of 2^24 values
// with a spread of 1e16 already overflows, their variance does not.
typedef struct {
    float n;
    float mean;
    float var;
} moments;

inline moments moments_empty(void) {
    moments r = {0.0f, 0.0f, 0.0f};
    return r;
}

// Welford's update: numerically stable, no E[x^2]-E[x]^2 cancellation. In var form,
//   var_n = var_(n-1) + (delta * (v - mean_n) - var_(n-1)) / n,
// with the product's second factor divided by n first so it cannot overflow where var_n fits.
// One reciprocal instead of three divisions: this loop runs once per element.
inline moments moments_push(moments a, float v) {
    a.n += 1.0f;
    const float inv_n = 1.0f / a.n;
    const float delta = v - a.mean;
    a.mean += delta * inv_n;
    a.var += delta * ((v - a.mean) * inv_n) - a.var * inv_n;
    return a;
}

// Chan et al.'s pairwise merge of two summaries, divided through by n = na + nb:
//   var = wa * var_a + wb * var_b + delta^2 * wa * wb,   wa = na / n, wb = nb / n.
// Every term is non-negative and (delta * wa) * (delta * wb) overflows only if that term alone
// exceeds float range. Order matters for rounding, so callers merge in a fixed order to stay
// bit-reproducible run to run.
inline moments moments_merge(moments a, moments b) {
    if (b.n == 0.0f) return a;
    if (a.n == 0.0f) return b;
    float n = a.n + b.n;
    float wa = a.n / n;
    float wb = b.n / n;
    float delta = b.mean - a.mean;
    moments r;
    r.n = n;
    r.mean = a.mean + delta * wb;
    r.var = wa * a.var + wb * b.var + (delta * wa) * (delta * wb);
    return r;
}

// Clamp a variance at 0 after merging, keeping NaN (fmax(NaN, 0) would turn it into 0 and hide
// a non-finite input as a finite statistic).
inline float clamp_nonnegative(float v) {
    return v < 0.0f ? 0.0f : v;
}

// The statistics kernels accumulate (x - shift) * STATS_SCALE. float32 squares only span deviations
// of about 1e-19 .. 1.8e19 (sqrt of FLT_MIN .. FLT_MAX); scaling by 2^-16 moves that window to
// about 7e-15 .. 1.2e24, so inputs near |x| = 1e19 keep a finite, exact variance, while spreads
// below 7e-15 (variances below 5e-29, far under any eps) are the ones that lose precision.
// Powers of two scale exactly, so the scaling itself adds no rounding.
#define STATS_SCALE (1.0f / 65536.0f)
#define STATS_UNSCALE 65536.0f

// Address of the j-th value (0 <= j < outer*inner) of channel c, walking rows in order.
inline int channel_offset(int j, int c, int channels, int inner) {
    int o = j / inner;
    int i = j - o * inner;
    return (o * channels + c) * inner + i;
}

#endif
