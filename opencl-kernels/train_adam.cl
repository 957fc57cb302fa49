// Adam (Kingma & Ba 2015) exactly as torch.optim.Adam (no weight decay, no amsgrad) computes it:
//   m = m + (1 - beta1) * (g - m)          (m.lerp_(g, 1 - beta1))
//   v = beta2 * v + (1 - beta2) * g * g
//   p = p - step_size * m / (sqrt(v) / bc2_sqrt + eps)
// with step_size = lr / (1 - beta1^t) and bc2_sqrt = sqrt(1 - beta2^t) computed on the host per
// step (scalars passed as arguments: nothing is read back). Range (n).
__kernel void train_adam(__global float* p,
                         __global const float* g,
                         __global float* m,
                         __global float* v,
                         const int n,
                         const float beta1, const float beta2, const float eps,
                         const float step_size, const float bc2_sqrt) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const float gi = g[i];
    const float mi = m[i] + (1.0f - beta1) * (gi - m[i]);
    const float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] -= step_size * mi / (sqrt(vi) / bc2_sqrt + eps);
}
