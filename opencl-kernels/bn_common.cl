// Shared helpers for the batch-norm kernels. The host prepends this file to every kernel file
// it builds, the way CLBlast assembles its sources, so each helper exists in exactly one place.
//
// Tensor geometry: every supported layout is viewed as (outer, channels, inner), row-major.
//   NCHW-family  (N, C, spatial...): outer = N,            inner = prod(spatial)
//   channels-last (N, spatial..., C): outer = N*prod(spatial), inner = 1
// Element (o, c, i) lives at ((o * channels) + c) * inner + i. A "row" is one (o, c) pair.

#ifndef CLNORM_COMMON_CL
#define CLNORM_COMMON_CL

// Running (count, mean, M2) summary of a set of values; M2 = sum of squared deviations.
typedef struct {
    float n;
    float mean;
    float m2;
} moments;

inline moments moments_empty(void) {
    moments r = {0.0f, 0.0f, 0.0f};
    return r;
}

// Welford's update: numerically stable, no E[x^2]-E[x]^2 cancellation.
inline moments moments_push(moments a, float v) {
    a.n += 1.0f;
    float delta = v - a.mean;
    a.mean += delta / a.n;
    a.m2 += delta * (v - a.mean);
    return a;
}

// Chan et al.'s pairwise merge of two summaries. Order matters for rounding, so callers merge
// in a fixed order to stay bit-reproducible run to run.
inline moments moments_merge(moments a, moments b) {
    if (b.n == 0.0f) return a;
    if (a.n == 0.0f) return b;
    float n = a.n + b.n;
    float delta = b.mean - a.mean;
    float wb = b.n / n;
    moments r;
    r.n = n;
    r.mean = a.mean + delta * wb;
    r.m2 = a.m2 + b.m2 + delta * delta * a.n * wb;
    return r;
}

// Address of the j-th value (0 <= j < outer*inner) of channel c, walking rows in order.
inline int channel_offset(int j, int c, int channels, int inner) {
    int o = j / inner;
    int i = j - o * inner;
    return (o * channels + c) * inner + i;
}

#endif
