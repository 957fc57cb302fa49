package dev.clnorm;

import dev.clnorm.backend.Backend;
import dev.clnorm.backend.java.JavaBackend;
import dev.clnorm.backend.opencl.ClDevice;
import dev.clnorm.backend.opencl.KernelStyle;
import dev.clnorm.backend.opencl.OpenClBackend;

import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

/**
 * Every backend the machine offers, opened once per test run and shared by the tests: the Java
 * backend and one backend per OpenCL device found. With CLNORM_REQUIRE_OPENCL=1 (CI) a machine
 * without an OpenCL device fails here instead of quietly testing only Java.
 */
public final class TestBackends {
    private static List<Backend> all;

    private TestBackends() {
    }

    public static boolean openClRequired() {
        return "1".equals(System.getenv("CLNORM_REQUIRE_OPENCL"));
    }

    public static synchronized List<Backend> all() {
        if (all == null) {
            List<Backend> list = new ArrayList<>();
            list.add(new JavaBackend());
            List<ClDevice> devices = Devices.openClDevices();
            if (devices.isEmpty() && openClRequired()) {
                throw new IllegalStateException("CLNORM_REQUIRE_OPENCL=1 but no OpenCL device was found: "
                        + String.join("; ", Devices.openClProblems()));
            }
            for (ClDevice d : devices) {
                list.add(new OpenClBackend(d));
                // On CPU devices also run the GPU launch plans (256-wide work-groups, local-memory
                // merges, last-work-group handshakes across many work-items), so those code paths
                // are tested here even though no GPU is available.
                if (d.info().kind() == dev.clnorm.backend.DeviceInfo.Kind.CPU) {
                    list.add(new OpenClBackend(d, KernelStyle.GPU));
                }
            }
            all = List.copyOf(list);
            Runtime.getRuntime().addShutdownHook(new Thread(() -> all.forEach(Backend::close)));
        }
        return all;
    }

    /**
     * For {@code @MethodSource}: one argument per backend, named by its device id. Backends are
     * shared, so parameterized tests must declare {@code autoCloseArguments = false}.
     */
    public static Stream<Backend> backends() {
        return all().stream();
    }

    /**
     * For {@code @MethodSource}: the backends with double precision (the Java backend always; OpenCL
     * devices reporting cl_khr_fp64), which float64 layers need. Devices without it are not skipped
     * silently: they refuse a float64 layer, which Float64Test checks on its own.
     */
    public static Stream<Backend> fp64Backends() {
        return all().stream().filter(b -> b.info().fp64());
    }

    public static List<Backend> openCl() {
        return all().stream().filter(b -> b instanceof OpenClBackend).toList();
    }
}
