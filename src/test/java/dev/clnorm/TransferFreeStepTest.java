package dev.clnorm;

import dev.clnorm.backend.Backend;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A training step (forward with running-statistics update, backward) on device-resident tensors
 * performs no host-device transfer: the backends count every upload and download.
 */
class TransferFreeStepTest {

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void trainingStepsMakeNoHostTransfers(Backend backend) {
        int[] shape = {8, 16, 12, 12};
        Geometry g = Geometry.of(shape, Layout.CHANNELS_FIRST);
        try (BatchNorm bn = BatchNorm.builder(16).backend(backend).build();
             Tensor x = Tensor.upload(backend, TestData.channelData(g, 3, 1.0, 0.5, 2.0), shape);
             Tensor dy = Tensor.upload(backend, TestData.gaussian((int) g.elements(), 4), shape);
             Tensor y = Tensor.zeros(backend, Layout.CHANNELS_FIRST, shape);
             Tensor dx = Tensor.zeros(backend, Layout.CHANNELS_FIRST, shape)) {
            float[] before = bn.runningMean();
            long transfers = backend.transferCount();
            long launches = backend.kernelLaunches();
            for (int step = 0; step < 3; step++) {
                bn.forwardTraining(x, y);
                bn.backward(x, dy, dx);
            }
            backend.finish();
            assertEquals(transfers, backend.transferCount(), "host-device transfers during training steps");
            assertTrue(backend.kernelLaunches() > launches, "the steps launched device work");
            // The counter is not blind: reading the running mean is one transfer, and it changed.
            float[] after = bn.runningMean();
            assertEquals(transfers + 1, backend.transferCount());
            assertNotEquals(before[0], after[0]);
        }
    }
}
