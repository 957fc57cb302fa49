package dev.clnorm.tools;

import dev.clnorm.cli.JsonReader;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * {@code clnorm bench}'s additions on tiny shapes: {@code --compare} against a hand-made
 * bench-torch.py-style JSON fixture (rows matched by shape and op, ratio = other / clnorm median),
 * {@code --chart} (a PNG with one panel per op and each device's colour drawn), the launch-latency
 * section for tiny shapes, and argument errors (exit 2 before any benchmarking).
 */
class BenchToolsTest {
    /** The chart's colours for the first and second device (BenchChart.COLORS). */
    private static final int BLUE = 0x1f77b4;
    private static final int RED = 0xd62728;

    private static final String FIXTURE = """
            {
              "tool": "scripts/bench-torch.py",
              "torch_version": "2.13.0 (hand-made fixture)",
              "results": [
                {"device": "torch-cuda:0", "device_name": "Fixture GPU", "shape": [4, 8], "layout": "CHANNELS_FIRST",
                 "op": "train_forward", "elements": 32, "median_ms": 2.0, "p10_ms": 1.9, "p90_ms": 2.2,
                 "kernel_median_ms": 1.5, "gbps": 0.000192},
                {"device": "torch-cuda:0", "device_name": "Fixture GPU", "shape": "4x8", "op": "backward",
                 "elements": 32, "median_ms": 3.0, "p10_ms": 2.9, "p90_ms": 3.1},
                {"device": "torch-cuda:0", "device_name": "Fixture GPU", "shape": [9, 9], "layout": "CHANNELS_FIRST",
                 "op": "inference", "elements": 81, "median_ms": 1.0, "gbps": 0.000648}
              ]
            }
            """;

    @Test
    void compareMatchesShapeAndOpAndPrintsTheRatio(@TempDir Path dir) throws Exception {
        Path fixture = dir.resolve("torch.json");
        Files.writeString(fixture, FIXTURE);
        Path json = dir.resolve("bench.json");
        Cli.Result r = Cli.run("bench", "--devices", "java", "--shapes", "4x8", "--ops", "train_forward,backward",
                "--warmup", "0", "--warmup-seconds", "0", "--repeats", "3", "--json", json.toString(), "--compare", fixture.toString());
        assertEquals(0, r.code(), r::toString);
        assertTrue(r.out().contains("Comparison with " + fixture), r::toString);

        Map<?, ?> doc = (Map<?, ?>) JsonReader.parse(Files.readString(json));
        for (Object o : (List<?>) doc.get("results")) {
            Map<?, ?> m = (Map<?, ?>) o;
            String op = (String) m.get("op");
            if (op.equals("copy")) {
                continue;
            }
            double ours = (Double) m.get("median_ms");
            double theirs = op.equals("train_forward") ? 2.0 : 3.0;
            String row = r.out().lines().filter(l -> l.startsWith("4x8") && l.contains(" " + op + " ")
                    && l.contains("torch-cuda:0")).findFirst().orElseThrow(() -> new AssertionError(op + " row\n" + r));
            String[] cells = row.trim().split("\\s+");
            // shape, op, clnorm device, clnorm ms, clnorm GB/s, other device, other ms, other GB/s, ratio
            assertEquals(9, cells.length, row);
            assertEquals("java", cells[2], row);
            assertEquals(String.format(Locale.ROOT, "%.3f", theirs), cells[6], row);
            double ratio = Double.parseDouble(cells[8]);
            assertEquals(theirs / ours, ratio, 0.01 * ratio + 0.006, row);
        }
        assertTrue(r.out().contains("torch-cuda:0 9x9 CHANNELS_FIRST inference has no counterpart in this run"),
                r::toString);
    }

    @Test
    void badCompareFilesExitTwoBeforeBenchmarking(@TempDir Path dir) throws Exception {
        Path missing = dir.resolve("missing.json");
        Path truncated = dir.resolve("truncated.json");
        Files.writeString(truncated, "{\"results\": [");
        Path noMedian = dir.resolve("nomedian.json");
        Files.writeString(noMedian, "{\"results\": [{\"device\": \"d\", \"shape\": [4, 8], \"op\": \"backward\"}]}");
        Path badOp = dir.resolve("badop.json");
        Files.writeString(badOp, "[{\"device\": \"d\", \"shape\": [4, 8], \"op\": \"forward\", \"median_ms\": 1}]");
        Path wrongCount = dir.resolve("count.json");
        Files.writeString(wrongCount, "[{\"device\": \"d\", \"shape\": [4, 8], \"op\": \"backward\", \"median_ms\": 1, "
                + "\"elements\": 33}]");
        Object[][] cases = {
                {missing, "cannot read " + missing},
                {truncated, "invalid JSON at line 1, column 14"},
                {noMedian, "results[0] has no \"median_ms\""},
                {badOp, "unknown operation 'forward'"},
                {wrongCount, "elements 33 does not match shape 4x8 (32)"},
        };
        for (Object[] c : cases) {
            Cli.Result r = Cli.run("bench", "--devices", "java", "--shapes", "4x8", "--warmup", "0", "--warmup-seconds", "0", "--repeats", "1",
                    "--compare", c[0].toString());
            assertEquals(2, r.code(), r::toString);
            assertTrue(r.err().contains((String) c[1]), r::toString);
            assertFalse(r.out().contains("median ms"), () -> "benchmarked before failing\n" + r);
        }
    }

    @Test
    void chartDrawsOnePanelPerOpWithEveryDevice(@TempDir Path dir) throws Exception {
        Path png = dir.resolve("bench.png");
        Cli.Result r = Cli.run("bench", "--shapes", "4x8,16x32", "--warmup", "0", "--warmup-seconds", "0", "--repeats", "2", "--chart",
                png.toString());
        assertEquals(0, r.code(), r::toString);
        assertTrue(r.out().contains("chart written to " + png), r::toString);
        BufferedImage img = ImageIO.read(png.toFile());
        assertNotNull(img, "not a readable PNG");
        assertEquals(1800, img.getWidth());  // 2 panels of 900 across
        assertTrue(img.getHeight() > 2 * 520, "4 ops give 2 rows of panels, got height " + img.getHeight());
        Set<Integer> colours = new HashSet<>();
        for (int y = 0; y < img.getHeight(); y += 2) {
            for (int x = 0; x < img.getWidth(); x += 2) {
                colours.add(img.getRGB(x, y) & 0xffffff);
            }
        }
        assertTrue(colours.contains(BLUE), "the first device's series is missing");
        if (ParityCommandTest.defaultDevices().size() > 1) {
            assertTrue(colours.contains(RED), "the second device's series is missing");
        }
    }

    @Test
    void chartOnlyWithAPngName(@TempDir Path dir) {
        Cli.Result r = Cli.run("bench", "--devices", "java", "--shapes", "4x8", "--chart", dir.resolve("c.jpg").toString());
        assertEquals(2, r.code(), r::toString);
        assertTrue(r.err().contains("give a file name ending in .png"), r::toString);
        assertFalse(Files.exists(dir.resolve("c.jpg")));
        Cli.Result missing = Cli.run("bench", "--devices", "java", "--shapes", "4x8", "--chart",
                dir.resolve("no/such/dir/c.png").toString());
        assertEquals(2, missing.code(), missing::toString);
        assertTrue(missing.err().contains("does not exist"), missing::toString);
        assertFalse(missing.out().contains("median ms"), () -> "benchmarked before failing\n" + missing);
    }

    @Test
    void tinyShapesReportLaunchLatencyMeasuredInTheSameRun(@TempDir Path dir) throws Exception {
        Path json = dir.resolve("bench.json");
        Cli.Result r = Cli.run("bench", "--shapes", "32x64", "--ops", "train_step,forward_floor,backward_floor", "--warmup", "1",
                "--warmup-seconds", "0", "--repeats", "3", "--json", json.toString());
        assertEquals(0, r.code(), r::toString);
        assertTrue(r.out().contains("Launch overhead (shapes of at most 16384 elements)"), r::toString);
        String latencyTable = r.out().substring(r.out().indexOf("Launch overhead"));
        assertFalse(latencyTable.contains("_floor"), () -> "the floors are yardsticks, not batch norm\n" + r);
        Map<?, ?> doc = (Map<?, ?>) JsonReader.parse(Files.readString(json));
        List<?> latency = (List<?>) doc.get("launch_latency");
        assertEquals(ParityCommandTest.defaultDevices().size(), latency.size(), latency::toString);
        for (Object o : latency) {
            Map<?, ?> m = (Map<?, ?>) o;
            double median = (Double) m.get("median_ms");
            assertTrue(median > 0 && median < 1000, m::toString);
            String device = (String) m.get("device");
            assertTrue(((String) m.get("what")).contains(device.equals("java") ? "ForkJoinPool" : "empty OpenCL kernel"),
                    m::toString);
            String row = r.out().lines().filter(l -> l.startsWith(device + " ") && l.contains("32x64")
                            && l.contains("train_step") && l.split("\\s+").length == 8).findFirst()
                    .orElseThrow(() -> new AssertionError("no latency row for " + device + "\n" + r));
            double launches = Double.parseDouble(row.trim().split("\\s+")[4]);
            assertTrue(launches >= 2, "a training step is a forward and a backward: " + row);
        }
        for (Object o : (List<?>) doc.get("results")) {
            Map<?, ?> m = (Map<?, ?>) o;
            if (m.get("op").equals("train_step")) {
                assertTrue((Double) m.get("launches_per_call") >= 2, m::toString);
            }
        }
    }

    @Test
    void largerShapesHaveNoLatencySection() {
        Cli.Result r = Cli.run("bench", "--devices", "java", "--shapes", "64x512", "--ops", "inference", "--warmup", "0",
                "--repeats", "1");
        assertEquals(0, r.code(), r::toString);
        assertFalse(r.out().contains("Launch overhead"), r::toString);
        if (!r.out().contains("64x512")) {
            fail("no result row\n" + r);
        }
    }

    @Test
    void warmUpRunsForTheRequestedTimeBeforeTiming() {
        try (dev.clnorm.backend.java.JavaBackend backend = new dev.clnorm.backend.java.JavaBackend(1)) {
            dev.clnorm.bench.BenchRunner runner = new dev.clnorm.bench.BenchRunner(0, 1, 0.3);
            long launches = backend.kernelLaunches();
            long t0 = System.nanoTime();
            runner.run(backend, new int[]{4, 8}, dev.clnorm.Layout.CHANNELS_FIRST,
                    java.util.EnumSet.of(dev.clnorm.bench.Op.INFERENCE), msg -> { });
            double seconds = (System.nanoTime() - t0) / 1e9;
            // Copy and inference each warm up for 0.3 s; a 4x8 inference takes microseconds, so that is
            // thousands of untimed launches, against the 1 timed call a run without warm-up makes.
            assertTrue(seconds >= 0.6, "took " + seconds + " s");
            assertTrue(backend.kernelLaunches() - launches > 100, (backend.kernelLaunches() - launches) + " launches");
        }
    }
}
