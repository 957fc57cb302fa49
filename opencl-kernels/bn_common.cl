// Shared helpers for the batch-norm kernels. The host prepends this file to every kernel file it
// builds (the way CLBlast assembles its sources), so each helper exists in exactly one place.
//
// Geometry: every layout is viewed as (outer, channels, inner), row-major. NCHW-family tensors
// have outer = N and inner = prod(spatial); channels-last tensors have outer = N*prod(spatial)
// and inner = 1. Element (o, c, i) lives at ((o * channels) + c) * inner + i.
//
// Two traversals, chosen by the host per shape and device:
//  - ROWS: a row (o, c) is `inner` contiguous values of one channel. Work-group (g, c) walks
//    `units` of channel c: unit u is segment u % segs of row o = u / segs. Work-items stride over
//    a segment in vectors of VEC values, so on GPUs neighbours load neighbouring vectors and on
//    CPUs (work-group size 1) one work-item streams a contiguous range.
//  - COLS: the tensor is an (outer) x (channels * inner) matrix; a work-item owns CW consecutive
//    columns and walks rows. Used when rows are too short to keep a work-group busy.
//  - FLAT (elementwise passes only, CPU devices, inner == 1): a work-item streams one contiguous
//    chunk of the flat tensor; element e is in channel e % channels.
//
// Compile-time options (-D): VEC (4 or 8) the vector width of the ROWS kernels; CW (1, 4 or 8)
// the columns per work-item of the COLS kernels; STORAGE the tensor type (below).

#ifndef CLNORM_COMMON_CL
#define CLNORM_COMMON_CL

#ifndef VEC
#define VEC 4
#endif
#ifndef CW
#define CW 1
#endif

#ifndef FLAT_RB
// Rows per step of the FLAT (N, C) kernels: parameters and partial sums per FLAT_RB rows.
#define FLAT_RB 4
#endif

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)

// Tensors (x, y, dy, dx, residual) are stored as float32 (STORAGE 0), float16 (1), bfloat16 (2) or
// float64 (3). `real` is the arithmetic type and the type of parameters and statistics: float for
// the first three, double for float64 (which needs cl_khr_fp64; the host checks the device first).
#ifndef STORAGE
#define STORAGE 0
#endif
#if STORAGE == 3
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
typedef double real;
#define REALN(n) CAT(double, n)
#else
typedef float real;
#define REALN(n) CAT(float, n)
#endif
typedef REALN(2) real2;

// realv: VEC reals; vsum adds the lanes in a fixed order (reproducible).
typedef REALN(VEC) realv;
#if VEC == 4
#define vsum(v) (((v).s0 + (v).s1) + ((v).s2 + (v).s3))
#elif VEC == 8
#define vsum(v) ((((v).s0 + (v).s1) + ((v).s2 + (v).s3)) + (((v).s4 + (v).s5) + ((v).s6 + (v).s7)))
#else
#error "VEC must be 4 or 8"
#endif
#define vloadv CAT(vload, VEC)
#define vstorev CAT(vstore, VEC)
// VEC per-channel values p[j, j + VEC) where j is a multiple of VEC and p a buffer's start or a
// multiple of VEC values into it (OpenCL aligns buffers to far more than a vector), as a plain
// vector access. POCL turns vloadv of such values, held in registers across an inner loop, into
// pairs of 2-float pieces and shuffles (eight loads where one would do in bn_grad_flat's loop);
// the aligned access keeps whole vectors (4096x1024 on POCL, interleaved A/B: backward 0.76-0.80x,
// inference 0.79-0.82x, training forward 0.84-0.90x). PARAMV reads, SLOTV is an lvalue (a
// work-item's slice of partials).
#define PARAMV(p, j) (*(__global const realv*) ((p) + (j)))
#define SLOTV(p, j) (*(__global realv*) ((p) + (j)))

// realc: CW reals (the columns one COLS work-item owns), with matching int and load/store.
#if CW == 1
typedef real realc;
typedef int intc;
#define vloadc(i, p) ((p)[i])
#define vstorec(v, i, p) ((p)[i] = (v))
#define COL_LANES ((intc)(0))
#else
typedef REALN(CW) realc;
typedef CAT(int, CW) intc;
#define vloadc CAT(vload, CW)
#define vstorec CAT(vstore, CW)
#if CW == 4
#define COL_LANES ((int4)(0, 1, 2, 3))
#elif CW == 8
#define COL_LANES ((int8)(0, 1, 2, 3, 4, 5, 6, 7))
#else
#error "CW must be 1, 4 or 8"
#endif
#endif

// ---------------------------------------------------------------- storage types

// 16-bit tensors are computed in float32: float16 uses the core vload_half/vstore_half (no
// cl_khr_fp16 needed; stores round to nearest even). bfloat16 is the top half of a float32: loads
// shift, stores round to nearest even and keep NaN a NaN. float32 and float64 load and store as is.
#if STORAGE == 0 || STORAGE == 3
typedef real store_t;
#define TLOAD(p) (*(p))
#define TSTORE(v, p) (*(p) = (v))
#define TLOADV(p) vloadv(0, (p))
#define TSTOREV(v, p) vstorev((v), 0, (p))
#define TLOADC(p) vloadc(0, (p))
#define TSTOREC(v, p) vstorec((v), 0, (p))
#elif STORAGE == 1
typedef half store_t;
#define TLOAD(p) vload_half(0, (p))
#define TSTORE(v, p) vstore_half((v), 0, (p))
#define TLOADV(p) CAT(vload_half, VEC)(0, (p))
#define TSTOREV(v, p) CAT(vstore_half, VEC)((v), 0, (p))
#if CW == 1
#define TLOADC(p) vload_half(0, (p))
#define TSTOREC(v, p) vstore_half((v), 0, (p))
#else
#define TLOADC(p) CAT(vload_half, CW)(0, (p))
#define TSTOREC(v, p) CAT(vstore_half, CW)((v), 0, (p))
#endif
#elif STORAGE == 2
typedef ushort store_t;
inline float bf16_load(__global const ushort* p) {
    return as_float(((uint) *p) << 16);
}
inline void bf16_store(float v, __global ushort* p) {
    const uint u = as_uint(v);
    *p = (ushort) (isnan(v) ? ((u >> 16) | 0x40u) : ((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16));
}
#define BF16_LOAD_N(n, p) CAT(as_float, n)(CAT(convert_uint, n)(CAT(vload, n)(0, (p))) << 16)
#define DEFINE_BF16_STORE_N(n)                                                                  \
    inline void CAT(bf16_store, n)(CAT(float, n) v, __global ushort* p) {                      \
        const CAT(uint, n) u = CAT(as_uint, n)(v);                                              \
        const CAT(uint, n) rounded = (u + (CAT(uint, n)) (0x7FFFu) + ((u >> 16) & (CAT(uint, n)) (1u))) >> 16; \
        const CAT(uint, n) bits = select(rounded, (u >> 16) | (CAT(uint, n)) (0x40u), isnan(v)); \
        CAT(vstore, n)(CAT(convert_ushort, n)(bits), 0, p);                                      \
    }
DEFINE_BF16_STORE_N(4)
DEFINE_BF16_STORE_N(8)
#define TLOAD(p) bf16_load(p)
#define TSTORE(v, p) bf16_store((v), (p))
#define TLOADV(p) BF16_LOAD_N(VEC, p)
#define TSTOREV(v, p) CAT(bf16_store, VEC)((v), (p))
#if CW == 1
#define TLOADC(p) bf16_load(p)
#define TSTOREC(v, p) bf16_store((v), (p))
#else
#define TLOADC(p) BF16_LOAD_N(CW, p)
#define TSTOREC(v, p) CAT(bf16_store, CW)((v), (p))
#endif
#else
#error "STORAGE must be 0 (float32), 1 (float16), 2 (bfloat16) or 3 (float64)"
#endif

// ---------------------------------------------------------------- moments (statistics)

// Running (count, mean, var) summary; var = M2 / n, the biased variance. Keeping var rather than
// M2 = sum of squared deviations bounds every stored quantity by the data's spread instead of
// letting it grow with n: M2 of 2^24 values with a spread of 1e16 overflows float32, var does not.
typedef struct {
    real n;
    real mean;
    real var;
} moments;

inline moments moments_empty(void) {
    moments r = {0.0f, 0.0f, 0.0f};
    return r;
}

// Chan et al.'s merge of two summaries, divided through by n = na + nb:
//   var = wa*var_a + wb*var_b + (delta*wa)*(delta*wb),  wa = na/n, wb = nb/n.
// Every term is non-negative. Rounding depends on the order of merges, so callers always merge
// in a fixed order: results are bit-reproducible run to run (no atomics on data).
inline moments moments_merge(moments a, moments b) {
    if (b.n == 0.0f) return a;
    if (a.n == 0.0f) return b;
    real n = a.n + b.n;
    real wa = a.n / n;
    real wb = b.n / n;
    real delta = b.mean - a.mean;
    moments r;
    r.n = n;
    r.mean = a.mean + delta * wb;
    r.var = wa * a.var + wb * b.var + (delta * wa) * (delta * wb);
    return r;
}

// Welford's update with one value, in var form.
inline moments moments_push(moments a, real v) {
    a.n += 1.0f;
    real delta = v - a.mean;
    a.mean += delta / a.n;
    a.var += delta * ((v - a.mean) / a.n) - a.var / a.n;
    return a;
}

// A whole vector at once: its own exact two-pass moments (no division: VEC is a power of two),
// then one Chan merge. One division per VEC values instead of one per value.
inline moments moments_push_vec(moments a, realv v) {
    const real inv = 1.0f / VEC;
    real m = vsum(v) * inv;
    realv d = v - m;
    moments b = {(real) VEC, m, vsum(d * d) * inv};
    return moments_merge(a, b);
}

// Clamp a variance at 0 after merging, keeping NaN (fmax(NaN, 0) would be 0 and hide a
// non-finite input behind a finite statistic).
inline real clamp_nonnegative(real v) {
    return v < 0.0f ? 0.0f : v;
}

// Statistics accumulate (x - shift) * STATS_SCALE. float32 squares only span deviations of about
// 1e-19 .. 1.8e19; scaling by 2^-16 moves that window to about 7e-15 .. 1.2e24, so |x| ~ 1e19
// keeps a finite variance while only spreads below 7e-15 (variances far under any eps) lose
// precision. Powers of two scale exactly. The shift (the channel's first value) keeps channels
// with |mean| >> std precise: x - shift is exact for nearby floats.
#define STATS_SCALE (1.0f / 65536.0f)
#define STATS_UNSCALE 65536.0f

// Moments of BV vectors p[0], p[step], ..., p[(BV-1)*step] (after shift and scale) in two passes
// over the block, the second from cache: sums of BV*VEC values are accurate and need no division,
// so the running accumulator takes one Chan merge per block. Keeping that merge count low is
// what keeps a long sequential stream (one CPU work-item summarising 2^20 values) accurate:
// the rounding of repeated merges grows with their number.
#ifndef BV
#define BV 16  // a multiple of 4 (see the accumulators below)
#endif
// Each pass adds into four independent accumulators (vector b goes to b % 4), summed in a fixed
// order at the end: with one accumulator every add waits for the one before (4 cycles of FMA
// latency on current x86 cores), which held a CPU work-item to about 4 bytes per cycle over the
// two passes, under one core's share of memory bandwidth.
inline moments block_moments(__global const store_t* p, int step, real shift) {
    const real inv = 1.0f / (BV * VEC);
    realv s0 = (realv) 0.0f, s1 = (realv) 0.0f, s2 = (realv) 0.0f, s3 = (realv) 0.0f;
    for (int b = 0; b < BV; b += 4) {
        s0 += (TLOADV(p + b * step) - shift) * STATS_SCALE;
        s1 += (TLOADV(p + (b + 1) * step) - shift) * STATS_SCALE;
        s2 += (TLOADV(p + (b + 2) * step) - shift) * STATS_SCALE;
        s3 += (TLOADV(p + (b + 3) * step) - shift) * STATS_SCALE;
    }
    const real m = vsum((s0 + s1) + (s2 + s3)) * inv;
    realv q0 = (realv) 0.0f, q1 = (realv) 0.0f, q2 = (realv) 0.0f, q3 = (realv) 0.0f;
    for (int b = 0; b < BV; b += 4) {
        const realv d0 = (TLOADV(p + b * step) - shift) * STATS_SCALE - m;
        const realv d1 = (TLOADV(p + (b + 1) * step) - shift) * STATS_SCALE - m;
        const realv d2 = (TLOADV(p + (b + 2) * step) - shift) * STATS_SCALE - m;
        const realv d3 = (TLOADV(p + (b + 3) * step) - shift) * STATS_SCALE - m;
        q0 += d0 * d0;
        q1 += d1 * d1;
        q2 += d2 * d2;
        q3 += d3 * d3;
    }
    moments r = {(real) (BV * VEC), m, vsum((q0 + q1) + (q2 + q3)) * inv};
    return r;
}

// ---------------------------------------------------------------- last-work-group handshake

// Reductions end with a per-channel merge of the work-groups' partials. Rather than a separate
// launch, the last work-group to finish does it: each group publishes its partials, fences, and
// takes a ticket; the group holding the last ticket merges (in index order, so the result does
// not depend on which group came last) and resets the counter for the next launch. The counter
// is an integer atomic, never a float one.
inline int take_ticket_is_last(volatile __global int* counter, int groups, __local int* l_flag) {
    barrier(CLK_LOCAL_MEM_FENCE | CLK_GLOBAL_MEM_FENCE);
    if (get_local_id(0) == 0 && get_local_id(1) == 0) {
        mem_fence(CLK_GLOBAL_MEM_FENCE);
        int ticket = atomic_inc(counter);
        *l_flag = (ticket == groups - 1);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    int last = *l_flag;
    if (last) {
        mem_fence(CLK_GLOBAL_MEM_FENCE);
    }
    return last;
}

// Rows [*r0, *r1) of the (outer) x (channels) matrix that FLAT work-item g owns.
inline void flat_rows(int g, int rows_per_item, int outer, int* r0, int* r1) {
    *r0 = min(g * rows_per_item, outer);
    *r1 = min(*r0 + rows_per_item, outer);
}

inline int flat_local_id(void) {
    return get_local_id(1) * get_local_size(0) + get_local_id(0);
}

inline int flat_local_size(void) {
    return get_local_size(0) * get_local_size(1);
}

// ---------------------------------------------------------------- fused activation

// A bit set chosen per call: ACT_RESIDUAL adds a residual tensor to the normalised value, then
// ACT_RELU clamps at 0 (oneDNN's fuse_norm_relu / fuse_norm_add_relu, cuDNN's BN + activation).
// ReLU keeps NaN, as torch.relu does: select keeps v unless v < 0, and NaN < 0 is false.
#define ACT_RELU 1
#define ACT_RESIDUAL 2
// The inner ?: takes a vector condition lane by lane (OpenCL C 6.3), unlike select() it needs no
// integer type matched to T by hand (int for float, long for double scalars).
#define EPILOGUE(T, v, act, residual_value) \
    (((act) & ACT_RELU) ? ((((v) + (residual_value)) < 0.0f) ? (T) 0.0f : (v) + (residual_value)) \
                        : (v) + (residual_value))
// Backward through ReLU: the mask is recomputed from the forward output y (y > 0 exactly where the
// pre-activation was > 0), so no mask is stored; without ReLU dy passes through unchanged.
#define RELU_MASK(T, d, act, y) (((act) & ACT_RELU) ? (((y) > 0.0f) ? (d) : (T) 0.0f) : (d))

// ---------------------------------------------------------------- partial layouts

// How a channel's partials are laid out: partial (a, b) of channel c is at
//   c * cstride + a * astride + b,   0 <= a < acount, 0 <= b < bcount.
// ROWS kernels write one partial per work-group of the channel (cstride = acount, astride = 1,
// bcount = 1); COLS kernels write one per (row group, column) with the row group outermost
// (cstride = inner, astride = channels*inner, bcount = inner).
typedef struct {
    int cstride;
    int acount;
    int astride;
    int bcount;
} partial_layout;

// Per-lane channel parameters of a COLS work-item: lanes are channels when CW > 1 (inner == 1).
#if CW == 1
#define LOAD_COLS(arr, j, inner) ((arr)[(j) / (inner)])
#else
#define LOAD_COLS(arr, j, inner) vloadc(0, (arr) + (j))
#endif

#endif
