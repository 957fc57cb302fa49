package dev.clnorm;

import dev.clnorm.backend.Backend;
import dev.clnorm.backend.DeviceBuffer;
import dev.clnorm.backend.ElementType;
import dev.clnorm.backend.java.JavaBackend;
import dev.clnorm.backend.opencl.ClDevice;
import dev.clnorm.backend.opencl.OpenClBackend;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.LinkedHashMap;
import java.util.Map;

import static dev.clnorm.Close.assertClose;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Resources: create/use/close cycles return the backends' live buffer and kernel counts to where
 * they started, close is idempotent, and every use after close is an {@link IllegalStateException}
 * (never a native crash) for layers, tensors, buffers and backends. Backends are closed only when
 * this test opened them itself; the shared ones stay open.
 */
class LifecycleTest {
    private static final int CYCLES = 10_000;

    /** A second backend on the same device as {@code shared}, owned (and closed) by the caller. */
    static Backend openAnother(Backend shared) {
        if (shared instanceof OpenClBackend) {
            ClDevice device = Devices.openClDevices().stream()
                    .filter(d -> d.info().id().equals(shared.info().id())).findFirst().orElseThrow();
            return new OpenClBackend(device);
        }
        return new JavaBackend(2);
    }

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void tenThousandCreateForwardBackwardCloseCyclesLeaveNothingBehind(Backend backend) {
        // (3, 2): the smallest input with more than one value per channel, so the loop measures the
        // object lifecycle rather than arithmetic.
        int[] shape = {3, 2};
        Geometry g = Geometry.of(shape, Layout.CHANNELS_FIRST);
        float[] x = {1f, -2f, 3f, 5f, -1f, 4f};
        float[] dy = {0.5f, 1f, -1f, 2f, 0.25f, -0.5f};
        double[] xd = TestData.toDouble(x);
        ReferenceBatchNorm.Stats s = ReferenceBatchNorm.stats(xd, g);
        double[] yRef = ReferenceBatchNorm.normalize(xd, g, s.mean(), s.var(), new double[]{1, 1}, new double[2], 1e-5);
        double[] dxRef = ReferenceBatchNorm.backward(xd, TestData.toDouble(dy), g, new double[]{1, 1}, 1e-5).dx();

        backend.finish();
        long buffers = backend.liveBuffers();
        long kernels = backend.liveKernels();
        long launches = backend.kernelLaunches();
        for (int i = 0; i < CYCLES; i++) {
            try (BatchNorm bn = BatchNorm.builder(2).backend(backend).build();
                 Tensor xt = Tensor.upload(backend, x, shape);
                 Tensor dyt = Tensor.upload(backend, dy, shape);
                 Tensor y = bn.forwardTraining(xt);
                 Tensor dx = bn.backward(xt, dyt)) {
                if (i == 0 || i == CYCLES - 1) {
                    assertClose(yRef, y.download(), 2e-4, "y of cycle " + i + " on " + backend);
                    assertClose(dxRef, dx.download(), 2e-4, "dx of cycle " + i + " on " + backend);
                }
            }
            if (i % 1000 == 999) {
                assertEquals(buffers, backend.liveBuffers(), "live buffers after " + (i + 1) + " cycles on " + backend);
                assertEquals(kernels, backend.liveKernels(), "live kernels after " + (i + 1) + " cycles on " + backend);
            }
        }
        backend.finish();
        assertEquals(buffers, backend.liveBuffers(), "live buffers back to the start on " + backend);
        assertEquals(kernels, backend.liveKernels(), "live kernels back to the start on " + backend);
        assertTrue(backend.kernelLaunches() >= launches + 2L * CYCLES, "every cycle launched device work");
    }

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void failedCallsLeakNothing(Backend backend) {
        long buffers = backend.liveBuffers();
        long kernels = backend.liveKernels();
        int[] shape = {4, 3, 2};
        float[] bad = TestData.gaussian(24, 5);
        bad[7] = Float.NaN;  // channel 0 of sample 1
        for (int i = 0; i < 200; i++) {
            // A layer too large to allocate fails part-way through construction.
            long tooMany = backend.info().maxAllocBytes() / 4 + 1;
            if (tooMany <= Integer.MAX_VALUE) {
                assertThrows(IllegalArgumentException.class,
                        () -> BatchNorm.builder((int) tooMany).backend(backend).build());
            }
            try (BatchNorm strict = BatchNorm.builder(3).strictNonFinite(true).backend(backend).build();
                 Tensor x = Tensor.upload(backend, bad, shape);
                 Tensor wrong = Tensor.zeros(backend, Layout.CHANNELS_FIRST, 4, 3, 3)) {
                // The output allocated for a rejected step is released.
                assertThrows(ArithmeticException.class, () -> strict.forwardTraining(x));
                assertThrows(IllegalArgumentException.class, () -> strict.forwardTraining(x, wrong));
                assertThrows(IllegalStateException.class, () -> strict.backward(x, x));
                assertThrows(IllegalArgumentException.class, () -> strict.forwardTraining(new float[5], 4, 3, 2));
            }
            assertThrows(IllegalArgumentException.class, () -> Tensor.upload(backend, new float[3], 2, 2));
        }
        backend.finish();
        assertEquals(buffers, backend.liveBuffers(), "live buffers after failed calls on " + backend);
        assertEquals(kernels, backend.liveKernels(), "live kernels after failed calls on " + backend);
    }

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void closeTwiceIsHarmless(Backend shared) {
        long buffers = shared.liveBuffers();
        long kernels = shared.liveKernels();
        BatchNorm bn = BatchNorm.builder(3).backend(shared).build();
        Tensor t = Tensor.upload(shared, new float[]{1, 2, 3, 4, 5, 6}, 2, 3);
        DeviceBuffer b = shared.allocate(5, ElementType.INT32);
        for (int k = 0; k < 2; k++) {
            assertDoesNotThrow(bn::close);
            assertDoesNotThrow(t::close);
            assertDoesNotThrow(b::close);
        }
        assertTrue(bn.isClosed() && t.isClosed() && b.isClosed());
        assertEquals(buffers, shared.liveBuffers(), "each buffer released exactly once");
        assertEquals(kernels, shared.liveKernels(), "each kernel released exactly once");

        Backend own = openAnother(shared);
        BatchNorm onOwn = BatchNorm.builder(3).backend(own).build();
        Tensor tOwn = Tensor.upload(own, new float[]{1, 2, 3, 4, 5, 6}, 2, 3);
        own.close();
        own.close();
        assertTrue(own.isClosed());
        // Closing what outlived its backend is still harmless, twice, and releases it.
        for (int k = 0; k < 2; k++) {
            assertDoesNotThrow(onOwn::close);
            assertDoesNotThrow(tOwn::close);
        }
        assertEquals(0, own.liveBuffers());
        assertEquals(0, own.liveKernels());
    }

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void everyUseOfAClosedLayerIsAnIllegalStateException(Backend backend) {
        int[] shape = {2, 3, 2};
        float[] data = TestData.gaussian(12, 6);
        try (Tensor x = Tensor.upload(backend, data, shape);
             Tensor y = Tensor.zeros(backend, Layout.CHANNELS_FIRST, shape)) {
            BatchNorm bn = BatchNorm.builder(3).backend(backend).build();
            bn.forwardTraining(x, y);
            long launches = backend.kernelLaunches();
            bn.close();
            Map<String, Executable> calls = new LinkedHashMap<>();
            calls.put("forwardTraining(x)", () -> bn.forwardTraining(x));
            calls.put("forwardTraining(x, y)", () -> bn.forwardTraining(x, y));
            calls.put("forwardInference(x)", () -> bn.forwardInference(x));
            calls.put("forwardInference(x, y)", () -> bn.forwardInference(x, y));
            calls.put("backward(x, dy)", () -> bn.backward(x, x));
            calls.put("backward(x, dy, dx)", () -> bn.backward(x, x, y));
            calls.put("forwardTraining(float[])", () -> bn.forwardTraining(data, shape));
            calls.put("forwardInference(float[])", () -> bn.forwardInference(data, shape));
            calls.put("backward(float[])", () -> bn.backward(data, data, shape));
            calls.put("weight", bn::weight);
            calls.put("bias", bn::bias);
            calls.put("runningMean", bn::runningMean);
            calls.put("runningVar", bn::runningVar);
            calls.put("savedMean", bn::savedMean);
            calls.put("savedInvstd", bn::savedInvstd);
            calls.put("gradWeight", bn::gradWeight);
            calls.put("gradBias", bn::gradBias);
            calls.put("skippedUpdates", bn::skippedUpdates);
            calls.put("setWeight", () -> bn.setWeight(new float[3]));
            calls.put("setBias", () -> bn.setBias(new float[3]));
            calls.put("setRunningMean", () -> bn.setRunningMean(new float[3]));
            calls.put("setRunningVar", () -> bn.setRunningVar(new float[3]));
            calls.put("deviceState", bn::deviceState);
            calls.put("gradWeightBuffer", bn::gradWeightBuffer);
            calls.put("gradBiasBuffer", bn::gradBiasBuffer);
            for (Map.Entry<String, Executable> call : calls.entrySet()) {
                IllegalStateException e = assertThrows(IllegalStateException.class, call.getValue(),
                        call.getKey() + " on a closed layer");
                assertTrue(e.getMessage().contains("closed"), call.getKey() + ": " + e.getMessage());
            }
            assertEquals(launches, backend.kernelLaunches(), "a closed layer launched nothing");
            assertEquals(3, bn.channels(), "plain properties stay readable");
        }
    }

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void everyUseOfAClosedTensorOrBufferIsAnIllegalStateException(Backend backend) {
        int[] shape = {2, 3, 2};
        try (BatchNorm bn = BatchNorm.builder(3).backend(backend).build();
             Tensor live = Tensor.upload(backend, TestData.gaussian(12, 7), shape);
             Tensor y = Tensor.zeros(backend, Layout.CHANNELS_FIRST, shape)) {
            Tensor dead = Tensor.upload(backend, TestData.gaussian(12, 8), shape);
            dead.close();
            Map<String, Executable> calls = new LinkedHashMap<>();
            calls.put("download", dead::download);
            calls.put("upload", () -> dead.upload(new float[12]));
            calls.put("buffer", dead::buffer);
            calls.put("as x", () -> bn.forwardTraining(dead));
            calls.put("as y", () -> bn.forwardTraining(live, dead));
            calls.put("as inference x", () -> bn.forwardInference(dead));
            bn.forwardTraining(live, y);
            calls.put("as dy", () -> bn.backward(live, dead));
            calls.put("as dx", () -> bn.backward(live, live, dead));
            for (Map.Entry<String, Executable> call : calls.entrySet()) {
                IllegalStateException e = assertThrows(IllegalStateException.class, call.getValue(),
                        "closed tensor " + call.getKey());
                assertTrue(e.getMessage().contains("closed"), call.getKey() + ": " + e.getMessage());
            }

            DeviceBuffer f = backend.allocate(4, ElementType.FLOAT32);
            DeviceBuffer other = backend.allocate(4, ElementType.FLOAT32);
            DeviceBuffer n = backend.allocate(4, ElementType.INT32);
            f.close();
            n.close();
            Map<String, Executable> bufferCalls = new LinkedHashMap<>();
            bufferCalls.put("upload", () -> backend.upload(f, new float[4]));
            bufferCalls.put("download", () -> backend.download(f, new float[4]));
            bufferCalls.put("uploadInts", () -> backend.uploadInts(n, new int[4]));
            bufferCalls.put("downloadInts", () -> backend.downloadInts(n, new int[4]));
            bufferCalls.put("fill", () -> backend.fill(f, 1f));
            bufferCalls.put("copy from", () -> backend.copy(f, other, 4));
            bufferCalls.put("copy to", () -> backend.copy(other, f, 4));
            for (Map.Entry<String, Executable> call : bufferCalls.entrySet()) {
                IllegalStateException e = assertThrows(IllegalStateException.class, call.getValue(),
                        "closed buffer " + call.getKey());
                assertTrue(e.getMessage().contains("closed"), call.getKey() + ": " + e.getMessage());
            }
            other.close();
            // The layer is unharmed by all of that.
            float[] out = bn.forwardTraining(live.download(), shape);
            for (float v : out) {
                assertTrue(Float.isFinite(v));
            }
        }
    }

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void everyUseOfAClosedBackendIsAnIllegalStateException(Backend shared) {
        Backend own = openAnother(shared);
        int[] shape = {2, 3, 2};
        BatchNorm bn = BatchNorm.builder(3).backend(own).build();
        Tensor x = Tensor.upload(own, TestData.gaussian(12, 9), shape);
        DeviceBuffer b = own.allocate(4, ElementType.FLOAT32);
        DeviceBuffer b2 = own.allocate(4, ElementType.FLOAT32);
        bn.forwardTraining(x).close();
        own.close();
        assertTrue(own.isClosed());

        Map<String, Executable> calls = new LinkedHashMap<>();
        calls.put("allocate", () -> own.allocate(4, ElementType.FLOAT32));
        calls.put("upload", () -> own.upload(b, new float[4]));
        calls.put("download", () -> own.download(b, new float[4]));
        calls.put("fill", () -> own.fill(b, 0f));
        calls.put("copy", () -> own.copy(b, b2, 4));
        calls.put("createBatchNormOps", () -> own.createBatchNormOps(3));
        calls.put("finish", own::finish);
        calls.put("Tensor.zeros", () -> Tensor.zeros(own, Layout.CHANNELS_FIRST, 2, 3));
        calls.put("Tensor.upload", () -> Tensor.upload(own, new float[6], 2, 3));
        calls.put("tensor download", x::download);
        calls.put("layer forward", () -> bn.forwardTraining(x));
        calls.put("layer inference", () -> bn.forwardInference(x));
        calls.put("layer getter", bn::runningMean);
        calls.put("new layer", () -> BatchNorm.builder(3).backend(own).build());
        if (own instanceof OpenClBackend cl) {
            calls.put("program", () -> cl.program("__kernel void k() {}", ""));
        }
        for (Map.Entry<String, Executable> call : calls.entrySet()) {
            IllegalStateException e = assertThrows(IllegalStateException.class, call.getValue(),
                    call.getKey() + " after the backend was closed");
            assertTrue(e.getMessage().contains("closed"), call.getKey() + ": " + e.getMessage());
        }
        assertFalse(shared.isClosed(), "the shared backend is untouched");
        // What outlived the backend can still be closed, and that releases it.
        bn.close();
        x.close();
        b.close();
        b2.close();
        assertEquals(0, own.liveBuffers());
        assertEquals(0, own.liveKernels());
    }
}
