// Elementwise forward: y = gamma * xhat + beta, xhat = ((x - mean_hi) - mean_lo) * invstd.
// One kernel pair serves training and inference:
//  - training (from_running = 0): mean_hi/mean_lo/invstd are the batch statistics saved by the
//    statistics kernel;
//  - inference (from_running = 1): mean_hi is the running mean, mean_lo is ignored (0) and the
//    third array holds the running variance, turned into invstd = 1/sqrt(var + eps) here.

inline real affine_invstd(__global const real* stat2, int c, int from_running, real eps) {
    return from_running ? 1.0f / sqrt(stat2[c] + eps) : stat2[c];
}

inline real affine_lo(__global const real* mean_lo, int c, int from_running) {
    return from_running ? 0.0f : mean_lo[c];
}

// y = ga * (((x - h) - l) * is) + be over this work-item's share of units [u_begin, u_end) of
// channel c (same decomposition as rows_moments).
inline void affine_rows(__global const store_t* x, __global store_t* y, int channels, int inner, int c,
                        int u_begin, int u_end, int segs, int seg_len, int lid, int lsize,
                        real h, real l, real is, real ga, real be,
                        __global const store_t* residual, int act) {
    const int add = act & ACT_RESIDUAL;
    for (int u = u_begin; u < u_end; u++) {
        const int o = u / segs;
        const int start = (u - o * segs) * seg_len;
        const int end = min(start + seg_len, inner);
        const int base = (o * channels + c) * inner;
        const int vecs = (end - start) / VEC;
        for (int k = lid; k < vecs; k += lsize) {
            const int at = base + start + k * VEC;
            const realv xhat = ((TLOADV(x + at) - h) - l) * is;
            const realv z = add ? TLOADV(residual + at) : (realv) 0.0f;
            TSTOREV(EPILOGUE(realv, ga * xhat + be, act, z), y + at);
        }
        for (int t = start + vecs * VEC + lid; t < end; t += lsize) {
            const real xhat = ((TLOAD(x + base + t) - h) - l) * is;
            const real z = add ? TLOAD(residual + base + t) : 0.0f;
            TSTORE(EPILOGUE(real, ga * xhat + be, act, z), y + base + t);
        }
    }
}

// ROWS traversal with the same work decomposition as bn_stats_rows.
__kernel void bn_affine_rows(__global const store_t* x, __global store_t* y, const int channels, const int inner,
                             const int segs, const int seg_len, const int units, const int units_per_group,
                             const int from_running, const real eps,
                             __global const real* mean_hi, __global const real* mean_lo,
                             __global const real* stat2,
                             __global const real* gamma, __global const real* beta,
                             __global const store_t* residual, const int act) {
    const int lid = get_local_id(0);
    const int lsize = get_local_size(0);
    const int g = get_group_id(0);
    const int c = get_group_id(1);
    const real h = mean_hi[c];
    const real l = affine_lo(mean_lo, c, from_running);
    const real is = affine_invstd(stat2, c, from_running, eps);
    const real ga = gamma[c];
    const real be = beta[c];

    affine_rows(x, y, channels, inner, c, g * units_per_group, min((g + 1) * units_per_group, units), segs,
                seg_len, lid, lsize, h, l, is, ga, be, residual, act);
}

// COLS traversal: grid (column items, row groups * LY), local (LX, LY).
__kernel void bn_affine_cols(__global const store_t* x, __global store_t* y, const int channels, const int inner,
                             const int outer, const int rows_per_group,
                             const int from_running, const real eps,
                             __global const real* mean_hi, __global const real* mean_lo,
                             __global const real* stat2,
                             __global const real* gamma, __global const real* beta,
                             __global const store_t* residual, const int act) {
    const int columns = channels * inner;
    const int j = get_global_id(0) * CW;
    if (j >= columns) {
        return;
    }
    const realc h = LOAD_COLS(mean_hi, j, inner);
    const realc l = from_running ? (realc) 0.0f : LOAD_COLS(mean_lo, j, inner);
    const realc s2 = LOAD_COLS(stat2, j, inner);
    const realc is = from_running ? 1.0f / sqrt(s2 + eps) : s2;
    const realc ga = LOAD_COLS(gamma, j, inner);
    const realc be = LOAD_COLS(beta, j, inner);
    const int gy = get_group_id(1);
    const int r_end = min((gy + 1) * rows_per_group, outer);
    for (int r = gy * rows_per_group + get_local_id(1); r < r_end; r += get_local_size(1)) {
        const int at = r * columns + j;
        const realc xhat = ((TLOADC(x + at) - h) - l) * is;
        const realc z = (act & ACT_RESIDUAL) ? TLOADC(residual + at) : (realc) 0.0f;
        TSTOREC(EPILOGUE(realc, ga * xhat + be, act, z), y + at);
    }
}

// FLAT traversal, for CPU devices and channels-last / (N, C) tensors (inner == 1, channels a
// multiple of VEC): the elementwise pass needs no column ownership, so each work-item streams its
// own range of whole rows (the COLS mapping walks a column strip down the rows, which defeats a
// CPU's prefetchers). Rows go FLAT_RB at a time, as FLAT_RB parallel streams: a column vector's
// parameters (and from the running variance its 1/sqrt) are loaded once per FLAT_RB rows instead
// of once per row, which bounded this loop more than memory did. Same arithmetic per element as
// bn_affine_cols, so results are identical. Grid (items), local (1).
__kernel void bn_affine_flat(__global const store_t* x, __global store_t* y, const int channels, const int outer,
                             const int rows_per_item, const int from_running, const real eps,
                             __global const real* mean_hi, __global const real* mean_lo,
                             __global const real* stat2,
                             __global const real* gamma, __global const real* beta,
                             __global const store_t* residual, const int act) {
    int r0;
    int r1;
    flat_rows((int) get_global_id(0), rows_per_item, outer, &r0, &r1);
    for (int r = r0; r < r1; r += FLAT_RB) {
        const int rows = min(FLAT_RB, r1 - r);
        for (int j = 0; j < channels; j += VEC) {
            const realv h = PARAMV(mean_hi, j);
            const realv l = from_running ? (realv) 0.0f : PARAMV(mean_lo, j);
            const realv s2 = PARAMV(stat2, j);
            const realv is = from_running ? 1.0f / sqrt(s2 + eps) : s2;
            const realv ga = PARAMV(gamma, j);
            const realv be = PARAMV(beta, j);
            for (int b = 0; b < rows; b++) {
                const int e = (r + b) * channels + j;
                const realv xhat = ((TLOADV(x + e) - h) - l) * is;
                const realv z = (act & ACT_RESIDUAL) ? TLOADV(residual + e) : (realv) 0.0f;
                TSTOREV(EPILOGUE(realv, ga * xhat + be, act, z), y + e);
            }
        }
    }
}

// FLAT traversal of rows, for CPU devices and short rows (NCHW-like, inner < a few thousand): the
// ROWS kernels give each work-group one channel, whose rows lie one channel-stride apart, so a CPU
// work-item jumps between short segments; here work-item g streams the consecutive rows
// [g * rows_per_item, ...) of the (outer * channels) row list in memory order, taking each row's
// channel parameters as it reaches it. Same arithmetic as affine_rows. Grid (items), local (1).
__kernel void bn_affine_flat_rows(__global const store_t* x, __global store_t* y, const int channels, const int inner,
                                  const int rows_total, const int rows_per_item, const int from_running, const real eps,
                                  __global const real* mean_hi, __global const real* mean_lo,
                                  __global const real* stat2,
                                  __global const real* gamma, __global const real* beta,
                                  __global const store_t* residual, const int act) {
    const int q0 = min((int) get_global_id(0) * rows_per_item, rows_total);
    const int q1 = min(q0 + rows_per_item, rows_total);
    for (int q = q0; q < q1; q++) {
        const int c = q % channels;
        affine_rows(x, y, channels, inner, c, q / channels, q / channels + 1, 1, inner, 0, 1, mean_hi[c],
                    affine_lo(mean_lo, c, from_running), affine_invstd(stat2, c, from_running, eps), gamma[c],
                    beta[c], residual, act);
    }
}
