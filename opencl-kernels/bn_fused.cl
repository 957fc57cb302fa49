// Single-launch training forward and backward for devices and shapes where one work-group can own
// a whole channel and the channel's data stays in that compute unit's cache between two passes
// (CPU devices, channel working set within the L2 budget the host checks). The first pass reads
// the channel from memory; the second finds it in cache, so memory traffic approaches the
// 8 bytes/element of a copy instead of 12 (forward) or 20 (backward, with dy) of two launches.
// Grid (L, channels): work-group c owns channel c, all `outer` rows, one unit per row.

__kernel void bn_train_fused_rows(__global const store_t* x, __global store_t* y, const int channels, const int inner,
                                  const int outer, const float eps, const float keep, const float factor,
                                  const int update_running, const int unbiased_running,
                                  __global float* save_mean, __global float* save_mean_lo,
                                  __global float* save_invstd, __global float* running_mean,
                                  __global float* running_var, __global int* skipped,
                                  __global const float* gamma, __global const float* beta,
                                  __global const store_t* residual, const int act,
                                  __local float* l_n, __local float* l_mean, __local float* l_var) {
    const int lid = get_local_id(0);
    const int lsize = get_local_size(0);
    const int c = get_group_id(1);
    const float shift = TLOAD(x + c * inner);
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
                                     const int channels, const int inner, const int outer, const float inv_m,
                                     __global const float* mean_hi, __global const float* mean_lo,
                                     __global const float* invstd, __global const float* gamma,
                                     __global float* dbeta, __global float* dgamma,
                                     __global const store_t* yact, const int act, __global store_t* dres,
                                     __local float* l_a, __local float* l_b) {
    const int lid = get_local_id(0);
    const int lsize = get_local_size(0);
    const int c = get_group_id(1);
    const float h = mean_hi[c];
    const float l = mean_lo[c];
    const float is = invstd[c];
    float2 s = rows_grad_sums(x, dy, channels, inner, c, 0, outer, 1, inner, lid, lsize, h, l, is, yact, act);
    local_sum2(s, l_a, l_b, 0);
    s = (float2)(l_a[0], l_b[0]);  // the channel's sums; local_sum2 ended with a barrier
    if (lid == 0) {
        dbeta[c] = s.x;
        dgamma[c] = s.y;
    }
    dx_rows(x, dy, dx, channels, inner, c, 0, outer, 1, inner, lid, lsize, h, l, is, gamma[c] * is, s.x * inv_m,
            s.y * inv_m, yact, act, dres);
}
