package dev.clnorm.jmh;

import dev.clnorm.BatchNorm;
import dev.clnorm.Devices;
import dev.clnorm.Layout;
import dev.clnorm.Tensor;
import dev.clnorm.backend.Backend;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.util.concurrent.TimeUnit;

/**
 * Host-side cost of an OpenCL training step on a tiny (32,64) tensor, where the device work is
 * negligible: argument setting, enqueueing and the final wait (steps are not chained without a
 * wait here, which would let the queue grow without bound). Uses the first OpenCL device
 * (CLNORM_DEVICE / -Dclnorm.device pick another).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
public class OpenClStepOverheadBench {
    private Backend backend;
    private BatchNorm bn;
    private Tensor x;
    private Tensor y;
    private Tensor dy;
    private Tensor dx;

    @Setup(Level.Trial)
    public void setUp() {
        String selector = Devices.configuredSelector();
        backend = Devices.open("auto".equals(selector) ? "opencl" : selector);
        int[] shape = {32, 64};
        float[] data = new float[32 * 64];
        for (int i = 0; i < data.length; i++) {
            data[i] = (i * 7919 % 1000) / 1000f;
        }
        bn = BatchNorm.builder(64).backend(backend).build();
        x = Tensor.upload(backend, data, shape);
        dy = Tensor.upload(backend, data, shape);
        y = Tensor.zeros(backend, Layout.CHANNELS_FIRST, shape);
        dx = Tensor.zeros(backend, Layout.CHANNELS_FIRST, shape);
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

    /** Enqueue and wait: a step's latency. */
    @Benchmark
    public void trainingStepAndFinish() {
        bn.forwardTraining(x, y);
        bn.backward(x, dy, dx);
        backend.finish();
    }
}
