package dev.clnorm;

import dev.clnorm.backend.Backend;
import dev.clnorm.backend.DeviceInfo;
import dev.clnorm.backend.java.JavaBackend;
import dev.clnorm.backend.opencl.ClDevice;
import dev.clnorm.backend.opencl.OpenClBackend;
import dev.clnorm.backend.opencl.OpenClDiscovery;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.logging.Logger;
import java.util.stream.Collectors;

/**
 * Finds devices and opens backends.
 *
 * <p>Selectors (system property {@code clnorm.device}, else environment variable
 * {@code CLNORM_DEVICE}, else {@code auto}):
 * <ul>
 *   <li>{@code auto}: the first GPU, else accelerator, else OpenCL CPU device, else the Java backend</li>
 *   <li>{@code java}: the pure-Java backend</li>
 *   <li>{@code opencl}: the best OpenCL device in the order above; an error if there is none</li>
 *   <li>{@code gpu}, {@code accelerator}, {@code cpu}: the first OpenCL device of that type</li>
 *   <li>{@code opencl:<platform>:<device>}: that exact device, by index</li>
 * </ul>
 * An unknown or unavailable selector is an error listing every device that does exist.
 */
public final class Devices {
    public static final String PROPERTY = "clnorm.device";
    public static final String ENVIRONMENT = "CLNORM_DEVICE";

    private static final Logger LOG = Logger.getLogger("dev.clnorm");
    private static Backend defaultBackend;
    private static boolean fallbackLogged;

    private Devices() {
    }

    /** Every OpenCL device found (possibly none). Never throws for a broken OpenCL installation. */
    public static List<ClDevice> openClDevices() {
        return OpenClDiscovery.scan().devices();
    }

    /** Why OpenCL devices are missing or incomplete, if anything went wrong. */
    public static List<String> openClProblems() {
        return OpenClDiscovery.scan().problems();
    }

    /** The Java backend's description followed by every OpenCL device's. */
    public static List<DeviceInfo> list() {
        List<DeviceInfo> all = new ArrayList<>();
        for (ClDevice d : openClDevices()) {
            all.add(d.info());
        }
        try (JavaBackend java = new JavaBackend()) {
            all.add(java.info());
        }
        return all;
    }

    /** Selector from the system property, else the environment, else "auto". */
    public static String configuredSelector() {
        String s = System.getProperty(PROPERTY);
        if (s == null || s.isBlank()) {
            s = System.getenv(ENVIRONMENT);
        }
        return s == null || s.isBlank() ? "auto" : s.trim();
    }

    /** Opens a new backend for the selector; the caller owns and closes it. */
    public static Backend open(String selector) {
        String s = selector.trim().toLowerCase(Locale.ROOT);
        switch (s) {
            case "auto": {
                Optional<ClDevice> best = best(openClDevices());
                if (best.isPresent()) {
                    return new OpenClBackend(best.get());
                }
                logFallbackOnce();
                return new JavaBackend();
            }
            case "java":
                return new JavaBackend();
            case "opencl":
                return new OpenClBackend(best(openClDevices()).orElseThrow(() -> noMatch(selector)));
            case "gpu":
                return new OpenClBackend(firstOfKind(DeviceInfo.Kind.GPU).orElseThrow(() -> noMatch(selector)));
            case "accelerator":
                return new OpenClBackend(firstOfKind(DeviceInfo.Kind.ACCELERATOR).orElseThrow(() -> noMatch(selector)));
            case "cpu":
                return new OpenClBackend(firstOfKind(DeviceInfo.Kind.CPU).orElseThrow(() -> noMatch(selector)));
            default:
                if (s.startsWith("opencl:")) {
                    return new OpenClBackend(byIndex(selector, s).orElseThrow(() -> noMatch(selector)));
                }
                throw new IllegalArgumentException("unknown device selector '" + selector + "'; use auto, java, opencl, "
                        + "gpu, accelerator, cpu or opencl:<platform>:<device>. " + available());
        }
    }

    /** Opens the configured backend ({@link #configuredSelector()}). */
    public static Backend openConfigured() {
        return open(configuredSelector());
    }

    /**
     * A process-wide backend for layers built without one: the configured selector, opened once.
     * Owned by this class and closed at JVM exit; do not close it yourself.
     */
    public static synchronized Backend defaultBackend() {
        if (defaultBackend == null || defaultBackend.isClosed()) {
            Backend b = openConfigured();
            defaultBackend = b;
            Runtime.getRuntime().addShutdownHook(new Thread(b::close, "clnorm-default-backend-close"));
        }
        return defaultBackend;
    }

    private static synchronized void logFallbackOnce() {
        if (fallbackLogged) {
            return;
        }
        fallbackLogged = true;
        LOG.warning("no OpenCL device available, using the pure-Java backend: "
                + String.join("; ", openClProblems()));
    }

    private static int preference(DeviceInfo.Kind kind) {
        return switch (kind) {
            case GPU -> 0;
            case ACCELERATOR -> 1;
            case CPU -> 2;
            case JAVA -> 3;
        };
    }

    private static Optional<ClDevice> best(List<ClDevice> devices) {
        return devices.stream().min(Comparator.comparingInt(d -> preference(d.info().kind())));
    }

    private static Optional<ClDevice> firstOfKind(DeviceInfo.Kind kind) {
        return openClDevices().stream().filter(d -> d.info().kind() == kind).findFirst();
    }

    private static Optional<ClDevice> byIndex(String selector, String s) {
        String[] parts = s.split(":");
        if (parts.length != 3) {
            throw new IllegalArgumentException("device selector '" + selector
                    + "' should look like opencl:<platform>:<device>, e.g. opencl:0:0. " + available());
        }
        int p;
        int d;
        try {
            p = Integer.parseInt(parts[1]);
            d = Integer.parseInt(parts[2]);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("device selector '" + selector
                    + "' should use numeric indices, e.g. opencl:0:0. " + available());
        }
        return openClDevices().stream().filter(c -> c.platformIndex() == p && c.deviceIndex() == d).findFirst();
    }

    private static IllegalArgumentException noMatch(String selector) {
        return new IllegalArgumentException("no device matches '" + selector + "'. " + available());
    }

    /** "Available devices: ..." with the OpenCL problems, for error messages. */
    static String available() {
        String devices = openClDevices().stream().map(d -> d.info().describe()).collect(Collectors.joining(", "));
        StringBuilder sb = new StringBuilder("Available devices: java [JAVA] pure-Java backend");
        if (!devices.isEmpty()) {
            sb.append(", ").append(devices);
        }
        if (!openClProblems().isEmpty()) {
            sb.append(". OpenCL: ").append(String.join("; ", openClProblems()));
        }
        return sb.toString();
    }
}
