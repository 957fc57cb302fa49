// Single-launch training forward and backward for devices and shapes where one work-group can own
// a whole channel and the channel's data stays in that compute unit's cache between two passes
// (CPU devices, channel working set within the L2 budget the host checks). The first pass reads
// the channel from memory; the second finds it in cache, so memory traffic approaches the
// 8 bytes/element of a copy instead of 12 (forward) or 20 (backward, with dy) of two launches.
// Grid (L, channels): work-group c owns channel c, all `outer` rows, one unit per row.

__kernel void bn_train_fused_rows(__global const store_t* x, __global store_t* y, const int channels, const int inner,
                                  const int outer, const real eps, const real keep, const real factor,
                                  const int update_running, const int unbiased_running,
                                  __global real* save_mean, __global real* save_mean_lo,
                                  __global real* save_invstd, __global real* running_mean,
                                  __global real* running_var, __global int* skipped,
                                  __global const real* gamma, __global const real* beta,
                                  __global const store_t* residual, const int act,
                                  __local real* l_n, __local real* l_mean, __local real* l_var) {
    const int lid = get_local_id(0);
    const int lsize = get_local_size(0);
    const int c = get_group_id(1);
    const real shift = TLOAD(x + c * inner);
    moments acc = rows_moments(x, channels, inner, c, 0, outer, 1, inner, lid, lsize, shift);
    acc = local_merge(acc, l_n, l_mean, l_var, 0);
    if (lid == 0) {
        finish_channel(c, acc, shift, eps, keep, factor, update_running, unbiased_running, save_mean, save_mean_lo,
                       save_invstd, running_mean, running_var, skipped);
    }
    barrier(CLK_GLOBAL_MEM_FENCE);
    affine_rows(x, y, channels, inner, c, 0, outer, 1, inner, lid, lsize, save_mean[c], save_mean_lo[c],
                save_invstd[c], gamma[c], beta[c], residual, act);
}

__kernel void bn_backward_fused_rows(__global const store_t* x, __global const store_t* dy, __global store_t* dx,
                                     const int channels, const int inner, const int outer, const real inv_m,
                                     __global const real* mean_hi, __global const real* mean_lo,
                                     __global const real* invstd, __global const real* gamma,
                                     __global real* dbeta, __global real* dgamma,
                                     __global const store_t* yact, const int act, __global store_t* dres,
                                     __local real* l_a, __local real* l_b) {
    const int lid = get_local_id(0);
    const int lsize = get_local_size(0);
    const int c = get_group_id(1);
    const real h = mean_hi[c];
    const real l = mean_lo[c];
    const real is = invstd[c];
    real2 s = rows_grad_sums(x, dy, channels, inner, c, 0, outer, 1, inner, lid, lsize, h, l, is, yact, act);
    local_sum2(s, l_a, l_b, 0);
    s = (real2)(l_a[0], l_b[0]);  // the channel's sums; local_sum2 ended with a barrier
    if (lid == 0) {
        dbeta[c] = s.x;
        dgamma[c] = s.y;
    }
    dx_rows(x, dy, dx, channels, inner, c, 0, outer, 1, inner, lid, lsize, h, l, is, gamma[c] * is, s.x * inv_m,
            s.y * inv_m, yact, act, dres);
}

// Backward for short rows (7x7, 14x14) on CPU devices, one launch: work-item g owns the channels
// [g * block_channels, ...) and walks them sample by sample — a sample's rows of those channels are
// contiguous, where one channel's rows lie a whole sample apart — twice: the gradient sums, then dx,
// the block (block_channels chosen to fit a core's L2) still in cache. Each channel belongs to one
// work-item, so its sums go straight to dbeta / dgamma: per row a reduction, rows added in sample
// order, so the result does not depend on the block size. Grid (blocks), local (1).
__kernel void bn_backward_blocks_rows(__global const store_t* x, __global const store_t* dy, __global store_t* dx,
                                      const int channels, const int inner, const int outer,
                                      const int block_channels, const real inv_m,
                                      __global const real* mean_hi, __global const real* mean_lo,
                                      __global const real* invstd, __global const real* gamma,
                                      __global real* dbeta, __global real* dgamma,
                                      __global const store_t* yact, const int act, __global store_t* dres) {
    const int c0 = min((int) get_global_id(0) * block_channels, channels);
    const int c1 = min(c0 + block_channels, channels);
    for (int c = c0; c < c1; c++) {
        dbeta[c] = 0.0f;
        dgamma[c] = 0.0f;
    }
    for (int o = 0; o < outer; o++) {
        for (int c = c0; c < c1; c++) {
            const real2 s = rows_grad_sums(x, dy, channels, inner, c, o, o + 1, 1, inner, 0, 1, mean_hi[c],
                                           mean_lo[c], invstd[c], yact, act);
            dbeta[c] += s.x;
            dgamma[c] += s.y;
        }
    }
    for (int o = 0; o < outer; o++) {
        for (int c = c0; c < c1; c++) {
            const real is = invstd[c];
            dx_rows(x, dy, dx, channels, inner, c, o, o + 1, 1, inner, 0, 1, mean_hi[c], mean_lo[c], is,
                    gamma[c] * is, dbeta[c] * inv_m, dgamma[c] * inv_m, yact, act, dres);
        }
    }
}
