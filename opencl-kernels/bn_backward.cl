// Backward, given dy and the statistics saved by the training forward:
//   dbeta  = sum(dy)
//   dgamma = sum(dy * xhat)
//   dx     = gamma * invstd * (dy - dbeta/m - xhat * dgamma/m)
// Launch 1 reduces per-work-group partial sums and its last work-group merges them per channel in
// index order (see take_ticket_is_last); launch 2 is elementwise.

inline void finalize_grads(int c, partial_layout pl, volatile __global const real* part_db,
                           volatile __global const real* part_dg, __global real* dbeta, __global real* dgamma) {
    real sb = 0.0f;
    real sg = 0.0f;
    for (int a = 0; a < pl.acount; a++) {
        for (int b = 0; b < pl.bcount; b++) {
            const int p = c * pl.cstride + a * pl.astride + b;
            sb += part_db[p];
            sg += part_dg[p];
        }
    }
    dbeta[c] = sb;
    dgamma[c] = sg;
}

// Tree sum of two values per work-item along local dimension `dim` (power-of-two size).
inline real2 local_sum2(real2 v, __local real* l_a, __local real* l_b, int dim) {
    const int lid = flat_local_id();
    const int step = dim == 0 ? 1 : (int) get_local_size(0);
    const int along = get_local_id(dim);
    l_a[lid] = v.x;
    l_b[lid] = v.y;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int stride = get_local_size(dim) / 2; stride > 0; stride /= 2) {
        if (along < stride) {
            l_a[lid] += l_a[lid + stride * step];
            l_b[lid] += l_b[lid + stride * step];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    return (real2)(l_a[lid], l_b[lid]);
}

// (sum dy, sum dy * xhat) over this work-item's share of units [u_begin, u_end) of channel c,
// with VEC independent vector accumulators added in a fixed order at the end.
inline real2 rows_grad_sums(__global const store_t* x, __global const store_t* dy, int channels, int inner, int c,
                             int u_begin, int u_end, int segs, int seg_len, int lid, int lsize,
                             real h, real l, real is, __global const store_t* yact, int act) {
    realv sum_dy = (realv) 0.0f;
    realv sum_dyx = (realv) 0.0f;
    real tail_dy = 0.0f;
    real tail_dyx = 0.0f;
    for (int u = u_begin; u < u_end; u++) {
        const int o = u / segs;
        const int start = (u - o * segs) * seg_len;
        const int end = min(start + seg_len, inner);
        const int base = (o * channels + c) * inner;
        const int vecs = (end - start) / VEC;
        for (int k = lid; k < vecs; k += lsize) {
            const int at = base + start + k * VEC;
            const realv d = RELU_MASK(realv, TLOADV(dy + at), act, TLOADV(yact + at));
            sum_dy += d;
            sum_dyx += d * (((TLOADV(x + at) - h) - l) * is);
        }
        for (int t = start + vecs * VEC + lid; t < end; t += lsize) {
            const real d = RELU_MASK(real, TLOAD(dy + base + t), act, TLOAD(yact + base + t));
            tail_dy += d;
            tail_dyx += d * (((TLOAD(x + base + t) - h) - l) * is);
        }
    }
    return (real2)(vsum(sum_dy) + tail_dy, vsum(sum_dyx) + tail_dyx);
}

// dx over this work-item's share of units [u_begin, u_end) of channel c.
inline void dx_rows(__global const store_t* x, __global const store_t* dy, __global store_t* dx, int channels, int inner,
                    int c, int u_begin, int u_end, int segs, int seg_len, int lid, int lsize,
                    real h, real l, real is, real scale, real db, real dg,
                    __global const store_t* yact, int act, __global store_t* dres) {
    for (int u = u_begin; u < u_end; u++) {
        const int o = u / segs;
        const int start = (u - o * segs) * seg_len;
        const int end = min(start + seg_len, inner);
        const int base = (o * channels + c) * inner;
        const int vecs = (end - start) / VEC;
        for (int k = lid; k < vecs; k += lsize) {
            const int at = base + start + k * VEC;
            const realv xhat = ((TLOADV(x + at) - h) - l) * is;
            const realv d = RELU_MASK(realv, TLOADV(dy + at), act, TLOADV(yact + at));
            TSTOREV(scale * (d - db - xhat * dg), dx + at);
            if (act & ACT_RESIDUAL) {
                TSTOREV(d, dres + at);
            }
        }
        for (int t = start + vecs * VEC + lid; t < end; t += lsize) {
            const real xhat = ((TLOAD(x + base + t) - h) - l) * is;
            const real d = RELU_MASK(real, TLOAD(dy + base + t), act, TLOAD(yact + base + t));
            TSTORE(scale * (d - db - xhat * dg), dx + base + t);
            if (act & ACT_RESIDUAL) {
                TSTORE(d, dres + base + t);
            }
        }
    }
}

#define GRAD_ARGS                                                                     \
    __global const real* mean_hi, __global const real* mean_lo,                     \
    __global const real* invstd,                                                     \
    __global real* part_db, __global real* part_dg, volatile __global int* counter, \
    __global real* dbeta, __global real* dgamma,                                   \
    __global const store_t* yact, const int act

__kernel void bn_grad_rows(__global const store_t* x, __global const store_t* dy, const int channels, const int inner,
                           const int segs, const int seg_len, const int units, const int units_per_group,
                           GRAD_ARGS, __local real* l_a, __local real* l_b, __local int* l_flag) {
    const int lid = get_local_id(0);
    const int lsize = get_local_size(0);
    const int g = get_group_id(0);
    const int c = get_group_id(1);
    const int groups = get_num_groups(0);
    const real h = mean_hi[c];
    const real l = mean_lo[c];
    const real is = invstd[c];

    const real2 mine = rows_grad_sums(x, dy, channels, inner, c, g * units_per_group,
                                       min((g + 1) * units_per_group, units), segs, seg_len, lid, lsize, h, l, is,
                                       yact, act);
    real2 s = local_sum2(mine, l_a, l_b, 0);
    if (lid == 0) {
        part_db[c * groups + g] = s.x;
        part_dg[c * groups + g] = s.y;
    }
    if (take_ticket_is_last(counter, groups * channels, l_flag)) {
        partial_layout pl = {groups, groups, 1, 1};
        for (int ch = lid; ch < channels; ch += lsize) {
            finalize_grads(ch, pl, part_db, part_dg, dbeta, dgamma);
        }
        if (lid == 0) {
            *counter = 0;
        }
    }
}

__kernel void bn_grad_cols(__global const store_t* x, __global const store_t* dy, const int channels, const int inner,
                           const int outer, const int rows_per_group,
                           GRAD_ARGS, __local real* l_a, __local real* l_b, __local int* l_flag) {
    const int columns = channels * inner;
    const int jv = get_global_id(0);
    const int j = jv * CW;
    const int gy = get_group_id(1);
    const int row_groups = get_num_groups(1);
    const int ly = get_local_id(1);
    const int valid = j < columns;
    realc sum_dy = (realc) 0.0f;
    realc sum_dyx = (realc) 0.0f;
    if (valid) {
        const realc h = LOAD_COLS(mean_hi, j, inner);
        const realc l = LOAD_COLS(mean_lo, j, inner);
        const realc is = LOAD_COLS(invstd, j, inner);
        const int r_end = min((gy + 1) * rows_per_group, outer);
        for (int r = gy * rows_per_group + ly; r < r_end; r += get_local_size(1)) {
            const int at = r * columns + j;
            const realc d = RELU_MASK(realc, TLOADC(dy + at), act, TLOADC(yact + at));
            sum_dy += d;
            sum_dyx += d * (((TLOADC(x + at) - h) - l) * is);
        }
    }
#if CW == 1
    real2 s = local_sum2((real2)(sum_dy, sum_dyx), l_a, l_b, 1);
    if (ly == 0 && valid) {
        part_db[gy * columns + j] = s.x;
        part_dg[gy * columns + j] = s.y;
    }
#else
    real bv[CW];
    real gv[CW];
    vstorec(sum_dy, 0, bv);
    vstorec(sum_dyx, 0, gv);
    for (int lane = 0; lane < CW; lane++) {
        real2 s = local_sum2((real2)(bv[lane], gv[lane]), l_a, l_b, 1);
        if (ly == 0 && valid) {
            part_db[gy * columns + j + lane] = s.x;
            part_dg[gy * columns + j + lane] = s.y;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
#endif
    if (take_ticket_is_last(counter, get_num_groups(0) * row_groups, l_flag)) {
        partial_layout pl = {inner, row_groups, columns, inner};
        for (int ch = flat_local_id(); ch < channels; ch += flat_local_size()) {
            finalize_grads(ch, pl, part_db, part_dg, dbeta, dgamma);
        }
        if (flat_local_id() == 0) {
            *counter = 0;
        }
    }
}

#define DX_ARGS                                                                            \
    const real inv_m, __global const real* mean_hi, __global const real* mean_lo,       \
    __global const real* invstd, __global const real* gamma,                             \
    __global const real* dbeta, __global const real* dgamma,                             \
    __global const store_t* yact, const int act, __global store_t* dres

__kernel void bn_dx_rows(__global const store_t* x, __global const store_t* dy, __global store_t* dx,
                         const int channels, const int inner,
                         const int segs, const int seg_len, const int units, const int units_per_group, DX_ARGS) {
    const int lid = get_local_id(0);
    const int lsize = get_local_size(0);
    const int g = get_group_id(0);
    const int c = get_group_id(1);
    const real h = mean_hi[c];
    const real l = mean_lo[c];
    const real is = invstd[c];
    const real scale = gamma[c] * is;
    const real db = dbeta[c] * inv_m;
    const real dg = dgamma[c] * inv_m;
    dx_rows(x, dy, dx, channels, inner, c, g * units_per_group, min((g + 1) * units_per_group, units), segs,
            seg_len, lid, lsize, h, l, is, scale, db, dg, yact, act, dres);
}

__kernel void bn_dx_cols(__global const store_t* x, __global const store_t* dy, __global store_t* dx,
                         const int channels, const int inner, const int outer, const int rows_per_group, DX_ARGS) {
    const int columns = channels * inner;
    const int j = get_global_id(0) * CW;
    if (j >= columns) {
        return;
    }
    const realc h = LOAD_COLS(mean_hi, j, inner);
    const realc l = LOAD_COLS(mean_lo, j, inner);
    const realc is = LOAD_COLS(invstd, j, inner);
    const realc scale = LOAD_COLS(gamma, j, inner) * is;
    const realc db = LOAD_COLS(dbeta, j, inner) * inv_m;
    const realc dg = LOAD_COLS(dgamma, j, inner) * inv_m;
    const int gy = get_group_id(1);
    const int r_end = min((gy + 1) * rows_per_group, outer);
    for (int r = gy * rows_per_group + get_local_id(1); r < r_end; r += get_local_size(1)) {
        const int at = r * columns + j;
        const realc xhat = ((TLOADC(x + at) - h) - l) * is;
        const realc d = RELU_MASK(realc, TLOADC(dy + at), act, TLOADC(yact + at));
        TSTOREC(scale * (d - db - xhat * dg), dx + at);
        if (act & ACT_RESIDUAL) {
            TSTOREC(d, dres + at);
        }
    }
}

// FLAT traversal of dx (see bn_affine_flat): whole rows per work-item, FLAT_RB rows per column
// vector's parameters, same arithmetic as bn_dx_cols. Grid (items), local (1).
__kernel void bn_dx_flat(__global const store_t* x, __global const store_t* dy, __global store_t* dx,
                         const int channels, const int outer, const int rows_per_item, DX_ARGS) {
    int r0;
    int r1;
    flat_rows((int) get_global_id(0), rows_per_item, outer, &r0, &r1);
    for (int r = r0; r < r1; r += FLAT_RB) {
        const int rows = min(FLAT_RB, r1 - r);
        for (int j = 0; j < channels; j += VEC) {
            const realv h = PARAMV(mean_hi, j);
            const realv l = PARAMV(mean_lo, j);
            const realv is = PARAMV(invstd, j);
            const realv scale = PARAMV(gamma, j) * is;
            const realv db = PARAMV(dbeta, j) * inv_m;
            const realv dg = PARAMV(dgamma, j) * inv_m;
            for (int b = 0; b < rows; b++) {
                const int e = (r + b) * channels + j;
                const realv xhat = ((TLOADV(x + e) - h) - l) * is;
                const realv d = RELU_MASK(realv, TLOADV(dy + e), act, TLOADV(yact + e));
                TSTOREV(scale * (d - db - xhat * dg), dx + e);
                if (act & ACT_RESIDUAL) {
                    TSTOREV(d, dres + e);
                }
            }
        }
    }
}

// The FLAT kernels' last work-item: adds slices 1, 2, ... of the per-work-item sums into slice 0 in
// index order and stores the channel totals.
inline void sum_slices(int items, int channels, __global real* part_db, __global real* part_dg,
                       __global real* dbeta, __global real* dgamma) {
    for (int a = 1; a < items; a++) {
        for (int c = 0; c < channels; c++) {
            part_db[c] += part_db[a * channels + c];
            part_dg[c] += part_dg[a * channels + c];
        }
    }
    for (int c = 0; c < channels; c++) {
        dbeta[c] = part_db[c];
        dgamma[c] = part_dg[c];
    }
}

// FLAT gradient sums for CPU devices (see bn_stats_flat): work-item g sums its rows, in memory
// order, into its own slice of the partials; the last work-item adds the slices in index order.
// Grid (items), local (1).
__kernel void bn_grad_flat(__global const store_t* x, __global const store_t* dy, const int channels, const int outer,
                           const int rows_per_item, GRAD_ARGS, __local int* l_flag) {
    const int g = get_global_id(0);
    const int items = get_global_size(0);
    int r0;
    int r1;
    flat_rows(g, rows_per_item, outer, &r0, &r1);
    __global real* sb = part_db + g * channels;
    __global real* sg = part_dg + g * channels;
    for (int j = 0; j < channels; j += VEC) {
        vstorev((realv) 0.0f, 0, sb + j);
        vstorev((realv) 0.0f, 0, sg + j);
    }
    // Blocks of FLAT_RB rows: a column vector's sums over the block in registers, then one add into
    // the slice (the slice's loads and stores per row bounded this loop, not memory).
    for (int r = r0; r < r1; r += FLAT_RB) {
        const int rows = min(FLAT_RB, r1 - r);
        for (int j = 0; j < channels; j += VEC) {
            const realv h = PARAMV(mean_hi, j);
            const realv l = PARAMV(mean_lo, j);
            const realv is = PARAMV(invstd, j);
            realv bsum = (realv) 0.0f;
            realv gsum = (realv) 0.0f;
            for (int b = 0; b < rows; b++) {
                const int at = (r + b) * channels + j;
                const realv d = RELU_MASK(realv, TLOADV(dy + at), act, TLOADV(yact + at));
                bsum += d;
                gsum += d * (((TLOADV(x + at) - h) - l) * is);
            }
            SLOTV(sb, j) += bsum;
            SLOTV(sg, j) += gsum;
        }
    }
    if (take_ticket_is_last(counter, items, l_flag)) {
        sum_slices(items, channels, part_db, part_dg, dbeta, dgamma);
        *counter = 0;
    }
}

// FLAT rows gradient sums, for CPU devices and short NCHW rows (see bn_stats_flat_rows): work-item g
// sums outer rows [o0, o1) per channel into its own slice; the last work-item adds the slices in
// index order. Grid (items), local (1).
__kernel void bn_grad_flat_rows(__global const store_t* x, __global const store_t* dy, const int channels,
                                const int inner, const int outer, const int outer_per_item, GRAD_ARGS,
                                __local int* l_flag) {
    const int g = get_global_id(0);
    const int items = get_global_size(0);
    const int o0 = min(g * outer_per_item, outer);
    const int o1 = min(o0 + outer_per_item, outer);
    __global real* sb = part_db + g * channels;
    __global real* sg = part_dg + g * channels;
    for (int c = 0; c < channels; c++) {
        sb[c] = 0.0f;
        sg[c] = 0.0f;
    }
    for (int o = o0; o < o1; o++) {
        for (int c = 0; c < channels; c++) {
            const real2 s = rows_grad_sums(x, dy, channels, inner, c, o, o + 1, 1, inner, 0, 1, mean_hi[c],
                                           mean_lo[c], invstd[c], yact, act);
            sb[c] += s.x;
            sg[c] += s.y;
        }
    }
    if (take_ticket_is_last(counter, items, l_flag)) {
        sum_slices(items, channels, part_db, part_dg, dbeta, dgamma);
        *counter = 0;
    }
}

// FLAT rows dx (see bn_affine_flat_rows): consecutive rows of the (outer * channels) row list per
// work-item, same arithmetic as bn_dx_rows. Grid (items), local (1).
__kernel void bn_dx_flat_rows(__global const store_t* x, __global const store_t* dy, __global store_t* dx,
                              const int channels, const int inner, const int rows_total, const int rows_per_item,
                              DX_ARGS) {
    const int q0 = min((int) get_global_id(0) * rows_per_item, rows_total);
    const int q1 = min(q0 + rows_per_item, rows_total);
    for (int q = q0; q < q1; q++) {
        const int c = q % channels;
        const real is = invstd[c];
        dx_rows(x, dy, dx, channels, inner, c, q / channels, q / channels + 1, 1, inner, 0, 1, mean_hi[c], mean_lo[c],
                is, gamma[c] * is, dbeta[c] * inv_m, dgamma[c] * inv_m, yact, act, dres);
    }
}
