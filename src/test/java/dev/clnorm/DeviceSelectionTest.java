package dev.clnorm;

import dev.clnorm.backend.Backend;
import dev.clnorm.backend.DeviceInfo;
import dev.clnorm.backend.java.JavaBackend;
import dev.clnorm.backend.opencl.ClDevice;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class DeviceSelectionTest {

    @Test
    void javaSelectorOpensTheJavaBackend() {
        try (Backend b = Devices.open("java")) {
            assertInstanceOf(JavaBackend.class, b);
            assertEquals(DeviceInfo.Kind.JAVA, b.info().kind());
        }
    }

    @Test
    void unknownSelectorListsWhatExists() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Devices.open("tpu"));
        assertTrue(e.getMessage().contains("unknown device selector 'tpu'"), e.getMessage());
        assertTrue(e.getMessage().contains("Available devices: java"), e.getMessage());
        for (ClDevice d : Devices.openClDevices()) {
            assertTrue(e.getMessage().contains(d.info().id()), e.getMessage());
        }
    }

    @Test
    void missingDeviceIndexIsAClearError() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Devices.open("opencl:97:3"));
        assertTrue(e.getMessage().contains("no device matches 'opencl:97:3'"), e.getMessage());
        assertTrue(e.getMessage().contains("Available devices"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Devices.open("opencl:x:0"));
        assertThrows(IllegalArgumentException.class, () -> Devices.open("opencl:0"));
    }

    @Test
    void autoPrefersGpuThenAcceleratorThenCpuThenJava() {
        List<ClDevice> devices = Devices.openClDevices();
        DeviceInfo.Kind expected = DeviceInfo.Kind.JAVA;
        for (DeviceInfo.Kind k : new DeviceInfo.Kind[]{DeviceInfo.Kind.CPU, DeviceInfo.Kind.ACCELERATOR,
                DeviceInfo.Kind.GPU}) {
            if (devices.stream().anyMatch(d -> d.info().kind() == k)) {
                expected = k;
            }
        }
        try (Backend b = Devices.open("auto")) {
            assertEquals(expected, b.info().kind());
        }
    }

    @Test
    void kindSelectorsOpenAMatchingDeviceOrListTheDevices() {
        for (String selector : new String[]{"gpu", "cpu", "accelerator"}) {
            DeviceInfo.Kind kind = DeviceInfo.Kind.valueOf(selector.toUpperCase());
            boolean present = Devices.openClDevices().stream().anyMatch(d -> d.info().kind() == kind);
            if (present) {
                try (Backend b = Devices.open(selector)) {
                    assertEquals(kind, b.info().kind());
                }
            } else {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Devices.open(selector));
                assertTrue(e.getMessage().contains("Available devices"), e.getMessage());
            }
        }
    }

    @Test
    void exactIndexSelectsThatDevice() {
        for (ClDevice d : Devices.openClDevices()) {
            try (Backend b = Devices.open(d.info().id())) {
                assertEquals(d.info().id(), b.info().id());
                assertEquals(d.info().name(), b.info().name());
            }
        }
    }

    @Test
    void systemPropertyOverridesTheDefault() {
        String old = System.getProperty(Devices.PROPERTY);
        try {
            System.setProperty(Devices.PROPERTY, "java");
            assertEquals("java", Devices.configuredSelector());
            try (Backend b = Devices.openConfigured()) {
                assertEquals(DeviceInfo.Kind.JAVA, b.info().kind());
            }
        } finally {
            if (old == null) {
                System.clearProperty(Devices.PROPERTY);
            } else {
                System.setProperty(Devices.PROPERTY, old);
            }
        }
    }

    @Test
    void listingAlwaysIncludesTheJavaBackendAndEveryOpenClDevice() {
        List<DeviceInfo> all = Devices.list();
        assertTrue(all.stream().anyMatch(d -> d.kind() == DeviceInfo.Kind.JAVA));
        assertEquals(Devices.openClDevices().size() + 1, all.size());
    }
}
