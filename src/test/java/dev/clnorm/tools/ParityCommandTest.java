package dev.clnorm.tools;

import dev.clnorm.Devices;
import dev.clnorm.TestBackends;
import dev.clnorm.bench.ParityRunner;
import dev.clnorm.cli.JsonReader;
import dev.clnorm.cli.ParityCommand;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code clnorm parity} end to end: exit 0 on an honest run with the tolerance printed and the JSON
 * and CSV written, exit 1 when a device's result is perturbed (through the command's test hook) with
 * the device and output named, exit 2 for every kind of bad argument before any work.
 */
class ParityCommandTest {

    /** What the command runs on without --devices: java and every OpenCL device (requires one under CI). */
    static List<String> defaultDevices() {
        TestBackends.all();  // fails under CLNORM_REQUIRE_OPENCL=1 when there is no OpenCL device
        List<String> ids = new java.util.ArrayList<>(List.of("java"));
        Devices.openClDevices().forEach(d -> ids.add(d.info().id()));
        return ids;
    }

    @Test
    void honestRunExitsZeroAndWritesJsonAndCsv(@TempDir Path dir) throws Exception {
        Path json = dir.resolve("parity.json");
        Path csv = dir.resolve("parity.csv");
        Cli.Result r = Cli.run("parity", "--shapes", "4x3x5,6x4", "--steps", "2", "--seed", "3", "--json",
                json.toString(), "--csv", csv.toString());
        assertEquals(0, r.code(), r::toString);
        assertTrue(r.out().contains("tolerance: |device - float64 reference| <= 2.0e-04"), r::toString);
        assertTrue(r.out().contains("PASS: every device is within tolerance"), r::toString);
        assertFalse(r.out().contains("FAIL"), r::toString);
        List<String> ids = defaultDevices();
        int devices = ids.size();
        for (String id : ids) {
            assertTrue(r.out().contains(id), () -> id + " missing\n" + r);
        }

        @SuppressWarnings("unchecked")
        Map<String, Object> doc = (Map<String, Object>) JsonReader.parse(Files.readString(json));
        assertEquals(Boolean.TRUE, doc.get("passed"));
        assertEquals(3.0, doc.get("seed"));
        assertEquals("float32", doc.get("dtype"));
        List<?> results = (List<?>) doc.get("results");
        assertEquals(2 * devices * ParityRunner.Output.values().length, results.size());
        for (Object o : results) {
            Map<?, ?> m = (Map<?, ?>) o;
            assertEquals(Boolean.TRUE, m.get("pass"), m::toString);
            assertTrue((Double) m.get("max_abs_err") < ParityRunner.TOLERANCE, m::toString);
            assertTrue(m.get("max_ulp") instanceof Double, m::toString);
        }
        assertEquals(2 * devices * (devices - 1) / 2 * ParityRunner.Output.values().length,
                ((List<?>) doc.get("pairs")).size());

        List<String> lines = Files.readAllLines(csv);
        assertTrue(lines.get(0).startsWith("shape,device,device_name,output,elements,max_abs_err,max_rel_err,max_ulp"));
        assertEquals(1 + results.size(), lines.size());
        assertTrue(lines.stream().skip(1).allMatch(l -> l.endsWith(",PASS")), lines::toString);
    }

    @ParameterizedTest
    @CsvSource({"float16, 2^-11", "bfloat16, 2^-8"})
    void sixteenBitStorageRunsAndSaysHowItIsJudged(String dtype, String step) {
        Cli.Result r = Cli.run("parity", "--shapes", "6x4x3", "--steps", "1", "--dtype", dtype, "--csv", "-");
        assertEquals(0, r.code(), r::toString);
        List<String> rows = r.out().lines().skip(1).toList();
        assertEquals(defaultDevices().size() * ParityRunner.Output.values().length, rows.size(), r::toString);
        assertTrue(rows.stream().allMatch(l -> l.endsWith(",PASS")), r::toString);
        assertTrue(rows.stream().filter(l -> l.contains(",y,") || l.contains(",dx,"))
                .allMatch(l -> l.contains("," + dtype + ",") && l.contains("|ref|*" + step)), r::toString);
    }

    @Test
    void jsonToStdoutReplacesTheTable() {
        Cli.Result r = Cli.run("parity", "--devices", "java", "--shapes", "6x4", "--steps", "1", "--json", "-");
        assertEquals(0, r.code(), r::toString);
        Map<?, ?> doc = (Map<?, ?>) JsonReader.parse(r.out());
        assertEquals(Boolean.TRUE, doc.get("passed"));
        assertEquals(ParityRunner.Output.values().length, ((List<?>) doc.get("results")).size());
    }

    @Test
    void perturbedDeviceExitsOneAndIsNamed() {
        List<String> ids = defaultDevices();
        String id = ids.get(ids.size() - 1);  // OpenCL when present
        ParityCommand cmd = new ParityCommand(run -> {
            if (run.deviceId().equals(id)) {
                run.outputs().get(ParityRunner.Output.Y)[5] += 1e-2f;
            }
        });
        Cli.Result r = Cli.run(cmd, "--shapes", "4x3x5", "--steps", "2");
        assertEquals(1, r.code(), r::toString);
        assertTrue(r.out().contains("FAIL 4x3x5 on " + id + ": y max |error| 1.00e-02 at index 5"), r::toString);
        assertTrue(r.out().contains("FAIL: 1 output(s) beyond tolerance."), r::toString);
        assertTrue(r.out().contains("tolerance: "), r::toString);
        // Only that device's y is marked FAIL in the table.
        long failRows = r.out().lines().filter(l -> l.endsWith("FAIL")).count();
        assertEquals(1, failRows, r::toString);
        assertTrue(r.out().lines().anyMatch(l -> l.startsWith("4x3x5") && l.contains(id) && l.contains(" y ")
                && l.endsWith("FAIL")), r::toString);
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', quoteCharacter = '`', value = {
            "--devices nosuch                 | unknown device selector 'nosuch'",
            "--devices opencl:9:9             | no device matches 'opencl:9:9'",
            "--shapes 4xq                     | non-numeric dimension",
            "--shapes 4                       | needs at least two dimensions",
            "--shapes 1x5                     | more than 1 value per channel",
            "--shapes 2x2x2x2x2x2             | rank 2 to 5",
            "--shapes 0x3                     | non-positive dimension",
            "--dtype float64                  | supported storage types: float32, float16, bfloat16",
            "--dtype int8                     | --dtype int8 is not supported",
            "--layout nhcw                    | --layout must be nchw or nhwc",
            "--steps 0                        | --steps must be >= 1",
            "--seed abc                       | Invalid value for option '--seed'",
            "--bogus                          | Unknown option: '--bogus'",
    })
    void badArgumentsExitTwoBeforeAnyWork(String args, String message) {
        String[] argv = ("parity " + args.trim()).split("\\s+");
        Cli.Result r = Cli.run(argv);
        assertEquals(2, r.code(), r::toString);
        assertTrue(r.err().contains(message), r::toString);
        assertFalse(r.out().contains("PASS") || r.out().contains("max abs err"), r::toString);
    }
}
