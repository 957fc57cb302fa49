// An empty kernel: the bench launches it (one work-item) and waits for it to measure the bare cost
// of one launch on a device (enqueue, scheduling, completion, clFinish), the floor under the
// per-step time of tiny shapes. Not part of the batch-norm program.
__kernel void bench_empty(void) {
}
