package dev.clnorm;

import dev.clnorm.backend.Backend;
import dev.clnorm.backend.DeviceBuffer;
import dev.clnorm.backend.ElementType;
import dev.clnorm.backend.opencl.ClDevice;
import dev.clnorm.backend.opencl.ClException;
import dev.clnorm.backend.opencl.ClKernel;
import dev.clnorm.backend.opencl.ClProgram;
import dev.clnorm.backend.opencl.OpenClBackend;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.List;
import java.util.Set;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * OpenCL failures surface as {@link ClException}s that name the CL error, the operation, the
 * kernel and the device; build failures carry the compiler's full build log. Runs on every OpenCL
 * device; with CLNORM_REQUIRE_OPENCL=1 a machine without one fails instead of skipping.
 */
class OpenClErrorsTest {

    /** Every OpenCL backend; without any, one null case that is skipped, unless OpenCL is required. */
    static Stream<Backend> openClBackends() {
        List<Backend> cl = TestBackends.openCl();
        if (cl.isEmpty()) {
            if (TestBackends.openClRequired()) {
                throw new IllegalStateException("CLNORM_REQUIRE_OPENCL=1 but no OpenCL device was found: "
                        + Devices.openClProblems());
            }
            return Stream.of((Backend) null);
        }
        return cl.stream();
    }

    private static OpenClBackend require(Backend backend) {
        assumeTrue(backend != null, "no OpenCL device on this machine and CLNORM_REQUIRE_OPENCL is not 1");
        return (OpenClBackend) backend;
    }

    /** A private backend on the same device, for tests that close what they create. */
    private static OpenClBackend privateBackend(Backend shared) {
        ClDevice device = Devices.openClDevices().stream()
                .filter(d -> d.info().id().equals(shared.info().id())).findFirst().orElseThrow();
        return new OpenClBackend(device);
    }

    private static final String GOOD_SOURCE = "__kernel void scale(__global float* x, const float f, const int n) {\n"
            + "    int i = get_global_id(0);\n"
            + "    if (i < n) x[i] *= f;\n"
            + "}\n";

    /** Asserts the four facts every CL error must carry, in the accessors and in the message. */
    private static ClException assertClError(Executable call, Set<String> errorNames, String operation, String kernel,
                                             Backend backend) {
        ClException e = assertThrows(ClException.class, call);
        String m = e.getMessage();
        assertTrue(errorNames.contains(e.errorName()), "CL error " + e.errorName() + " not one of " + errorNames);
        assertEquals(ClException.errorName(e.code()), e.errorName());
        assertTrue(e.code() < 0, "a CL error code is negative: " + e.code());
        assertTrue(m.contains(e.errorName()) && m.contains("(" + e.code() + ")"), "error name and code in: " + m);
        assertTrue(e.operation().contains(operation), "operation " + e.operation() + " should name " + operation);
        assertTrue(m.contains(e.operation()), "operation in: " + m);
        assertEquals(kernel, e.kernel(), "kernel named by the exception");
        if (kernel != null) {
            assertTrue(m.contains("for kernel " + kernel), "kernel in: " + m);
        }
        assertEquals(backend.info().name(), e.device());
        assertTrue(m.contains("on device " + backend.info().name()), "device in: " + m);
        return e;
    }

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("openClBackends")
    void aBrokenKernelSourceReportsTheFullBuildLog(Backend shared) {
        OpenClBackend backend = require(shared);
        // Five distinct errors on five lines: the log must hold every one of them.
        String[] names = {"first_undeclared", "second_undeclared", "third_undeclared", "fourth_undeclared",
                "fifth_undeclared"};
        StringBuilder src = new StringBuilder("__kernel void broken(__global float* x) {\n");
        for (String n : names) {
            src.append("    x[0] += ").append(n).append(";\n");
        }
        src.append("}\n");
        long kernels = backend.liveKernels();
        ClException e = assertClError(() -> backend.program(src.toString(), "-cl-std=CL1.2"),
                Set.of("CL_BUILD_PROGRAM_FAILURE"), "clBuildProgram", null, backend);
        assertTrue(e.operation().contains("-cl-std=CL1.2"), "the build options are named: " + e.operation());
        String log = e.buildLog();
        assertNotNull(log, "a build failure carries its build log");
        for (String n : names) {
            assertTrue(log.contains(n), "build log should mention " + n + ":\n" + log);
        }
        assertTrue(e.getMessage().contains("--- build log ---\n" + log.strip() + "\n--- end of build log ---"),
                "the whole build log is in the message:\n" + e.getMessage());
        assertEquals(kernels, backend.liveKernels());
        // A failed build is not cached: asking again compiles again and fails with the same errors
        // (the log itself may differ, e.g. POCL names a fresh temporary file each time).
        ClException again = assertThrows(ClException.class, () -> backend.program(src.toString(), "-cl-std=CL1.2"));
        for (String n : names) {
            assertTrue(again.buildLog().contains(n), again.buildLog());
        }
        // The backend is unharmed: a good program still builds and the layer still works.
        try (BatchNorm bn = BatchNorm.builder(2).backend(backend).build()) {
            float[] y = bn.forwardTraining(new float[]{1, 2, 3, 5}, 2, 2);
            assertEquals(-1f, y[0], 1e-3);
        }
    }

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("openClBackends")
    void invalidBuildOptionsAreAClErrorNamingTheOptions(Backend shared) {
        OpenClBackend backend = require(shared);
        ClException e = assertClError(() -> backend.program(GOOD_SOURCE, "-this-option-does-not-exist"),
                Set.of("CL_INVALID_BUILD_OPTIONS", "CL_BUILD_PROGRAM_FAILURE", "CL_INVALID_COMPILER_OPTIONS"),
                "clBuildProgram", null, backend);
        assertTrue(e.operation().contains("-this-option-does-not-exist"), e.operation());
    }

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("openClBackends")
    void kernelErrorsNameTheKernelTheOperationAndTheDevice(Backend shared) {
        require(shared);
        try (OpenClBackend backend = privateBackend(shared)) {
            ClProgram program = backend.program(GOOD_SOURCE, "-cl-std=CL1.2");
            long kernels = backend.liveKernels();

            assertClError(() -> program.createKernel("no_such_kernel"), Set.of("CL_INVALID_KERNEL_NAME"),
                    "clCreateKernel", "no_such_kernel", backend);
            assertEquals(kernels, backend.liveKernels(), "a failed clCreateKernel leaks no kernel");

            try (ClKernel k = program.createKernel("scale");
                 DeviceBuffer buf = backend.allocate(8, ElementType.FLOAT32)) {
                assertEquals(kernels + 1, backend.liveKernels());
                // Launch before its arguments are set.
                assertClError(() -> k.launch(new long[]{8}, new long[]{8}), Set.of("CL_INVALID_KERNEL_ARGS"),
                        "clEnqueueNDRangeKernel", "scale", backend);
                // An argument index the kernel does not have.
                assertClError(() -> k.arg(7, 1.0f), Set.of("CL_INVALID_ARG_INDEX"), "clSetKernelArg(7)", "scale",
                        backend);
                // A work-group larger than the kernel allows.
                k.arg(0, buf).arg(1, 2.0f).arg(2, 8);
                long tooBig = Math.max(k.maxWorkGroupSize(), backend.info().maxWorkGroupSize()) * 2;
                assertClError(() -> k.launch(new long[]{tooBig}, new long[]{tooBig}),
                        Set.of("CL_INVALID_WORK_GROUP_SIZE", "CL_INVALID_WORK_ITEM_SIZE"), "clEnqueueNDRangeKernel",
                        "scale", backend);
                // And the kernel still works after all those errors.
                backend.upload(buf, new float[]{1, 2, 3, 4, 5, 6, 7, 8});
                k.launch(new long[]{8}, new long[]{8});
                float[] out = new float[8];
                backend.download(buf, out);
                assertArrayEquals(new float[]{2, 4, 6, 8, 10, 12, 14, 16}, out);
            }
            assertEquals(kernels, backend.liveKernels(), "closing the kernel released it");
        }
    }

    @ParameterizedTest(name = "{0}", autoCloseArguments = false)
    @MethodSource("openClBackends")
    void releasedKernelsAndProgramsRefuseUseWithoutCrashing(Backend shared) {
        require(shared);
        OpenClBackend backend = privateBackend(shared);
        try {
            ClProgram program = backend.program(GOOD_SOURCE, "");
            ClKernel k = program.createKernel("scale");
            k.close();
            k.close();  // idempotent
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> k.arg(1, 1.0f));
            assertTrue(e.getMessage().contains("scale"), e.getMessage());
            assertThrows(IllegalStateException.class, () -> k.launch(new long[]{1}, new long[]{1}));

            program.close();
            program.close();  // idempotent
            assertTrue(program.isClosed());
            assertThrows(IllegalStateException.class, () -> program.createKernel("scale"));
            // The backend's cache does not hand out the closed program: it builds a new one.
            ClProgram rebuilt = backend.program(GOOD_SOURCE, "");
            assertNotSame(program, rebuilt);
            try (ClKernel k2 = rebuilt.createKernel("scale")) {
                assertEquals("scale", k2.name());
            }

            // Kernels and buffers outliving their backend fail cleanly, and can still be closed.
            ClKernel survivor = rebuilt.createKernel("scale");
            DeviceBuffer buf = backend.allocate(4, ElementType.FLOAT32);
            backend.close();
            assertThrows(IllegalStateException.class, () -> survivor.arg(0, buf));
            assertThrows(IllegalStateException.class, () -> survivor.launch(new long[]{4}, new long[]{4}));
            assertThrows(IllegalStateException.class, () -> backend.program(GOOD_SOURCE, ""));
            survivor.close();
            buf.close();
            assertEquals(0, backend.liveKernels());
            assertEquals(0, backend.liveBuffers());
        } finally {
            backend.close();
        }
    }
}
