package dev.clnorm.io;

import dev.clnorm.BatchNorm;
import dev.clnorm.TestBackends;
import dev.clnorm.backend.Backend;
import dev.clnorm.backend.ElementType;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A layer's state saved to .npz and loaded back, on every backend: PyTorch and Keras names, bit-exact
 * parameters and running statistics (downloaded from and uploaded to the device), the batch count,
 * the file's names/dtypes/shapes, state made by NumPy from a PyTorch state_dict, loading into a layer
 * on every other backend, and strict validation that leaves the layer untouched when it rejects.
 */
class LayerStateTest {
    private static final int C = 5;
    private static final int[] SHAPE = {6, C, 4, 3};

    /** A layer whose state is far from the defaults: random affine parameters, then 3 training steps. */
    private static BatchNorm trained(Backend backend, long seed) {
        BatchNorm bn = BatchNorm.builder(C).backend(backend).build();
        Random r = new Random(seed);
        float[] w = new float[C];
        float[] b = new float[C];
        for (int c = 0; c < C; c++) {
            w[c] = (float) (0.5 + r.nextDouble());
            b[c] = (float) r.nextGaussian();
        }
        bn.setWeight(w);
        bn.setBias(b);
        int n = SHAPE[0] * C * SHAPE[2] * SHAPE[3];
        for (int step = 0; step < 3; step++) {
            float[] x = new float[n];
            for (int i = 0; i < n; i++) {
                x[i] = (float) (3 + 2 * r.nextGaussian());
            }
            bn.forwardTraining(x, SHAPE);
        }
        return bn;
    }

    private static void assertBitsEqual(float[] expected, float[] actual, String what) {
        assertEquals(expected.length, actual.length, what);
        for (int i = 0; i < expected.length; i++) {
            assertEquals(Float.floatToRawIntBits(expected[i]), Float.floatToRawIntBits(actual[i]),
                    what + "[" + i + "]: " + expected[i] + " vs " + actual[i]);
        }
    }

    private static void assertSameState(BatchNorm expected, BatchNorm actual, boolean count) {
        assertBitsEqual(expected.weight(), actual.weight(), "weight");
        assertBitsEqual(expected.bias(), actual.bias(), "bias");
        assertBitsEqual(expected.runningMean(), actual.runningMean(), "running_mean");
        assertBitsEqual(expected.runningVar(), actual.runningVar(), "running_var");
        if (count) {
            assertEquals(expected.numBatchesTracked(), actual.numBatchesTracked(), "num_batches_tracked");
        }
    }

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void pytorchStateRoundTripIsExactOnEveryBackend(Backend backend, @TempDir Path dir) throws Exception {
        Path file = dir.resolve("bn.npz");
        try (BatchNorm bn = trained(backend, 1)) {
            LayerState.save(bn, file);
            Map<String, NpyArray> onDisk = Npz.read(file);
            assertEquals(List.of("weight", "bias", "running_mean", "running_var", "num_batches_tracked"),
                    new ArrayList<>(onDisk.keySet()));
            for (String k : List.of("weight", "bias", "running_mean", "running_var")) {
                assertEquals(NpyArray.DType.FLOAT32, onDisk.get(k).dtype(), k);
                assertArrayEquals(new int[]{C}, onDisk.get(k).shape(), k);
            }
            NpyArray count = onDisk.get("num_batches_tracked");
            assertEquals(NpyArray.DType.INT64, count.dtype());
            assertEquals(0, count.rank(), "PyTorch's num_batches_tracked is a 0-d tensor");
            assertArrayEquals(new long[]{3}, count.toLongArray());
            // The running statistics really moved, so the round trip below tests something.
            assertTrue(bn.runningMean()[0] != 0f && bn.runningVar()[0] != 1f);

            for (Backend target : TestBackends.all()) {
                try (BatchNorm fresh = BatchNorm.builder(C).backend(target).build()) {
                    assertEquals(LayerState.Naming.PYTORCH, LayerState.load(fresh, file));
                    assertSameState(bn, fresh, true);
                }
            }
            // Same state on the same device gives the same inference output, bit for bit.
            try (BatchNorm fresh = BatchNorm.builder(C).backend(backend).build()) {
                LayerState.load(fresh, file);
                float[] x = new float[SHAPE[0] * C * SHAPE[2] * SHAPE[3]];
                for (int i = 0; i < x.length; i++) {
                    x[i] = (float) Math.sin(i);
                }
                assertBitsEqual(bn.forwardInference(x, SHAPE), fresh.forwardInference(x, SHAPE), "inference y");
            }
        }
    }

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void kerasNamesRoundTripExactlyAndCarryNoCount(Backend backend, @TempDir Path dir) throws Exception {
        Path file = dir.resolve("keras.npz");
        try (BatchNorm bn = trained(backend, 2); BatchNorm fresh = BatchNorm.builder(C).backend(backend).build()) {
            LayerState.save(bn, file, LayerState.Naming.KERAS);
            assertEquals(List.of("gamma", "beta", "moving_mean", "moving_variance"),
                    new ArrayList<>(Npz.read(file).keySet()));
            fresh.setNumBatchesTracked(11);
            assertEquals(LayerState.Naming.KERAS, LayerState.load(fresh, file));
            assertSameState(bn, fresh, false);
            assertEquals(11, fresh.numBatchesTracked(), "Keras state has no count: the layer's is kept");
        }
    }

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void loadsAStateDictNumpyWrote(Backend backend) throws Exception {
        Path file = Path.of(LayerStateTest.class.getResource("torch_state.npz").toURI());
        try (BatchNorm bn = BatchNorm.builder(4).backend(backend).build()) {
            LayerState.load(bn, file);
            assertArrayEquals(new float[]{1.0f, 0.5f, 2.0f, -1.0f}, bn.weight());
            assertArrayEquals(new float[]{0.0f, 0.1f, -0.2f, 0.3f}, bn.bias());
            assertArrayEquals(new float[]{0.25f, -0.5f, 1.0f, 2.0f}, bn.runningMean());
            assertArrayEquals(new float[]{1.0f, 0.75f, 3.0f, 0.125f}, bn.runningVar());
            assertEquals(7, bn.numBatchesTracked());
        }
    }

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void rejectedStateLeavesTheLayerUnchanged(Backend backend) {
        try (BatchNorm bn = trained(backend, 3); BatchNorm before = trained(backend, 3)) {
            Map<String, NpyArray> good = LayerState.stateDict(bn, LayerState.Naming.PYTORCH);
            List<Map<String, NpyArray>> bad = new ArrayList<>();
            List<String> why = new ArrayList<>();

            Map<String, NpyArray> m = new LinkedHashMap<>(good);
            m.put("running_var", NpyArray.ofFloat32(new float[]{1, 1, 1}, 3));   // last entry validated
            bad.add(m);
            why.add("running_var should have shape (5,) for 5 channels, got (3,)");

            m = new LinkedHashMap<>(good);
            m.remove("bias");
            bad.add(m);
            why.add("missing key(s) [bias]");

            m = new LinkedHashMap<>(good);
            m.put("momentum", NpyArray.scalar(1));
            bad.add(m);
            why.add("unexpected key(s) [momentum]");

            m = new LinkedHashMap<>(good);
            m.put("running_var", NpyArray.ofFloat32(new float[]{1, 1, -1, 1, 1}, C));
            bad.add(m);
            why.add("running_var must be finite and >= 0 in FLOAT32, got -1.0 at channel 2");

            m = new LinkedHashMap<>(good);
            m.put("gamma", m.remove("weight"));
            bad.add(m);
            why.add("mixes PyTorch and Keras names");

            m = new LinkedHashMap<>(good);
            m.put("num_batches_tracked", NpyArray.ofFloat32(new float[]{3}));
            bad.add(m);
            why.add("num_batches_tracked must be an int64 scalar");

            m = new LinkedHashMap<>(good);
            m.put("weight", NpyArray.ofInt64(new long[C], C));
            bad.add(m);
            why.add("weight must be a floating array");

            for (int i = 0; i < bad.size(); i++) {
                // Change the first arrays so that a partial load would show.
                Map<String, NpyArray> candidate = new LinkedHashMap<>(bad.get(i));
                if (candidate.get("weight") != null && candidate.get("weight").dtype().isFloating()) {
                    candidate.put("weight", NpyArray.ofFloat32(new float[]{9, 9, 9, 9, 9}, C));
                }
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> LayerState.loadStateDict(bn, candidate));
                assertTrue(e.getMessage().contains(why.get(i)), e.getMessage());
                assertSameState(before, bn, true);
            }
        }
    }

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void nonAffineAndUntrackedLayersSaveOnlyWhatTheyHave(Backend backend, @TempDir Path dir) throws Exception {
        try (BatchNorm plain = BatchNorm.builder(C).affine(false).backend(backend).build();
             BatchNorm untracked = BatchNorm.builder(C).trackRunningStats(false).backend(backend).build()) {
            assertEquals(List.of("running_mean", "running_var", "num_batches_tracked"),
                    new ArrayList<>(LayerState.stateDict(plain, LayerState.Naming.PYTORCH).keySet()));
            assertEquals(List.of("weight", "bias"),
                    new ArrayList<>(LayerState.stateDict(untracked, LayerState.Naming.PYTORCH).keySet()));
            Path file = dir.resolve("full.npz");
            try (BatchNorm full = trained(backend, 4)) {
                LayerState.save(full, file);
            }
            String msg = assertThrows(IllegalArgumentException.class, () -> LayerState.load(plain, file)).getMessage();
            assertTrue(msg.startsWith(file + ": ") && msg.contains("unexpected key(s) [weight, bias]"), msg);
        }
    }

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void scaleOnlyAndCenterOnlyLayersSaveAndLoadTheirOneParameter(Backend backend, @TempDir Path dir)
            throws Exception {
        try (BatchNorm scaleOnly = BatchNorm.builder(C).useShift(false).backend(backend).build();
             BatchNorm centerOnly = BatchNorm.builder(C).useScale(false).backend(backend).build();
             BatchNorm fresh = BatchNorm.builder(C).useShift(false).backend(backend).build()) {
            float[] w = {0.5f, 1.5f, 2.5f, 3.5f, 4.5f};
            scaleOnly.setWeight(w);
            assertEquals(List.of("gamma", "moving_mean", "moving_variance"),
                    new ArrayList<>(LayerState.stateDict(scaleOnly, LayerState.Naming.KERAS).keySet()));
            assertEquals(List.of("beta", "moving_mean", "moving_variance"),
                    new ArrayList<>(LayerState.stateDict(centerOnly, LayerState.Naming.KERAS).keySet()));
            Path file = dir.resolve("scale.npz");
            LayerState.save(scaleOnly, file, LayerState.Naming.KERAS);
            LayerState.load(fresh, file);
            assertBitsEqual(w, fresh.weight(), "gamma");
            String msg = assertThrows(IllegalArgumentException.class, () -> LayerState.load(centerOnly, file))
                    .getMessage();
            assertTrue(msg.contains("scale=false, center=true") && msg.contains("missing key(s) [beta]")
                    && msg.contains("unexpected key(s) [gamma]"), msg);
        }
    }

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#fp64Backends")
    void float64LayersSaveFloat64ArraysAndRoundTripEveryBit(Backend backend, @TempDir Path dir) throws Exception {
        double[] w = {0.1, 1.0 / 3, 2.0 / 7, Math.PI, Math.E};
        double[] rm = {1e-300, -1.0 / 9, 1e8 + 0.123456789, 0.7, -2.2};
        Path file = dir.resolve("f64.npz");
        try (BatchNorm bn = BatchNorm.builder(C).dtype(ElementType.FLOAT64).backend(backend).build();
             BatchNorm fresh = BatchNorm.builder(C).dtype(ElementType.FLOAT64).backend(backend).build();
             BatchNorm narrow = BatchNorm.builder(C).backend(backend).build()) {
            bn.setWeight(w);
            bn.setRunningMean(rm);
            LayerState.save(bn, file);
            Map<String, NpyArray> onDisk = Npz.read(file);
            for (String k : List.of("weight", "bias", "running_mean", "running_var")) {
                assertEquals(NpyArray.DType.FLOAT64, onDisk.get(k).dtype(), k);
            }
            LayerState.load(fresh, file);
            assertArrayEquals(w, fresh.weightDouble(), 0.0);
            assertArrayEquals(rm, fresh.runningMeanDouble(), 0.0);
            // A float32 layer takes the same file, each value rounded once.
            LayerState.load(narrow, file);
            for (int c = 0; c < C; c++) {
                assertEquals((float) rm[c], narrow.runningMean()[c], 0.0f, "running_mean[" + c + "]");
            }
        }
    }

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("dev.clnorm.TestBackends#backends")
    void aRunningVarianceBeyondFloat32IsRejectedByAFloat32LayerBeforeAnythingChanges(Backend backend) {
        Map<String, NpyArray> state = new LinkedHashMap<>();
        state.put("weight", NpyArray.ofFloat64(new double[]{2, 2, 2, 2, 2}, C));
        state.put("bias", NpyArray.ofFloat64(new double[]{1, 1, 1, 1, 1}, C));
        state.put("running_mean", NpyArray.ofFloat64(new double[C], C));
        state.put("running_var", NpyArray.ofFloat64(new double[]{1, 1, 1e300, 1, 1}, C));
        try (BatchNorm bn = BatchNorm.builder(C).backend(backend).build()) {
            String msg = assertThrows(IllegalArgumentException.class, () -> LayerState.loadStateDict(bn, state))
                    .getMessage();
            assertTrue(msg.contains("running_var must be finite and >= 0 in FLOAT32") && msg.contains("channel 2"),
                    msg);
            assertBitsEqual(new float[]{1, 1, 1, 1, 1}, bn.weight(), "weight unchanged");
        }
    }
}
