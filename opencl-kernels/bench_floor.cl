// The bench's references for backward and training forward, not batch-norm operations
// (Backend.backwardFloor, Backend.forwardFloor): the traffic a pass pair cannot avoid when its
// inputs leave the cache between the two passes — dx and y need sums over the whole channel first —
// with next to no arithmetic. floor_sums reads x and dy once and leaves one partial sum per
// work-group; floor_apply adds the partials up, reads x and dy again and writes dx = x + dy -
// mean(x + dy). forward_floor_sums and forward_floor_apply do the same with x alone: y = x - mean(x).
//
// Traversal as the batch-norm kernels of each device kind: on CPUs (chunked != 0, one work-item per
// work-group) a work-item streams one contiguous range of float4s; on GPUs neighbouring work-items
// take neighbouring float4s, striding by the grid. The n % 4 tail belongs to work-item 0. The
// float4s are read through float4 pointers (buffer starts are aligned far beyond 16 bytes): POCL
// turned vload4 here into pairs of 64-bit loads and a shuffle, a floor slower than backward itself.

// The work-group's sum of v (local size a power of two); every work-item gets it.
inline float group_sum(float v, __local float* scratch) {
    const int lid = get_local_id(0);
    scratch[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int w = get_local_size(0) / 2; w > 0; w /= 2) {
        if (lid < w) {
            scratch[lid] += scratch[lid + w];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const float total = scratch[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return total;
}

// This work-item's float4 range [*from, *to) and stride.
inline int floor_range(int vecs, int chunked, int* from, int* to) {
    const int g = get_global_id(0);
    const int items = get_global_size(0);
    if (chunked) {
        const int per = (vecs + items - 1) / items;
        *from = min(g * per, vecs);
        *to = min(*from + per, vecs);
        return 1;
    }
    *from = g;
    *to = vecs;
    return items;
}

// A first pass's work-group sum of every work-item's `mine`, stored as the group's partial.
inline void store_partial(float mine, __global float* partials, __local float* scratch) {
    const float total = group_sum(mine, scratch);
    if (get_local_id(0) == 0) {
        partials[get_group_id(0)] = total;
    }
}

// mean(x) (or of x + dy) from the partials of a first pass: every work-item gets it.
inline float floor_mean(__global const float* partials, const int groups, const int n, __local float* scratch) {
    float mine = 0.0f;
    for (int i = get_local_id(0); i < groups; i += get_local_size(0)) {
        mine += partials[i];
    }
    return group_sum(mine, scratch) / n;
}

__kernel void floor_sums(__global const float* x, __global const float* dy, const int n, const int chunked,
                         __global float* partials, __local float* scratch) {
    __global const float4* x4 = (__global const float4*) x;
    __global const float4* dy4 = (__global const float4*) dy;
    int from;
    int to;
    const int step = floor_range(n / 4, chunked, &from, &to);
    // Two accumulators, so that consecutive adds do not wait on each other.
    float4 s0 = (float4) 0.0f;
    float4 s1 = (float4) 0.0f;
    int v = from;
    for (; v + step < to; v += 2 * step) {
        s0 += x4[v] + dy4[v];
        s1 += x4[v + step] + dy4[v + step];
    }
    if (v < to) {
        s0 += x4[v] + dy4[v];
    }
    const float4 s = s0 + s1;
    float mine = (s.x + s.y) + (s.z + s.w);
    if (get_global_id(0) == 0) {
        for (int e = n / 4 * 4; e < n; e++) {
            mine += x[e] + dy[e];
        }
    }
    store_partial(mine, partials, scratch);
}

__kernel void floor_apply(__global const float* x, __global const float* dy, __global float* dx, const int n,
                          const int chunked, __global const float* partials, const int groups,
                          __local float* scratch) {
    const float mean = floor_mean(partials, groups, n, scratch);
    __global const float4* x4 = (__global const float4*) x;
    __global const float4* dy4 = (__global const float4*) dy;
    __global float4* dx4 = (__global float4*) dx;
    int from;
    int to;
    const int step = floor_range(n / 4, chunked, &from, &to);
    for (int v = from; v < to; v += step) {
        dx4[v] = x4[v] + dy4[v] - mean;
    }
    if (get_global_id(0) == 0) {
        for (int e = n / 4 * 4; e < n; e++) {
            dx[e] = x[e] + dy[e] - mean;
        }
    }
}

__kernel void forward_floor_sums(__global const float* x, const int n, const int chunked, __global float* partials,
                                 __local float* scratch) {
    __global const float4* x4 = (__global const float4*) x;
    int from;
    int to;
    const int step = floor_range(n / 4, chunked, &from, &to);
    float4 s0 = (float4) 0.0f;
    float4 s1 = (float4) 0.0f;
    int v = from;
    for (; v + step < to; v += 2 * step) {
        s0 += x4[v];
        s1 += x4[v + step];
    }
    if (v < to) {
        s0 += x4[v];
    }
    const float4 s = s0 + s1;
    float mine = (s.x + s.y) + (s.z + s.w);
    if (get_global_id(0) == 0) {
        for (int e = n / 4 * 4; e < n; e++) {
            mine += x[e];
        }
    }
    store_partial(mine, partials, scratch);
}

__kernel void forward_floor_apply(__global const float* x, __global float* y, const int n, const int chunked,
                                  __global const float* partials, const int groups, __local float* scratch) {
    const float mean = floor_mean(partials, groups, n, scratch);
    __global const float4* x4 = (__global const float4*) x;
    __global float4* y4 = (__global float4*) y;
    int from;
    int to;
    const int step = floor_range(n / 4, chunked, &from, &to);
    for (int v = from; v < to; v += step) {
        y4[v] = x4[v] - mean;
    }
    if (get_global_id(0) == 0) {
        for (int e = n / 4 * 4; e < n; e++) {
            y[e] = x[e] - mean;
        }
    }
}
