// Device copy, the bandwidth yardstick: the bench compares every batch-norm kernel with this
// copy measured in the same run, on the same device, moving the same number of bytes. It is
// the simplest fast form on GPUs and on POCL alike: one float4 per work-item, consecutive
// work-items on consecutive addresses. Work-item v also copies scalar element 4*vecs + v of
// the tail (n % 4 values), so the host launches max(vecs, n % 4) work-items, rounded up.
__kernel void copy_floats(__global const float* src, __global float* dst, const int n) {
    const int v = get_global_id(0);
    const int vecs = n / 4;
    if (v < vecs) {
        vstore4(vload4(v, src), v, dst);
    }
    const int tail = vecs * 4 + v;
    if (v < n - vecs * 4) {
        dst[tail] = src[tail];
    }
}
