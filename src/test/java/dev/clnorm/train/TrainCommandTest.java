package dev.clnorm.train;

import dev.clnorm.cli.Main;
import dev.clnorm.io.NpyArray;
import dev.clnorm.io.Npz;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** `clnorm train` end to end on tiny generated IDX files: output, chart and saved models. */
class TrainCommandTest {
    @TempDir
    Path dir;

    private static void writeSet(Path folder, String images, String labels, int n, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        byte[] x = new byte[n * 784];
        byte[] y = new byte[n];
        for (int i = 0; i < n; i++) {
            y[i] = (byte) r.nextInt(10);
            for (int p = 0; p < 784; p++) {
                // A bright band whose position is the class, over noise: learnable by a small MLP.
                boolean band = (p / 28) / 3 == y[i];
                x[i * 784 + p] = (byte) (band ? 200 + r.nextInt(56) : r.nextInt(60));
            }
        }
        IdxFile.write(folder.resolve(images + ".gz"), new int[]{n, 28, 28}, x, true);
        IdxFile.write(folder.resolve(labels + ".gz"), new int[]{n}, y, true);
    }

    private record Result(int code, String out, String err) {
    }

    private static Result run(String... args) {
        PrintStream out = System.out;
        PrintStream err = System.err;
        ByteArrayOutputStream o = new ByteArrayOutputStream();
        ByteArrayOutputStream e = new ByteArrayOutputStream();
        try {
            System.setOut(new PrintStream(o, true, StandardCharsets.UTF_8));
            System.setErr(new PrintStream(e, true, StandardCharsets.UTF_8));
            int code = Main.run(args);
            return new Result(code, o.toString(StandardCharsets.UTF_8), e.toString(StandardCharsets.UTF_8));
        } finally {
            System.setOut(out);
            System.setErr(err);
        }
    }

    @Test
    void trainsBothVariantsAndWritesChartAndModels() throws IOException {
        Path data = dir.resolve("data");
        Files.createDirectories(data);
        writeSet(data, FashionMnist.TRAIN_IMAGES, FashionMnist.TRAIN_LABELS, 320, 1);
        writeSet(data, FashionMnist.TEST_IMAGES, FashionMnist.TEST_LABELS, 100, 2);
        Path chart = dir.resolve("out/curves.png");
        Path save = dir.resolve("model.npz");
        Path csv = dir.resolve("curves.csv");
        Result r = run("train", "--data", data.toString(), "--epochs", "2", "--hidden", "32,16", "--batch", "32",
                "--lr", "0.01", "--device", "java", "--batch-norm", "both", "--loss-every", "3", "--eval-batch", "30",
                "--progress", "off", "--chart", chart.toString(), "--save", save.toString(),
                "--curve-csv", csv.toString());
        assertEquals(0, r.code(), r.out() + r.err());
        assertTrue(r.out().contains("MLP 784-32-16-10"), r.out());
        assertTrue(r.out().contains("Adam lr 0.01 (cosine decay to 0 over the run)"), "the default schedule\n" + r.out());
        for (String variant : new String[]{"[bn   ] epoch 1/2", "[bn   ] epoch 2/2", "[plain] epoch 2/2"}) {
            assertTrue(r.out().contains(variant), "missing '" + variant + "' in\n" + r.out());
        }
        assertTrue(r.out().contains("test acc"), r.out());

        BufferedImage png = ImageIO.read(chart.toFile());
        assertTrue(png.getWidth() > 1000 && png.getHeight() > 400, "chart " + png.getWidth() + "x" + png.getHeight());

        Map<String, NpyArray> bn = Npz.read(dir.resolve("model-bn.npz"));
        assertArrayEquals(new int[]{32, 784}, bn.get("fc1.weight").shape(), "PyTorch's (out, in)");
        assertTrue(!bn.containsKey("fc1.bias"), "no bias before batch norm");
        assertArrayEquals(new int[]{10}, bn.get("fc3.bias").shape());
        for (String k : new String[]{"bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var"}) {
            assertArrayEquals(new int[]{32}, bn.get(k).shape(), k);
            assertEquals(NpyArray.DType.FLOAT32, bn.get(k).dtype(), k);
        }
        // 320 / 32 = 10 steps per epoch, 2 epochs.
        assertEquals(NpyArray.DType.INT64, bn.get("bn2.num_batches_tracked").dtype());
        assertEquals(20L, bn.get("bn2.num_batches_tracked").toLongArray()[0]);
        float[] rv = bn.get("bn1.running_var").toFloatArray();
        assertTrue(rv[0] != 1.0f, "running statistics were saved after training, not the initial ones");

        Map<String, NpyArray> plain = Npz.read(dir.resolve("model-plain.npz"));
        assertArrayEquals(new int[]{32}, plain.get("fc1.bias").shape());
        assertTrue(!plain.containsKey("bn1.weight"));

        // 10 steps per epoch, a reading every 3 steps and at the epoch's end: 4 per epoch, 2 epochs, 2 variants.
        assertEquals(1 + 16, Files.readAllLines(csv).size());
        // The same run again is bit-identical on the Java backend; with every initial weight moved one ulp it is not.
        Result again = run("train", "--data", data.toString(), "--epochs", "2", "--hidden", "32,16", "--batch", "32",
                "--lr", "0.01", "--device", "java", "--batch-norm", "on", "--loss-every", "3", "--eval-batch", "30",
                "--progress", "off", "--compare-with", csv.toString());
        assertEquals(0, again.code(), again.err());
        String[] same = agreementRow(again.out());
        assertEquals("4 / 8", same[4], again.out());
        for (int c = 5; c < same.length; c++) {
            assertEquals("0.00e+00", same[c], "bit-identical rerun, column " + c + "\n" + again.out());
        }
        // Same --epochs as the saved run: the cosine schedule spans the whole run, so a shorter run decays faster.
        Result jittered = run("train", "--data", data.toString(), "--epochs", "2", "--hidden", "32,16", "--batch", "32",
                "--lr", "0.01", "--device", "java", "--batch-norm", "on", "--loss-every", "3", "--eval-batch", "30",
                "--progress", "off", "--compare-with", csv.toString(), "--jitter-ulps", "1");
        assertEquals(0, jittered.code(), jittered.err());
        assertTrue(jittered.out().contains("moved 1 float32 ulp"), jittered.out());
        String[] moved = agreementRow(jittered.out());
        assertEquals("4 / 8", moved[4], jittered.out());
        double drift = Double.parseDouble(moved[8]);  // epoch 1: max rel
        assertTrue(drift > 0 && drift < 1e-2, "a one-ulp nudge changes the curve a little: " + drift);
    }

    /** The cells of the "bn" row of the loss-curve agreement table. */
    private static String[] agreementRow(String out) {
        String table = out.substring(out.indexOf("Loss-curve agreement"));
        for (String line : table.split("\n")) {
            if (line.startsWith("bn ")) {
                return line.trim().split("\\s{2,}");
            }
        }
        throw new AssertionError("no agreement row for bn in\n" + out);
    }

    @Test
    void missingDataSaysHowToInstallIt() {
        Result r = run("train", "--data", dir.resolve("absent").toString(), "--device", "java", "--progress", "off");
        assertEquals(2, r.code());
        assertTrue(r.err().contains("sudo apt-get install dataset-fashion-mnist"), r.err());
    }

    @Test
    void badOptionsAreUsageErrors() {
        Result r = run("train", "--batch-norm", "maybe", "--data", dir.toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("--batch-norm must be on, off or both"), r.err());
        r = run("train", "--lr-schedule", "linear", "--data", dir.toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("--lr-schedule must be constant or cosine, got 'linear'"), r.err());
    }

    @Test
    void helpDescribesTheLearningRateSchedule() {
        Result r = run("train", "--help");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("--lr-schedule"), r.out());
        assertTrue(r.out().replaceAll("\\s+", " ").contains("(default cosine)"), r.out());
    }
}
