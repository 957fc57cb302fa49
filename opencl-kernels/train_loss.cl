// Softmax cross-entropy and accuracy of the MLP trainer (dev.clnorm.train). Each kernel runs as ONE
// work-group whose size is a power of two: work-items take rows in turn, then a fixed-order tree
// reduction in local memory adds the per-item sums, so the result is deterministic and no float
// atomics are needed. Batches are small (rows x classes = 128 x 10), so one work-group is plenty.

// Adds the fixed-order sum of scratch[0 .. get_local_size(0)) into scratch[0]; ends with a barrier.
static void train_tree_sum(__local float* scratch) {
    const int lid = get_local_id(0);
    for (int width = get_local_size(0) / 2; width > 0; width /= 2) {
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lid < width) scratch[lid] += scratch[lid + width];
    }
    barrier(CLK_LOCAL_MEM_FENCE);
}

// Mean softmax cross-entropy of the batch, added to loss_accum[0] (so several steps can be
// summed on the device and read once), and its gradient with respect to the logits:
// dlogits[r, c] = (softmax(z_r)[c] - [c == label_r]) / rows.
__kernel void train_softmax_xent(__global const float* logits,
                                 __global const int* labels,
                                 const int rows, const int classes,
                                 __global float* dlogits,
                                 __global float* loss_accum,
                                 __local float* scratch) {
    const int lid = get_local_id(0);
    const float inv_rows = 1.0f / (float) rows;
    float acc = 0.0f;
    for (int r = lid; r < rows; r += get_local_size(0)) {
        __global const float* z = logits + r * classes;
        float m = z[0];
        for (int c = 1; c < classes; c++) m = fmax(m, z[c]);
        float s = 0.0f;
        for (int c = 0; c < classes; c++) s += exp(z[c] - m);
        const int t = labels[r];
        acc += (m + log(s)) - z[t];
        const float inv_s = 1.0f / s;
        for (int c = 0; c < classes; c++) {
            const float p = exp(z[c] - m) * inv_s;
            dlogits[r * classes + c] = (p - (c == t ? 1.0f : 0.0f)) * inv_rows;
        }
    }
    scratch[lid] = acc;
    train_tree_sum(scratch);
    if (lid == 0) loss_accum[0] += scratch[0] * inv_rows;
}

// Predicted class of each row: the index of its largest logit (the first one on ties).
static int train_argmax_row(__global const float* z, const int classes) {
    int best = 0;
    for (int c = 1; c < classes; c++) {
        if (z[c] > z[best]) best = c;
    }
    return best;
}

// correct_accum[0] += number of rows whose predicted class equals the label.
__kernel void train_count_correct(__global const float* logits,
                                  __global const int* labels,
                                  const int rows, const int classes,
                                  __global float* correct_accum,
                                  __local float* scratch) {
    const int lid = get_local_id(0);
    float count = 0.0f;
    for (int r = lid; r < rows; r += get_local_size(0)) {
        if (train_argmax_row(logits + r * classes, classes) == labels[r]) count += 1.0f;
    }
    scratch[lid] = count;
    train_tree_sum(scratch);
    if (lid == 0) correct_accum[0] += scratch[0];
}

// predicted[r] = argmax of row r. Range (rows).
__kernel void train_argmax(__global const float* logits,
                           const int rows, const int classes,
                           __global int* predicted) {
    const int r = get_global_id(0);
    if (r >= rows) return;
    predicted[r] = train_argmax_row(logits + r * classes, classes);
}
