package dev.clnorm.jmh;

import dev.clnorm.BatchNorm;
import dev.clnorm.Layout;
import dev.clnorm.Tensor;
import dev.clnorm.backend.java.JavaBackend;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

/** The Java backend's batch-norm passes on a few shapes (NCHW long rows, channels-last, MLP). */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = "-Xmx4g")
public class JavaBackendBench {

    @Param({"32x256x56x56", "32x2048x7x7", "4096x1024", "20x6x65536"})
    public String shape;

    private JavaBackend backend;
    private BatchNorm bn;
    private Tensor x;
    private Tensor y;
    private Tensor dy;
    private Tensor dx;

    @Setup(Level.Trial)
    public void setUp() {
        String[] parts = shape.split("x");
        int[] dims = new int[parts.length];
        int n = 1;
        for (int i = 0; i < parts.length; i++) {
            dims[i] = Integer.parseInt(parts[i]);
            n *= dims[i];
        }
        SplittableRandom r = new SplittableRandom(1);
        float[] data = new float[n];
        float[] grad = new float[n];
        for (int i = 0; i < n; i++) {
            data[i] = (float) r.nextDouble(-1, 3);
            grad[i] = (float) r.nextDouble(-1, 1);
        }
        backend = new JavaBackend();
        bn = BatchNorm.builder(dims[1]).backend(backend).build();
        x = Tensor.upload(backend, data, dims);
        dy = Tensor.upload(backend, grad, dims);
        y = Tensor.zeros(backend, Layout.CHANNELS_FIRST, dims);
        dx = Tensor.zeros(backend, Layout.CHANNELS_FIRST, dims);
        bn.forwardTraining(x, y);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        x.close();
        y.close();
        dy.close();
        dx.close();
        bn.close();
        backend.close();
    }

    @Benchmark
    public void trainingForward() {
        bn.forwardTraining(x, y);
    }

    @Benchmark
    public void inference() {
        bn.forwardInference(x, y);
    }

    @Benchmark
    public void backward() {
        bn.backward(x, dy, dx);
    }
}
