// Backward pass, given dy and the statistics saved by the training forward:
//   dbeta  = sum(dy)
//   dgamma = sum(dy * xhat)
//   dx     = gamma * invstd * (dy - dbeta/m - xhat * dgamma/m)
// Stage 1 reduces per work-group partial sums, stage 2 merges them per channel in a fixed
// order, stage 3 is elementwise.

__kernel void bn_backward_partials(__global const float* x,
                                   __global const float* dy,
                                   const int channels, const int inner, const int m,
                                   const int chunk,
                                   __global const float* mean_hi,
                                   __global const float* mean_lo,
                                   __global const float* invstd,
                                   __global float* part_dbeta,
                                   __global float* part_dgamma,
                                   __local float* l_dbeta,
                                   __local float* l_dgamma) {
    const int lid = get_local_id(0);
    const int lsize = get_local_size(0);
    const int g = get_group_id(0);
    const int c = get_group_id(1);
    const int groups = get_num_groups(0);

    const float mh = mean_hi[c];
    const float ml = mean_lo[c];
    const float is = invstd[c];
    const int begin = g * chunk;
    const int end = min(begin + chunk, m);

    float sum_dy = 0.0f;
    float sum_dy_xhat = 0.0f;
    for (int j = begin + lid; j < end; j += lsize) {
        const int at = channel_offset(j, c, channels, inner);
        const float d = dy[at];
        sum_dy += d;
        sum_dy_xhat += d * (((x[at] - mh) - ml) * is);
    }
    l_dbeta[lid] = sum_dy;
    l_dgamma[lid] = sum_dy_xhat;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int stride = lsize / 2; stride > 0; stride /= 2) {
        if (lid < stride) {
            l_dbeta[lid] += l_dbeta[lid + stride];
            l_dgamma[lid] += l_dgamma[lid + stride];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0) {
        part_dbeta[c * groups + g] = l_dbeta[0];
        part_dgamma[c * groups + g] = l_dgamma[0];
    }
}

__kernel void bn_backward_finalize(const int channels, const int groups,
                                   __global const float* part_dbeta,
                                   __global const float* part_dgamma,
                                   __global float* dbeta,
                                   __global float* dgamma) {
    const int c = get_global_id(0);
    if (c >= channels) return;
    float sb = 0.0f;
    float sg = 0.0f;
    for (int g = 0; g < groups; g++) {
        sb += part_dbeta[c * groups + g];
        sg += part_dgamma[c * groups + g];
    }
    dbeta[c] = sb;
    dgamma[c] = sg;
}

__kernel void bn_backward_dx(__global const float* x,
                             __global const float* dy,
                             __global float* dx,
                             const int channels, const int inner, const int rows,
                             const float inv_m,
                             __global const float* mean_hi,
                             __global const float* mean_lo,
                             __global const float* invstd,
                             __global const float* gamma,
                             __global const float* dbeta,
                             __global const float* dgamma) {
    const int i = get_global_id(0);
    const int r = get_global_id(1);
    if (i >= inner || r >= rows) return;
    const int c = r % channels;
    const int at = r * inner + i;
    const float is = invstd[c];
    const float xhat = ((x[at] - mean_hi[c]) - mean_lo[c]) * is;
    dx[at] = gamma[c] * is * (dy[at] - dbeta[c] * inv_m - xhat * (dgamma[c] * inv_m));
}
