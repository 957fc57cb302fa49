package dev.clnorm.bench;

import dev.clnorm.BatchNorm;
import dev.clnorm.Geometry;
import dev.clnorm.Layout;
import dev.clnorm.Tensor;
import dev.clnorm.backend.Backend;
import dev.clnorm.backend.opencl.ClKernel;
import dev.clnorm.backend.opencl.ClProgram;
import dev.clnorm.backend.opencl.KernelSources;
import dev.clnorm.backend.opencl.OpenClBackend;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ForkJoinPool;
import java.util.function.Consumer;

/**
 * Times batch-norm operations on one device, next to that device's copy bandwidth measured on the
 * same element count in the same run. Every timed call is followed by a wait for completion, so
 * wall time covers enqueue, execution and synchronisation; device time comes from OpenCL
 * profiling events in a separate pass so that event bookkeeping never inflates wall time.
 */
public final class BenchRunner {
    /** Leave headroom on a device for partial buffers and the runtime itself. */
    private static final double MEMORY_HEADROOM = 0.8;

    private final int warmup;
    private final int repeats;
    private final double warmupSeconds;
    private final java.util.function.LongSupplier jit;

    public BenchRunner(int warmup, int repeats) {
        this(warmup, repeats, 0);
    }

    /**
     * @param warmup        untimed calls before timing
     * @param repeats       timed calls
     * @param warmupSeconds keep making untimed calls (after {@code warmup} of them) until this much time
     *                      went into them: the JVM compiles the Java backend's loops only after they have
     *                      run a while, so a fixed small count can time the first shape of a run
     *                      interpreted
     */
    public BenchRunner(int warmup, int repeats, double warmupSeconds) {
        this(warmup, repeats, warmupSeconds, JIT_CLOCK);
    }

    /** As above, with the clock of JIT compilation time in ms (null: none) to watch during warm-up. */
    BenchRunner(int warmup, int repeats, double warmupSeconds, java.util.function.LongSupplier jit) {
        if (warmup < 0 || repeats < 1 || !(warmupSeconds >= 0) || Double.isInfinite(warmupSeconds)) {
            throw new IllegalArgumentException("warm-up must be >= 0 calls and >= 0 seconds and repeats >= 1, got "
                    + warmup + ", " + warmupSeconds + " and " + repeats);
        }
        this.warmup = warmup;
        this.repeats = repeats;
        this.warmupSeconds = warmupSeconds;
        this.jit = jit;
    }

    /** Why a shape cannot run on a device (memory), or null when it fits. */
    public static String wontFit(Backend backend, int[] shape) {
        long elements = 1;
        for (int d : shape) {
            elements *= d;
        }
        long tensorBytes = elements * 4;
        long budget = backend.info().globalMemBytes();
        if (backend.info().kind() == dev.clnorm.backend.DeviceInfo.Kind.JAVA) {
            Runtime rt = Runtime.getRuntime();
            budget = rt.maxMemory() - (rt.totalMemory() - rt.freeMemory());
        }
        if (tensorBytes > backend.info().maxAllocBytes()) {
            return "one tensor needs " + tensorBytes + " bytes, the device allows " + backend.info().maxAllocBytes()
                    + " per allocation";
        }
        if (4 * tensorBytes > budget * MEMORY_HEADROOM) {
            return "x, y, dy and dx need " + 4 * tensorBytes + " bytes, the device has about " + budget;
        }
        return null;
    }

    /** Measures the copy yardstick and then each requested op on one shape. */
    public List<BenchResult> run(Backend backend, int[] shape, Layout layout, EnumSet<Op> ops,
                                 Consumer<String> progress) {
        Geometry g = Geometry.of(shape, layout);
        int n = (int) g.elements();
        List<BenchResult> out = new ArrayList<>();
        SplittableRandom r = new SplittableRandom(12345);
        float[] xh = new float[n];
        float[] dyh = new float[n];
        for (int i = 0; i < n; i++) {
            xh[i] = (float) (r.nextDouble() * 4 - 1);
            dyh[i] = (float) (r.nextDouble() * 2 - 1);
        }
        try (BatchNorm bn = BatchNorm.builder(g.channels()).backend(backend).build();
             Tensor x = Tensor.upload(backend, xh, layout, shape);
             Tensor dy = Tensor.upload(backend, dyh, layout, shape);
             Tensor y = Tensor.zeros(backend, layout, shape);
             Tensor dx = Tensor.zeros(backend, layout, shape)) {
            bn.forwardTraining(x, y);  // saved statistics for backward
            progress.accept("copy");
            Runnable copyCall = () -> backend.copy(x.buffer(), y.buffer(), n);
            out.add(measure(backend, shape, layout, Op.COPY, n, copyCall, null));
            for (Op op : ops) {
                if (op == Op.COPY) {
                    continue;
                }
                progress.accept(op.id());
                Runnable call = switch (op) {
                    case TRAIN_FORWARD -> () -> bn.forwardTraining(x, y);
                    case INFERENCE -> () -> bn.forwardInference(x, y);
                    case BACKWARD -> () -> bn.backward(x, dy, dx);
                    case TRAIN_STEP -> () -> {
                        bn.forwardTraining(x, y);
                        bn.backward(x, dy, dx);
                    };
                    case FORWARD_FLOOR -> () -> backend.forwardFloor(x.buffer(), y.buffer(), n);
                    case BACKWARD_FLOOR -> () -> backend.backwardFloor(x.buffer(), dy.buffer(), dx.buffer(), n);
                    case COPY -> throw new AssertionError();
                };
                out.add(measure(backend, shape, layout, op, n, call, copyCall));
            }
        }
        return out;
    }

    /**
     * Times {@code call}; for an operation other than the copy, each timed call follows a timed copy
     * ({@code copyCall}) and the operation's {@code % copy} is against the median of those copies. On
     * a shared machine the memory bandwidth left to this process drifts within seconds (the Java copy
     * of 4096x1024 took 1.45 ms in one run and up to 3.58 ms in others within half an hour), so a copy
     * timed once per shape, before the operations, made their ratios to it move by half; copies
     * interleaved call by call see the same conditions as the operation.
     */
    private BenchResult measure(Backend backend, int[] shape, Layout layout, Op op, long elements, Runnable call,
                                Runnable copyCall) {
        warmUp(backend, call);
        double[] wall = new double[repeats];
        double[] copyWall = new double[repeats];
        long launches = 0;
        for (int i = 0; i < repeats; i++) {
            if (copyCall != null) {
                long c0 = System.nanoTime();
                copyCall.run();
                backend.finish();
                copyWall[i] = (System.nanoTime() - c0) / 1e6;
            }
            long launchesBefore = backend.kernelLaunches();
            long t0 = System.nanoTime();
            call.run();
            backend.finish();
            wall[i] = (System.nanoTime() - t0) / 1e6;
            launches += backend.kernelLaunches() - launchesBefore;
        }
        double launchesPerCall = launches / (double) repeats;
        Samples kernel = null;
        if (backend instanceof OpenClBackend cl) {
            double[] dev = new double[repeats];
            for (int i = 0; i < repeats; i++) {
                cl.startProfiling();
                call.run();
                dev[i] = cl.stopProfiling() / 1e6;
            }
            kernel = Samples.of(dev);
        }
        Samples w = Samples.of(wall);
        double copyMs = copyCall == null ? w.median() : Samples.of(copyWall).median();
        double copy = Op.COPY.bytesPerElement() * (double) elements / (copyMs * 1e6);
        return new BenchResult(backend.info().id(), backend.info().name(), shape.clone(), layout.name(), op, elements,
                w, kernel, copy, launchesPerCall);
    }

    /**
     * Untimed calls until the JVM has finished compiling what they run: at least {@code warmup} calls
     * and {@code warmupSeconds}, then on until {@link #JIT_QUIET_SECONDS} (and at least
     * {@link #JIT_QUIET_CALLS} calls) pass without the JIT completing a compilation, or until
     * {@link #WARMUP_CAP_FACTOR} times the requested time. A fixed time is not enough: the Java
     * backend's (N, C) backward ran its first second half-compiled, at twice its steady time, which
     * a 0.5 s warm-up then timed.
     */
    private void warmUp(Backend backend, Runnable call) {
        long start = System.nanoTime();
        long minEnd = start + (long) (warmupSeconds * 1e9);
        long capEnd = start + (long) (warmupSeconds * WARMUP_CAP_FACTOR * 1e9);
        boolean watchJit = warmupSeconds > 0 && jit != null;
        long lastJit = watchJit ? jit.getAsLong() : 0;
        long quietSince = start;
        int quietCalls = 0;
        for (int w = 0; ; w++) {
            if (w >= warmup && System.nanoTime() >= minEnd
                    && (!watchJit || quietCalls >= JIT_QUIET_CALLS && System.nanoTime() - quietSince >= JIT_QUIET_NANOS
                    || System.nanoTime() >= capEnd)) {
                return;
            }
            call.run();
            backend.finish();
            quietCalls++;
            if (watchJit) {
                long now = jit.getAsLong();
                if (now != lastJit) {
                    lastJit = now;
                    quietSince = System.nanoTime();
                    quietCalls = 0;
                }
            }
        }
    }

    /** The JIT counts as done after this long without finishing a compilation. */
    static final double JIT_QUIET_SECONDS = 0.5;
    private static final long JIT_QUIET_NANOS = (long) (JIT_QUIET_SECONDS * 1e9);
    /** ... and at least this many calls without one. */
    static final int JIT_QUIET_CALLS = 5;
    /** Warm-up never runs longer than this many times the requested seconds. */
    static final double WARMUP_CAP_FACTOR = 20;
    /** Milliseconds the JIT has spent compiling so far, or null where this JVM does not say. */
    private static final java.util.function.LongSupplier JIT_CLOCK = jitClock();

    private static java.util.function.LongSupplier jitClock() {
        try {
            java.lang.management.CompilationMXBean bean = java.lang.management.ManagementFactory.getCompilationMXBean();
            if (bean != null && bean.isCompilationTimeMonitoringSupported()) {
                return bean::getTotalCompilationTime;
            }
        } catch (LinkageError e) {
            // a runtime image without java.management: fall back to the fixed warm-up time
        }
        return null;
    }

    /** Shapes of at most this many elements are "tiny": launch overhead, not memory traffic, bounds them. */
    public static final long TINY_ELEMENTS = 1 << 14;

    public static boolean isTiny(int[] shape) {
        long n = 1;
        for (int d : shape) {
            n *= d;
        }
        return n <= TINY_ELEMENTS;
    }

    /**
     * The bare cost of one launch on a device, the floor under a tiny shape's per-step time.
     *
     * @param what   what was timed, for the report
     * @param wall   enqueue (or submit) to completion per launch, in ms
     * @param kernel device time of the empty kernel from profiling events (OpenCL), else null
     */
    public record LaunchLatency(String deviceId, String what, Samples wall, Samples kernel) {
    }

    /**
     * Times an empty launch on the device, in this run: on OpenCL the empty kernel of
     * opencl-kernels/bench_empty.cl with one work-item, enqueued and waited for (clFinish); on the
     * Java backend an empty task submitted to a ForkJoinPool with as many threads as the backend's and
     * joined, which is how the Java backend runs each of its passes (its own pool is not public).
     */
    public LaunchLatency emptyLaunch(Backend backend) {
        double[] wall = new double[repeats];
        if (backend instanceof OpenClBackend cl) {
            ClProgram program = cl.program(KernelSources.load("bench_empty.cl"), "-cl-std=CL1.2");
            try (ClKernel k = program.createKernel("bench_empty")) {
                long[] one = {1};
                for (int w = 0; w < warmup + 1; w++) {
                    k.launch(one, one);
                    cl.finish();
                }
                for (int i = 0; i < repeats; i++) {
                    long t0 = System.nanoTime();
                    k.launch(one, one);
                    cl.finish();
                    wall[i] = (System.nanoTime() - t0) / 1e6;
                }
                double[] dev = new double[repeats];
                for (int i = 0; i < repeats; i++) {
                    cl.startProfiling();
                    k.launch(one, one);
                    dev[i] = cl.stopProfiling() / 1e6;
                }
                return new LaunchLatency(backend.info().id(), "empty OpenCL kernel, 1 work-item, enqueue + clFinish",
                        Samples.of(wall), Samples.of(dev));
            }
        }
        ForkJoinPool pool = new ForkJoinPool(Math.max(1, backend.info().computeUnits()));
        try {
            Runnable empty = () -> {
            };
            for (int w = 0; w < warmup + 1; w++) {
                pool.submit(empty).join();
            }
            for (int i = 0; i < repeats; i++) {
                long t0 = System.nanoTime();
                pool.submit(empty).join();
                wall[i] = (System.nanoTime() - t0) / 1e6;
            }
        } finally {
            pool.shutdown();
        }
        return new LaunchLatency(backend.info().id(), "empty task submitted to a " + backend.info().computeUnits()
                + "-thread ForkJoinPool and joined", Samples.of(wall), null);
    }

    /** "32x64x112x112" for tables and files. */
    public static String shapeText(int[] shape) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < shape.length; i++) {
            sb.append(i == 0 ? "" : "x").append(shape[i]);
        }
        return sb.toString();
    }

    public static int[] parseShape(String s) {
        String[] parts = s.trim().split("[x,]");
        if (parts.length < 2) {
            throw new IllegalArgumentException("shape '" + s + "' needs at least two dimensions, e.g. 32x64x56x56");
        }
        int[] shape = new int[parts.length];
        for (int i = 0; i < parts.length; i++) {
            try {
                shape[i] = Integer.parseInt(parts[i].trim());
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("shape '" + s + "' has a non-numeric dimension '" + parts[i] + "'");
            }
            if (shape[i] <= 0) {
                throw new IllegalArgumentException("shape '" + s + "' has a non-positive dimension " + shape[i]);
            }
        }
        return shape;
    }

    /** The default shape set of the bench: ResNet-50 at N=32, a long-axis small-C case, MLPs, a tiny one. */
    public static List<int[]> defaultShapes() {
        return Arrays.asList(
                new int[]{32, 64, 112, 112}, new int[]{32, 256, 56, 56}, new int[]{32, 512, 28, 28},
                new int[]{32, 1024, 14, 14}, new int[]{32, 2048, 7, 7}, new int[]{20, 6, 65536},
                new int[]{4096, 1024}, new int[]{128, 1024}, new int[]{32, 64});
    }
}
