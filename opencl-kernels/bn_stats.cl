// Training-forward statistics, stage 1 of 2: per-work-group partial moments.
//
// Work-group (g, c) of a (groups_per_channel x channels) grid summarises values
// [g*chunk, min((g+1)*chunk, m)) of channel c, where m = outer*inner. Values are shifted by the
// channel's first element before accumulating, so that channels with a large mean and a small
// spread (mean 1e6, std 1e-2) keep their precision: x - shift is exact for nearby floats. They are
// then scaled by STATS_SCALE (exact) so that squared deviations of |x| ~ 1e19 data stay finite.
// Partials are (count, mean, var) of the scaled values; bn_stats_finalize merges them in a fixed
// order.

__kernel void bn_stats_partials(__global const float* x,
                                const int channels, const int inner, const int m,
                                const int chunk,
                                __global float* part_n,
                                __global float* part_mean,
                                __global float* part_var,
                                __local float* l_n,
                                __local float* l_mean,
                                __local float* l_var) {
    const int lid = get_local_id(0);
    const int lsize = get_local_size(0);
    const int g = get_group_id(0);
    const int c = get_group_id(1);
    const int groups = get_num_groups(0);

    const float shift = x[c * inner];
    const int begin = g * chunk;
    const int end = min(begin + chunk, m);

    moments acc = moments_empty();
    for (int j = begin + lid; j < end; j += lsize) {
        acc = moments_push(acc, (x[channel_offset(j, c, channels, inner)] - shift) * STATS_SCALE);
    }
    l_n[lid] = acc.n;
    l_mean[lid] = acc.mean;
    l_var[lid] = acc.var;
    barrier(CLK_LOCAL_MEM_FENCE);

    // Tree merge; lsize is a power of two chosen by the host.
    for (int stride = lsize / 2; stride > 0; stride /= 2) {
        if (lid < stride) {
            moments a = {l_n[lid], l_mean[lid], l_var[lid]};
            moments b = {l_n[lid + stride], l_mean[lid + stride], l_var[lid + stride]};
            moments r = moments_merge(a, b);
            l_n[lid] = r.n;
            l_mean[lid] = r.mean;
            l_var[lid] = r.var;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0) {
        const int p = c * groups + g;
        part_n[p] = l_n[0];
        part_mean[p] = l_mean[0];
        part_var[p] = l_var[0];
    }
}

// Stage 2: one work-item per channel merges that channel's partials in index order, then
//  - saves the batch mean as a float pair (mean_hi + mean_lo) so that x - mean stays exact to
//    float precision even when |mean| >> std, and saves invstd = 1/sqrt(var + eps);
//  - updates the running statistics with PyTorch's convention:
//        running = (1 - factor) * running + factor * batch, running_var fed the unbiased variance.
//    A channel whose batch statistics are not finite in float32 (NaN/Inf in the input, or a
//    variance above FLT_MAX) is not folded into the running statistics; skipped[c] counts how
//    often that happened.
__kernel void bn_stats_finalize(__global const float* x,
                                const int channels, const int inner,
                                const int groups,
                                __global const float* part_n,
                                __global const float* part_mean,
                                __global const float* part_var,
                                const float eps,
                                const float factor,
                                const int update_running,
                                __global float* save_mean,
                                __global float* save_mean_lo,
                                __global float* save_invstd,
                                __global float* running_mean,
                                __global float* running_var,
                                __global int* skipped) {
    const int c = get_global_id(0);
    if (c >= channels) return;

    moments acc = moments_empty();
    for (int g = 0; g < groups; g++) {
        const int p = c * groups + g;
        moments b = {part_n[p], part_mean[p], part_var[p]};
        acc = moments_merge(acc, b);
    }
    const float shift = x[c * inner];
    const float mean_dev = acc.mean * STATS_UNSCALE;      // mean of x - shift (exact rescale)
    const float mean_hi = shift + mean_dev;
    const float mean_lo = (shift - mean_hi) + mean_dev;   // what rounding mean_hi dropped
    const float var_scaled = clamp_nonnegative(acc.var);  // biased: this one normalizes
    // var is +Inf when the spread exceeds ~1.8e19 (variance above FLT_MAX). The output is still
    // well defined: invstd = 1/sqrt(var + eps) computed in the scaled domain, where eps is
    // negligible. Otherwise the plain formula, so eps of any size is honoured exactly.
    const float var = var_scaled * (STATS_UNSCALE * STATS_UNSCALE);
    save_mean[c] = mean_hi;
    save_mean_lo[c] = mean_lo;
    save_invstd[c] = isinf(var) ? STATS_SCALE / sqrt(var_scaled) : 1.0f / sqrt(var + eps);

    if (update_running) {
        const float unbiased = var * (acc.n / (acc.n - 1.0f));  // Bessel's correction, m/(m-1)
        if (isfinite(mean_hi) && isfinite(unbiased)) {
            running_mean[c] = (1.0f - factor) * running_mean[c] + factor * mean_hi;
            running_var[c] = (1.0f - factor) * running_var[c] + factor * unbiased;
        } else {
            skipped[c] += 1;
        }
    }
}
