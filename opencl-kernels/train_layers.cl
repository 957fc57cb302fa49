// Elementwise and small reduction kernels of the MLP trainer (dev.clnorm.train). Row-major
// matrices: a batch of `rows` samples, `cols` features each. The GEMMs of the dense layers are not
// here: they run through CLBlast. Every reduction has a fixed order, so results are the same run to run.

// Copies the rows order[offset .. offset+rows) of the resident data set into a batch:
// x[r, :] = images[order[offset + r], :] and y[r] = labels[order[offset + r]].
// Range (features, rows).
__kernel void train_gather(__global const float* images,
                           __global const int* labels,
                           __global const int* order,
                           const int offset, const int rows, const int features,
                           __global float* x,
                           __global int* y) {
    const int f = get_global_id(0);
    const int r = get_global_id(1);
    if (f >= features || r >= rows) return;
    const int src = order[offset + r];
    x[r * features + f] = images[(long) src * features + f];
    if (f == 0) y[r] = labels[src];
}

// y[r, c] += bias[c]. Range (cols, rows).
__kernel void train_add_bias(__global float* y,
                             __global const float* bias,
                             const int rows, const int cols) {
    const int c = get_global_id(0);
    const int r = get_global_id(1);
    if (c >= cols || r >= rows) return;
    y[r * cols + c] += bias[c];
}

// out[c] = sum over r of dy[r, c], rows in order (the bias gradient). Range (cols).
__kernel void train_column_sums(__global const float* dy,
                                __global float* out,
                                const int rows, const int cols) {
    const int c = get_global_id(0);
    if (c >= cols) return;
    float s = 0.0f;
    for (int r = 0; r < rows; r++) {
        s += dy[r * cols + c];
    }
    out[c] = s;
}

// y = max(x, 0); NaN stays NaN (as torch.relu). x and y may be the same buffer. Range (n).
__kernel void train_relu(__global const float* x, __global float* y, const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const float v = x[i];
    y[i] = v < 0.0f ? 0.0f : v;
}

// dx = dy where the ReLU output y is positive, else 0. dy and dx may be the same buffer. Range (n).
__kernel void train_relu_backward(__global const float* y,
                                  __global const float* dy,
                                  __global float* dx,
                                  const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}
