package dev.clnorm.tools;

import dev.clnorm.Layout;
import dev.clnorm.TestBackends;
import dev.clnorm.backend.Backend;
import dev.clnorm.backend.ElementType;
import dev.clnorm.backend.opencl.KernelStyle;
import dev.clnorm.backend.opencl.OpenClBackend;
import dev.clnorm.bench.ParityResult;
import dev.clnorm.bench.ParityRunner;
import dev.clnorm.bench.ParityRunner.Output;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.List;
import java.util.function.Consumer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The parity runner on every backend: honest runs pass, a result perturbed through the test hook
 * (never through the library) fails and is named by device, output and element, and a perturbation
 * below the tolerance is measured but passes. Tiny shapes: the float64 reference is slow on purpose.
 */
class ParityRunnerTest {
    private static final List<int[]> SHAPES = List.of(new int[]{4, 3, 5}, new int[]{6, 4});

    static List<Backend> backends() {
        return TestBackends.all();
    }

    private static ParityResult run(Layout layout, Consumer<ParityRunner.DeviceRun> hook) {
        return new ParityRunner(7, 2, layout, hook).run(TestBackends.all(), SHAPES, s -> { });
    }

    /** The label results use for the backend at position {@code d} of TestBackends.all(). */
    private static String label(int d) {
        return ParityRunner.labels(TestBackends.all()).get(d);
    }

    private static Consumer<ParityRunner.DeviceRun> addTo(int device, String shape, Output output, int index,
                                                          float delta) {
        return run -> {
            if (run.index() == device && dev.clnorm.bench.BenchRunner.shapeText(run.shape()).equals(shape)) {
                assertEquals(label(device), run.deviceId());
                run.outputs().get(output)[index] += delta;
            }
        };
    }

    @ParameterizedTest
    @EnumSource(Layout.class)
    void honestRunPassesEveryOutputOnEveryDevice(Layout layout) {
        ParityResult r = run(layout, null);
        int devices = TestBackends.all().size();
        assertEquals(SHAPES.size() * devices * Output.values().length, r.comparisons().size());
        assertEquals(SHAPES.size() * devices * (devices - 1) / 2 * Output.values().length, r.pairs().size());
        assertTrue(r.passed(), () -> "failures: " + r.failures());
        assertEquals(0, r.exitCode());
        for (ParityResult.Comparison c : r.comparisons()) {
            assertTrue(c.maxAbs() < ParityRunner.TOLERANCE, c::toString);
            assertTrue(c.worstRatio() <= 1.0, c::toString);
            assertTrue(c.maxUlp() < Long.MAX_VALUE, c::toString);
            assertTrue(c.tolerance() >= ParityRunner.TOLERANCE, c::toString);
        }
        // float32 results are not float64's: some error must show (the comparison is not vacuous).
        assertTrue(r.comparisons().stream().anyMatch(c -> c.output() == Output.Y && c.maxAbs() > 0 && c.maxUlp() > 0));
    }

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("backends")
    void perturbedDeviceFailsAndIsNamed(Backend perturbed) {
        int d = TestBackends.all().indexOf(perturbed);
        String id = label(d);
        ParityResult r = run(Layout.CHANNELS_FIRST, addTo(d, "6x4", Output.Y, 7, 1e-2f));
        assertFalse(r.passed());
        assertEquals(1, r.exitCode());
        List<ParityResult.Comparison> failures = r.failures();
        assertEquals(1, failures.size(), failures::toString);
        ParityResult.Comparison f = failures.get(0);
        assertEquals(id, f.deviceId());
        assertEquals(Output.Y, f.output());
        assertEquals("6x4", f.shape());
        assertEquals(7, f.worstIndex());
        assertEquals(1e-2, f.maxAbs(), 1e-4);
        assertTrue(f.worstRatio() > 40, f::toString);  // 1e-2 against 2e-4
        // The other devices on that shape and the untouched outputs still pass.
        assertTrue(r.comparisons().stream().filter(c -> !c.deviceId().equals(id)).allMatch(ParityResult.Comparison::pass));
    }

    @Test
    void perturbationBelowTheToleranceIsMeasuredButPasses() {
        int d = TestBackends.all().size() - 1;
        String id = label(d);
        ParityResult r = run(Layout.CHANNELS_FIRST, addTo(d, "4x3x5", Output.DX, 3, 1e-4f));
        assertTrue(r.passed(), () -> "failures: " + r.failures());
        ParityResult.Comparison dx = r.comparisons().stream()
                .filter(c -> c.deviceId().equals(id) && c.shape().equals("4x3x5") && c.output() == Output.DX)
                .findFirst().orElseThrow();
        assertTrue(dx.maxAbs() >= 0.9e-4 && dx.maxAbs() < ParityRunner.TOLERANCE, dx::toString);
        assertEquals(3, dx.worstIndex());
    }

    @Test
    void sumsGetTheirOwnToleranceAndStillFailWhenFarOff() {
        ParityResult r = run(Layout.CHANNELS_FIRST, addTo(0, "6x4", Output.DGAMMA, 2, 0.5f));
        assertEquals(1, r.exitCode());
        ParityResult.Comparison f = r.failures().get(0);
        assertEquals(Output.DGAMMA, f.output());
        assertEquals(2, f.worstIndex());
        assertTrue(f.toleranceRule().contains("sum"), f.toleranceRule());
        // dgamma's bound is 2e-4 + 2e-6 * sum|dy*xhat|: larger than the plain bound, still far below 0.5.
        assertTrue(f.tolerance() > ParityRunner.TOLERANCE && f.tolerance() < 1e-3, f::toString);
    }

    @Test
    void nanInAnOutputFails() {
        String id = label(0);
        ParityResult r = run(Layout.CHANNELS_FIRST, run -> {
            if (run.index() == 0) {
                run.outputs().get(Output.RUNNING_VAR)[1] = Float.NaN;
            }
        });
        assertEquals(1, r.exitCode());
        assertTrue(r.failures().stream().allMatch(f -> f.output() == Output.RUNNING_VAR && f.deviceId().equals(id)));
        ParityResult.Comparison f = r.failures().get(0);
        assertEquals(Double.POSITIVE_INFINITY, f.maxAbs());
        assertEquals(Long.MAX_VALUE, f.maxUlp());
    }

    @Test
    void batchVarianceIsDerivedFromInvstd() {
        // Perturbing the saved invstd moves the derived variance too: both fail.
        ParityResult r = run(Layout.CHANNELS_FIRST, addTo(0, "4x3x5", Output.BATCH_INVSTD, 0, 0.01f));
        List<Output> failed = r.failures().stream().map(ParityResult.Comparison::output).toList();
        assertEquals(List.of(Output.BATCH_INVSTD, Output.BATCH_VAR), failed);
    }

    @ParameterizedTest
    @EnumSource(value = ElementType.class, names = {"FLOAT16", "BFLOAT16"})
    void sixteenBitStoragePassesAndRoundsYAndDxOnce(ElementType t) {
        ParityResult r = new ParityRunner(5, 2, Layout.CHANNELS_FIRST, t, null)
                .run(TestBackends.all(), List.of(new int[]{8, 6, 7, 5}), s -> { });
        assertTrue(r.passed(), () -> "failures: " + r.failures());
        assertEquals(t.name().toLowerCase(java.util.Locale.ROOT), r.dtype());
        for (ParityResult.Comparison c : r.comparisons()) {
            boolean stored16 = c.output() == Output.Y || c.output() == Output.DX;
            assertEquals(stored16 ? r.dtype() : "float32", c.ulpType(), c::toString);
            if (stored16) {
                // float32 arithmetic rounded once to the storage type: at most one step from the
                // reference rounded to that type.
                assertTrue(c.maxUlp() <= 1, c::toString);
                // The store's rounding is visible: the error exceeds what float32 alone would give.
                assertTrue(c.maxAbs() > 1e-4, c::toString);
                assertTrue(c.toleranceRule().contains("store"), c::toString);
            }
        }
    }

    @Test
    void sixteenBitPerturbationStillFails() {
        ParityResult r = new ParityRunner(5, 1, Layout.CHANNELS_FIRST, ElementType.FLOAT16,
                addTo(0, "6x4", Output.DX, 0, 0.05f)).run(TestBackends.all(), SHAPES, s -> { });
        assertEquals(1, r.exitCode());
        assertEquals(List.of(Output.DX), r.failures().stream().map(ParityResult.Comparison::output).toList());
    }

    @Test
    void ulpDistanceInSixteenBitTypes() {
        assertEquals(1, ParityRunner.ulpDistance(1.0, 1.0 + Math.scalb(1.0, -10), ElementType.FLOAT16));
        assertEquals(1, ParityRunner.ulpDistance(1.0, 1.0 + Math.scalb(1.0, -7), ElementType.BFLOAT16));
        // Rounded to the type first: 1 + 2^-12 is float16's 1.
        assertEquals(0, ParityRunner.ulpDistance(1.0, 1.0 + Math.scalb(1.0, -12), ElementType.FLOAT16));
        assertEquals(2, ParityRunner.ulpDistance(Math.scalb(1.0, -24), -Math.scalb(1.0, -24), ElementType.FLOAT16));
        assertEquals(0, ParityRunner.ulpDistance(0.0, -0.0, ElementType.BFLOAT16));
        assertEquals(Long.MAX_VALUE, ParityRunner.ulpDistance(Double.NaN, 1.0, ElementType.FLOAT16));
        assertEquals(1L << 10, ParityRunner.ulpDistance(1.0, 2.0, ElementType.FLOAT16));
        assertEquals(1L << 7, ParityRunner.ulpDistance(-1.0, -2.0, ElementType.BFLOAT16));
    }

    @Test
    void ulpDistanceCountsFloat32Steps() {
        assertEquals(0, ParityRunner.ulpDistance(1f, 1f));
        assertEquals(1, ParityRunner.ulpDistance(1f, Math.nextUp(1f)));
        assertEquals(1, ParityRunner.ulpDistance(Math.nextDown(1f), 1f));
        assertEquals(1L << 23, ParityRunner.ulpDistance(1f, 2f));
        assertEquals(0, ParityRunner.ulpDistance(0f, -0f));
        assertEquals(2, ParityRunner.ulpDistance(Float.MIN_VALUE, -Float.MIN_VALUE));
        assertEquals(2, ParityRunner.ulpDistance(-1f, Math.nextDown(Math.nextDown(-1f))));
        assertEquals(Long.MAX_VALUE, ParityRunner.ulpDistance(Float.NaN, 1f));
        assertEquals(0, ParityRunner.ulpDistance(Float.NaN, Float.NaN));
        assertEquals(1, ParityRunner.ulpDistance(Float.MAX_VALUE, Float.POSITIVE_INFINITY));
    }

    @Test
    void labelsAreUniqueAndNameForcedLaunchPlans() {
        List<String> labels = ParityRunner.labels(TestBackends.all());
        assertEquals(labels.size(), labels.stream().distinct().count(), labels::toString);
        assertEquals("java", labels.get(0));
        for (int d = 0; d < labels.size(); d++) {
            if (TestBackends.all().get(d) instanceof OpenClBackend cl && cl.kernelStyle() == KernelStyle.GPU) {
                assertEquals(cl.info().id() + "/gpu-plans", labels.get(d));
            }
        }
        List<String> twice = ParityRunner.labels(List.of(TestBackends.all().get(0), TestBackends.all().get(0)));
        assertEquals(List.of("java", "java#2"), twice);
    }

    @Test
    void shapesThatCannotTrainAreRejectedBeforeAnyWork() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ParityRunner.check(new int[]{1, 5}, Layout.CHANNELS_FIRST));
        assertTrue(e.getMessage().contains("more than 1 value per channel"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> ParityRunner.check(new int[]{2, 2, 2, 2, 2, 2},
                Layout.CHANNELS_FIRST));
        assertThrows(IllegalArgumentException.class, () -> new ParityRunner(1, 0, Layout.CHANNELS_FIRST));
    }
}
