package dev.clnorm;

import dev.clnorm.backend.Backend;
import dev.clnorm.backend.opencl.OpenClBackend;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

/**
 * Kernel arguments are set once per binding: a training loop that reuses its tensors makes no
 * clSetKernelArg calls after its first step, and a new tensor binding does set them again.
 */
class KernelArgumentBindingTest {

    @Test
    void repeatedStepsSetNoKernelArguments() {
        if (TestBackends.openClRequired()) {
            assertFalse(TestBackends.openCl().isEmpty(), "CLNORM_REQUIRE_OPENCL=1 but no OpenCL device");
        }
        assumeFalse(TestBackends.openCl().isEmpty(), "no OpenCL device on this machine");
        for (Backend b : TestBackends.openCl()) {
            OpenClBackend cl = (OpenClBackend) b;
            for (int[] shape : new int[][]{{8, 16, 12, 12}, {64, 32}}) {
                Geometry g = Geometry.of(shape, Layout.CHANNELS_FIRST);
                try (BatchNorm bn = BatchNorm.builder(shape[1]).backend(b).build();
                     Tensor x = Tensor.upload(b, TestData.channelData(g, 5, 1.0, 0.5, 2.0), shape);
                     Tensor dy = Tensor.upload(b, TestData.gaussian((int) g.elements(), 6), shape);
                     Tensor y = Tensor.zeros(b, Layout.CHANNELS_FIRST, shape);
                     Tensor dx = Tensor.zeros(b, Layout.CHANNELS_FIRST, shape);
                     Tensor y2 = Tensor.zeros(b, Layout.CHANNELS_FIRST, shape)) {
                    bn.forwardTraining(x, y);
                    bn.backward(x, dy, dx);
                    long sets = cl.kernelArgumentSets();
                    for (int step = 0; step < 3; step++) {
                        bn.forwardTraining(x, y);
                        bn.backward(x, dy, dx);
                    }
                    assertEquals(sets, cl.kernelArgumentSets(), "clSetKernelArg calls in steady steps, shape "
                            + java.util.Arrays.toString(shape));
                    bn.forwardTraining(x, y2);  // a new output tensor must be bound
                    assertTrue(cl.kernelArgumentSets() > sets);
                    b.finish();
                    assertEquals(y.download().length, y2.download().length);
                    org.junit.jupiter.api.Assertions.assertArrayEquals(y.download(), y2.download(),
                            "output written through the re-bound argument");
                }
            }
        }
    }
}
