package dev.clnorm;

import dev.clnorm.backend.Backend;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

/**
 * The guard against a CI run that "passes" because no OpenCL device existed: with
 * CLNORM_REQUIRE_OPENCL=1 there must be an OpenCL device, and its kernels must build and run
 * and give the right answer. Without the variable, a machine with no OpenCL skips this.
 */
class OpenClExecutedTest {

    @Test
    void openClKernelsBuildAndExecute() {
        if (TestBackends.openClRequired()) {
            assertFalse(TestBackends.openCl().isEmpty(), "CLNORM_REQUIRE_OPENCL=1 but no OpenCL device: "
                    + Devices.openClProblems());
        }
        assumeFalse(TestBackends.openCl().isEmpty(), "no OpenCL device on this machine");
        for (Backend b : TestBackends.openCl()) {
            long launches = b.kernelLaunches();
            int[] shape = {4, 3, 5, 5};
            float[] x = TestData.channelData(Geometry.of(shape, Layout.CHANNELS_FIRST), 11, 5.0, 1.0, 2.0);
            try (BatchNorm bn = BatchNorm.builder(3).backend(b).build()) {
                float[] y = bn.forwardTraining(x, shape);
                b.finish();
                assertTrue(b.kernelLaunches() >= launches + 2, "training forward launched its kernels on " + b);
                // Each channel's output has mean ~0: the kernels really computed something.
                for (int c = 0; c < 3; c++) {
                    double sum = 0;
                    for (int n = 0; n < 4; n++) {
                        for (int i = 0; i < 25; i++) {
                            sum += y[(n * 3 + c) * 25 + i];
                        }
                    }
                    assertEquals(0.0, sum / 100, 1e-5, "channel " + c + " output mean on " + b);
                }
            }
        }
    }
}
