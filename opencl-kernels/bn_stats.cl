// Training-forward statistics in one launch: per-work-group partial moments, then the last
// work-group to finish merges them per channel, saves the statistics for normalize/backward and
// updates the running statistics.

// Finishes channel c's statistics from its merged moments (of (x - shift) * STATS_SCALE):
//  - the mean is saved as a pair (hi + lo) of the arithmetic type (`real`, see bn_common.cl) so that
//    (x - hi) - lo keeps full precision
//    even when |mean| >> std; invstd = 1/sqrt(var + eps) with the biased variance;
//  - running statistics: running = keep*running + factor*batch (the host computes keep and factor
//    the way the chosen framework convention does), the running variance fed the unbiased variance
//    m/(m-1) (PyTorch, cuDNN) or the biased one (Keras, ONNX). A channel whose statistics are not
//    finite (NaN/Inf input, or a variance beyond the range of `real`) is left out and counted in skipped[c].
inline void finish_channel(int c, moments acc, real shift, real eps, real keep, real factor,
                           int update_running, int unbiased_running,
                           __global real* save_mean, __global real* save_mean_lo,
                           __global real* save_invstd, __global real* running_mean,
                           __global real* running_var, __global int* skipped) {
    const real mean_dev = acc.mean * STATS_UNSCALE;
    const real mean_hi = shift + mean_dev;
    const real mean_lo = (shift - mean_hi) + mean_dev;   // what rounding mean_hi dropped
    const real var_scaled = clamp_nonnegative(acc.var);
    const real var = var_scaled * (STATS_UNSCALE * STATS_UNSCALE);
    save_mean[c] = mean_hi;
    save_mean_lo[c] = mean_lo;
    // var is +Inf when the spread exceeds ~1.8e19; invstd is still well defined in the scaled
    // domain, where eps is negligible. Otherwise the plain formula honours eps exactly.
    save_invstd[c] = isinf(var) ? STATS_SCALE / sqrt(var_scaled) : 1.0f / sqrt(var + eps);
    if (update_running) {
        const real fed = unbiased_running ? var * (acc.n / (acc.n - 1.0f)) : var;
        if (isfinite(mean_hi) && isfinite(fed)) {
            running_mean[c] = keep * running_mean[c] + factor * mean_hi;
            running_var[c] = keep * running_var[c] + factor * fed;
        } else {
            skipped[c] += 1;
        }
    }
}

// Merges channel c's partials in index order and finishes its statistics.
inline void finalize_channel(int c, partial_layout pl, __global const store_t* x, int inner,
                             volatile __global const real* part_n,
                             volatile __global const real* part_mean,
                             volatile __global const real* part_var,
                             real eps, real keep, real factor, int update_running, int unbiased_running,
                             __global real* save_mean, __global real* save_mean_lo,
                             __global real* save_invstd, __global real* running_mean,
                             __global real* running_var, __global int* skipped) {
    moments acc = moments_empty();
    for (int a = 0; a < pl.acount; a++) {
        for (int b = 0; b < pl.bcount; b++) {
            const int p = c * pl.cstride + a * pl.astride + b;
            moments m = {part_n[p], part_mean[p], part_var[p]};
            acc = moments_merge(acc, m);
        }
    }
    finish_channel(c, acc, TLOAD(x + c * inner), eps, keep, factor, update_running, unbiased_running, save_mean,
                   save_mean_lo, save_invstd, running_mean, running_var, skipped);
}

// Local tree merge of one moments triple per work-item along local dimension `dim`; the local
// size along it is a power of two. Work-items with the same other coordinate merge together.
inline moments local_merge(moments acc, __local real* l_n, __local real* l_mean, __local real* l_var,
                           int dim) {
    const int lid = flat_local_id();
    const int step = dim == 0 ? 1 : (int) get_local_size(0);
    const int along = get_local_id(dim);
    l_n[lid] = acc.n;
    l_mean[lid] = acc.mean;
    l_var[lid] = acc.var;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int stride = get_local_size(dim) / 2; stride > 0; stride /= 2) {
        if (along < stride) {
            moments a = {l_n[lid], l_mean[lid], l_var[lid]};
            moments b = {l_n[lid + stride * step], l_mean[lid + stride * step], l_var[lid + stride * step]};
            moments r = moments_merge(a, b);
            l_n[lid] = r.n;
            l_mean[lid] = r.mean;
            l_var[lid] = r.var;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    moments r = {l_n[lid], l_mean[lid], l_var[lid]};
    return r;
}

// What a work-item has left of a segment after its full blocks (vectors k, k + lsize, ... below
// vecs, then its share of the scalar tail) as one two-pass summary: short rows (14x14 = 24 vectors
// and 4 scalars) cost one merge here instead of one per vector and per scalar.
inline moments rest_moments(__global const store_t* row, int start, int end, int k, int vecs, int lid, int lsize,
                            real shift) {
    // Four accumulators per pass over the vectors, for the reason given at block_moments.
    __global const store_t* v = row + start;
    const int step = lsize * VEC;
    realv s0 = (realv) 0.0f, s1 = (realv) 0.0f, s2 = (realv) 0.0f, s3 = (realv) 0.0f;
    int kk = k;
    for (; kk + 3 * lsize < vecs; kk += 4 * lsize) {
        s0 += (TLOADV(v + kk * VEC) - shift) * STATS_SCALE;
        s1 += (TLOADV(v + kk * VEC + step) - shift) * STATS_SCALE;
        s2 += (TLOADV(v + kk * VEC + 2 * step) - shift) * STATS_SCALE;
        s3 += (TLOADV(v + kk * VEC + 3 * step) - shift) * STATS_SCALE;
    }
    const int kk_rest = kk;
    for (; kk < vecs; kk += lsize) {
        s0 += (TLOADV(v + kk * VEC) - shift) * STATS_SCALE;
    }
    const int tail_from = start + vecs * VEC + lid;
    real st = 0.0f;
    for (int t = tail_from; t < end; t += lsize) {
        st += (TLOAD(row + t) - shift) * STATS_SCALE;
    }
    const int count = (k < vecs ? (vecs - k + lsize - 1) / lsize * VEC : 0)
                      + (tail_from < end ? (end - tail_from + lsize - 1) / lsize : 0);
    moments r = moments_empty();
    if (count == 0) {
        return r;
    }
    const real m = (vsum((s0 + s1) + (s2 + s3)) + st) / count;
    realv q0 = (realv) 0.0f, q1 = (realv) 0.0f, q2 = (realv) 0.0f, q3 = (realv) 0.0f;
    for (kk = k; kk < kk_rest; kk += 4 * lsize) {
        const realv d0 = (TLOADV(v + kk * VEC) - shift) * STATS_SCALE - m;
        const realv d1 = (TLOADV(v + kk * VEC + step) - shift) * STATS_SCALE - m;
        const realv d2 = (TLOADV(v + kk * VEC + 2 * step) - shift) * STATS_SCALE - m;
        const realv d3 = (TLOADV(v + kk * VEC + 3 * step) - shift) * STATS_SCALE - m;
        q0 += d0 * d0;
        q1 += d1 * d1;
        q2 += d2 * d2;
        q3 += d3 * d3;
    }
    for (; kk < vecs; kk += lsize) {
        const realv d = (TLOADV(v + kk * VEC) - shift) * STATS_SCALE - m;
        q0 += d * d;
    }
    real qt = 0.0f;
    for (int t = tail_from; t < end; t += lsize) {
        const real d = (TLOAD(row + t) - shift) * STATS_SCALE - m;
        qt += d * d;
    }
    r.n = count;
    r.mean = m;
    r.var = (vsum((q0 + q1) + (q2 + q3)) + qt) / count;
    return r;
}

// Moments of channel c over units [u_begin, u_end) of the ROWS decomposition, this work-item's
// share: vectors lid, lid + lsize, ... of each unit's segment, then the scalar tail.
inline moments rows_moments(__global const store_t* x, int channels, int inner, int c, int u_begin, int u_end,
                            int segs, int seg_len, int lid, int lsize, real shift) {
    moments acc = moments_empty();
    for (int u = u_begin; u < u_end; u++) {
        const int o = u / segs;
        const int start = (u - o * segs) * seg_len;
        const int end = min(start + seg_len, inner);
        __global const store_t* row = x + (o * channels + c) * inner;
        const int vecs = (end - start) / VEC;
        int k = lid;
        for (; k + (BV - 1) * lsize < vecs; k += BV * lsize) {
            acc = moments_merge(acc, block_moments(row + start + k * VEC, lsize * VEC, shift));
        }
        acc = moments_merge(acc, rest_moments(row, start, end, k, vecs, lid, lsize, shift));
    }
    return acc;
}

#define STATS_FINALIZE_ARGS                                                                   \
    const real eps, const real keep, const real factor,                                   \
    const int update_running, const int unbiased_running,                                     \
    __global real* part_n, __global real* part_mean, __global real* part_var,              \
    volatile __global int* counter,                                                           \
    __global real* save_mean, __global real* save_mean_lo, __global real* save_invstd,     \
    __global real* running_mean, __global real* running_var, __global int* skipped

// ROWS traversal. Grid (groups_per_channel * L, channels), local (L, 1).
__kernel void bn_stats_rows(__global const store_t* x, const int channels, const int inner,
                            const int segs, const int seg_len, const int units, const int units_per_group,
                            STATS_FINALIZE_ARGS,
                            __local real* l_n, __local real* l_mean, __local real* l_var, __local int* l_flag) {
    const int lid = get_local_id(0);
    const int lsize = get_local_size(0);
    const int g = get_group_id(0);
    const int c = get_group_id(1);
    const int groups = get_num_groups(0);
    const real shift = TLOAD(x + c * inner);

    moments acc = rows_moments(x, channels, inner, c, g * units_per_group,
                               min((g + 1) * units_per_group, units), segs, seg_len, lid, lsize, shift);
    acc = local_merge(acc, l_n, l_mean, l_var, 0);
    if (lid == 0) {
        const int p = c * groups + g;
        part_n[p] = acc.n;
        part_mean[p] = acc.mean;
        part_var[p] = acc.var;
    }
    if (take_ticket_is_last(counter, groups * channels, l_flag)) {
        partial_layout pl = {groups, groups, 1, 1};
        for (int ch = lid; ch < channels; ch += lsize) {
            finalize_channel(ch, pl, x, inner, part_n, part_mean, part_var, eps, keep, factor, update_running, unbiased_running,
                             save_mean, save_mean_lo, save_invstd, running_mean, running_var, skipped);
        }
        if (lid == 0) {
            *counter = 0;
        }
    }
}

// COLS traversal over the (outer) x (channels*inner) matrix. Grid (column items, row groups * LY),
// local (LX, LY): work-item (jx, y) owns columns [jx*CW, jx*CW + CW) and rows y, y + LY, ... of its
// row group. CW > 1 only when inner == 1, so each lane is its own channel and the shift vector is
// the first row.
__kernel void bn_stats_cols(__global const store_t* x, const int channels, const int inner, const int outer,
                            const int rows_per_group,
                            STATS_FINALIZE_ARGS,
                            __local real* l_n, __local real* l_mean, __local real* l_var, __local int* l_flag) {
    const int columns = channels * inner;
    const int jv = get_global_id(0);
    const int gy = get_group_id(1);
    const int row_groups = get_num_groups(1);
    const int ly = get_local_id(1);
    const int lys = get_local_size(1);
    const int j = jv * CW;
    const int valid = j < columns;

    // Per-lane Welford: the count is the same for every lane.
    real n = 0.0f;
    realc mean = (realc) 0.0f;
    realc var = (realc) 0.0f;
    if (valid) {
#if CW == 1
        const realc shift = TLOAD(x + (j / inner) * inner);
#else
        const realc shift = TLOADC(x + jv * CW);
#endif
        const int r_end = min((gy + 1) * rows_per_group, outer);
        int r = gy * rows_per_group + ly;
        // Blocks of BV rows: two passes per block (the second from cache), one merge per block,
        // for the same reason as block_moments.
        for (; r + (BV - 1) * lys < r_end; r += BV * lys) {
            realc s = (realc) 0.0f;
            for (int b = 0; b < BV; b++) {
                s += (TLOADC(x + (r + b * lys) * columns + j) - shift) * STATS_SCALE;
            }
            const realc bm = s * (1.0f / BV);
            realc q = (realc) 0.0f;
            for (int b = 0; b < BV; b++) {
                const realc d = (TLOADC(x + (r + b * lys) * columns + j) - shift) * STATS_SCALE - bm;
                q += d * d;
            }
            const real total = n + BV;
            const real wa = n / total;
            const real wb = BV / total;
            const realc delta = bm - mean;
            mean += delta * wb;
            var = wa * var + wb * (q * (1.0f / BV)) + (delta * wa) * (delta * wb);
            n = total;
        }
        for (; r < r_end; r += lys) {
            const realc v = (TLOADC(x + r * columns + j) - shift) * STATS_SCALE;
            n += 1.0f;
            const realc delta = v - mean;
            mean += delta / n;
            var += delta * ((v - mean) / n) - var / n;
        }
    }
    // Merge along local dimension 1, one lane at a time (local memory holds scalars).
#if CW == 1
    moments lane0 = {n, mean, var};
    moments m0 = local_merge(lane0, l_n, l_mean, l_var, 1);
    if (ly == 0 && valid) {
        const int p = gy * columns + j;
        part_n[p] = m0.n;
        part_mean[p] = m0.mean;
        part_var[p] = m0.var;
    }
#else
    real mv[CW];
    real vv[CW];
    vstorec(mean, 0, mv);
    vstorec(var, 0, vv);
    for (int lane = 0; lane < CW; lane++) {
        moments m = {n, mv[lane], vv[lane]};
        m = local_merge(m, l_n, l_mean, l_var, 1);
        if (ly == 0 && valid) {
            const int p = gy * columns + j + lane;
            part_n[p] = m.n;
            part_mean[p] = m.mean;
            part_var[p] = m.var;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
#endif
    const int groups = get_num_groups(0) * row_groups;
    if (take_ticket_is_last(counter, groups, l_flag)) {
        partial_layout pl = {inner, row_groups, columns, inner};
        for (int ch = flat_local_id(); ch < channels; ch += flat_local_size()) {
            finalize_channel(ch, pl, x, inner, part_n, part_mean, part_var, eps, keep, factor, update_running, unbiased_running,
                             save_mean, save_mean_lo, save_invstd, running_mean, running_var, skipped);
        }
        if (flat_local_id() == 0) {
            *counter = 0;
        }
    }
}

// useGlobalStats (a frozen layer): the running statistics stand in for the saved batch statistics,
// so normalize and backward use them unchanged. One work-item per channel.
__kernel void bn_saved_from_running(const int channels, const real eps, __global const real* running_mean,
                                    __global const real* running_var, __global real* save_mean,
                                    __global real* save_mean_lo, __global real* save_invstd) {
    const int c = get_global_id(0);
    if (c >= channels) {
        return;
    }
    save_mean[c] = running_mean[c];
    save_mean_lo[c] = 0.0f;
    save_invstd[c] = 1.0f / sqrt(running_var[c] + eps);
}

// The FLAT kernels' last work-item: merges slices 1, 2, ... of the per-work-item partials into
// slice 0 in index order and finishes every channel. All channels of a slice have the same count,
// so each slice's merge weights are computed once.
inline void finish_slices(int items, int channels, __global const store_t* x, int inner,
                          __global real* part_n, __global real* part_mean, __global real* part_var,
                          real eps, real keep, real factor, int update_running, int unbiased_running,
                          __global real* save_mean, __global real* save_mean_lo, __global real* save_invstd,
                          __global real* running_mean, __global real* running_var, __global int* skipped) {
    real acc_n = part_n[0];
    for (int a = 1; a < items; a++) {
        const real nb = part_n[a * channels];
        if (nb == 0.0f) {
            continue;
        }
        const real total = acc_n + nb;
        const real wa = acc_n / total;
        const real wb = nb / total;
        for (int c = 0; c < channels; c++) {
            const real delta = part_mean[a * channels + c] - part_mean[c];
            part_mean[c] += delta * wb;
            part_var[c] = wa * part_var[c] + wb * part_var[a * channels + c] + (delta * wa) * (delta * wb);
        }
        acc_n = total;
    }
    for (int c = 0; c < channels; c++) {
        moments m = {acc_n, part_mean[c], part_var[c]};
        finish_channel(c, m, TLOAD(x + c * inner), eps, keep, factor, update_running, unbiased_running, save_mean,
                       save_mean_lo, save_invstd, running_mean, running_var, skipped);
    }
}

// FLAT statistics for CPU devices, inner == 1 and channels a multiple of VEC (see bn_affine_flat):
// work-item g owns rows [g * rows_per_item, ...) of the (outer) x (channels) matrix and keeps every
// column's running moments in its own slice of the partials. Rows go in blocks of BV, streamed as
// BV parallel row streams: per column vector, the block's sum and then its squared deviations
// (second pass from cache) in registers, then one Chan merge into the slice; within a block every
// column has the same count, so the weights are computed once. The last work-item merges the
// slices in index order. Grid (items), local (1).
__kernel void bn_stats_flat(__global const store_t* x, const int channels, const int outer, const int rows_per_item,
                            STATS_FINALIZE_ARGS, __local int* l_flag) {
    const int g = get_global_id(0);
    const int items = get_global_size(0);
    int r0;
    int r1;
    flat_rows(g, rows_per_item, outer, &r0, &r1);
    __global real* mean = part_mean + g * channels;
    __global real* var = part_var + g * channels;
    for (int j = 0; j < channels; j += VEC) {
        vstorev((realv) 0.0f, 0, mean + j);
        vstorev((realv) 0.0f, 0, var + j);
    }
    real n = 0.0f;
    for (int r = r0; r < r1; r += BV) {
        const int rows = min(BV, r1 - r);
        const real total = n + rows;
        const real wa = n / total;
        const real wb = rows / total;
        __global const store_t* block = x + r * channels;
        for (int j = 0; j < channels; j += VEC) {
            const realv shift = TLOADV(x + j);
            realv s = (realv) 0.0f;
            for (int b = 0; b < rows; b++) {
                s += (TLOADV(block + b * channels + j) - shift) * STATS_SCALE;
            }
            const realv m = s / (real) rows;
            realv q = (realv) 0.0f;
            for (int b = 0; b < rows; b++) {
                const realv d = (TLOADV(block + b * channels + j) - shift) * STATS_SCALE - m;
                q += d * d;
            }
            const realv old = SLOTV(mean, j);
            const realv delta = m - old;
            SLOTV(mean, j) = old + delta * wb;
            SLOTV(var, j) = wa * SLOTV(var, j) + wb * (q / (real) rows) + (delta * wa) * (delta * wb);
        }
        n = total;
    }
    for (int j = 0; j < channels; j += VEC) {
        vstorev((realv) n, 0, part_n + g * channels + j);
    }
    if (take_ticket_is_last(counter, items, l_flag)) {
        finish_slices(items, channels, x, 1, part_n, part_mean, part_var, eps, keep, factor, update_running,
                      unbiased_running, save_mean, save_mean_lo, save_invstd, running_mean, running_var, skipped);
        *counter = 0;
    }
}

// FLAT rows statistics, for CPU devices and short NCHW rows (see bn_affine_flat_rows): work-item g
// owns outer rows [o0, o1), i.e. every channel's segment of them, one contiguous stretch of memory,
// and keeps each channel's running moments in its own slice of the partials. A segment (o, c) is
// summarised in two passes (the second from cache) and merged with weights shared by all channels,
// since every channel has seen the same number of rows. The last work-item merges the slices in
// index order. Grid (items), local (1).
__kernel void bn_stats_flat_rows(__global const store_t* x, const int channels, const int inner, const int outer,
                                 const int outer_per_item, STATS_FINALIZE_ARGS, __local int* l_flag) {
    const int g = get_global_id(0);
    const int items = get_global_size(0);
    const int o0 = min(g * outer_per_item, outer);
    const int o1 = min(o0 + outer_per_item, outer);
    __global real* mean = part_mean + g * channels;
    __global real* var = part_var + g * channels;
    real n = 0.0f;
    for (int o = o0; o < o1; o++) {
        const real total = n + inner;
        const real wa = n / total;
        const real wb = inner / total;
        for (int c = 0; c < channels; c++) {
            const moments m = rest_moments(x + (o * channels + c) * inner, 0, inner, 0, inner / VEC, 0, 1,
                                           TLOAD(x + c * inner));
            if (o == o0) {
                mean[c] = m.mean;
                var[c] = m.var;
            } else {
                const real delta = m.mean - mean[c];
                mean[c] += delta * wb;
                var[c] = wa * var[c] + wb * m.var + (delta * wa) * (delta * wb);
            }
        }
        n = total;
    }
    for (int c = 0; c < channels; c++) {
        part_n[g * channels + c] = n;
    }
    if (take_ticket_is_last(counter, items, l_flag)) {
        finish_slices(items, channels, x, inner, part_n, part_mean, part_var, eps, keep, factor, update_running,
                      unbiased_running, save_mean, save_mean_lo, save_invstd, running_mean, running_var, skipped);
        *counter = 0;
    }
}
