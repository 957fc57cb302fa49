package dev.clnorm.io;

import dev.clnorm.Geometry;
import dev.clnorm.Layout;
import dev.clnorm.ReferenceBatchNorm;
import dev.clnorm.TestBackends;
import dev.clnorm.backend.Backend;
import dev.clnorm.cli.Main;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * {@code clnorm run} through {@link Main#run}: train / eval / backward on every device, both layouts,
 * each convention's running-statistics rule, inputs in float16/float32/float64, every output file
 * compared with the float64 {@link ReferenceBatchNorm} within 2e-4 absolute for float32 results
 * (PyTorch's float32-vs-float64 module bound; values here are O(1..10) and sums over <= 90 terms)
 * and 1e-11 for float64 results (float64 input under --dtype auto: about 1e5 times the rounding of
 * such sums, 1e-16 relative per term); and bad input: exit code 2 with a
 * single {@code clnorm: } line naming the problem and no stack trace unless --verbose.
 */
class RunCommandTest {
    private static final double TOL = 2e-4;
    private static final double TOL64 = 1e-11;

    private record Result(int code, String out, String err) {
    }

    private static synchronized Result run(String... args) {
        PrintStream oldOut = System.out;
        PrintStream oldErr = System.err;
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        try {
            System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
            System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
            int code = Main.run(args);
            return new Result(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
        } finally {
            System.setOut(oldOut);
            System.setErr(oldErr);
        }
    }

    /** One scenario: mode, convention, layout, input shape, input dtype, which optional files to pass. */
    private record Case(String mode, String convention, String layout, int[] shape, NpyArray.DType dtype,
                        boolean withParams, String precision) {
        Case(String mode, String convention, String layout, int[] shape, NpyArray.DType dtype, boolean withParams) {
            this(mode, convention, layout, shape, dtype, withParams, null);
        }

        /** What the outputs must be: float64 for float64 input under --dtype auto (every test device has fp64). */
        NpyArray.DType outputType() {
            boolean wide = "float64".equals(precision) || (precision == null && dtype == NpyArray.DType.FLOAT64);
            return wide ? NpyArray.DType.FLOAT64 : NpyArray.DType.FLOAT32;
        }

        @Override
        public String toString() {
            return mode + " " + convention + " " + layout + " " + NpyArray.shapeString(shape) + " " + dtype
                    + (withParams ? "" : " defaults") + (precision == null ? "" : " --dtype " + precision);
        }
    }

    static Stream<Arguments> cases() {
        List<Case> scenarios = List.of(
                new Case("train", "pytorch", "nchw", new int[]{6, 4, 5, 3}, NpyArray.DType.FLOAT32, true),
                new Case("eval", "pytorch", "nchw", new int[]{6, 4, 5, 3}, NpyArray.DType.FLOAT32, true),
                new Case("backward", "pytorch", "nchw", new int[]{6, 4, 5, 3}, NpyArray.DType.FLOAT32, true),
                new Case("backward", "keras", "nhwc", new int[]{5, 3, 6, 4}, NpyArray.DType.FLOAT16, true),
                new Case("train", "onnx", "nchw", new int[]{30, 4}, NpyArray.DType.FLOAT64, false),
                new Case("backward", "pytorch", "nhwc", new int[]{4, 3, 5, 6}, NpyArray.DType.FLOAT64, true),
                new Case("backward", "pytorch", "nchw", new int[]{4, 3, 5}, NpyArray.DType.FLOAT64, true, "float32"),
                new Case("eval", "keras", "nchw", new int[]{4, 3, 5}, NpyArray.DType.FLOAT32, true, "float64"),
                new Case("eval", "cudnn", "nhwc", new int[]{3, 7, 4}, NpyArray.DType.FLOAT32, false));
        List<Arguments> list = new ArrayList<>();
        for (Backend b : TestBackends.all()) {
            for (Case c : scenarios) {
                list.add(Arguments.of(b.info().id(), c));
            }
        }
        return list.stream();
    }

    private static float[] values(int n, Random r, double mean, double std) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (mean + std * r.nextGaussian());
        }
        return v;
    }

    private static double[] asDouble(NpyArray a) {
        return a.toDoubleArray();
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("cases")
    void outputsMatchTheFloat64Reference(String device, Case k, @TempDir Path dir) throws Exception {
        Layout layout = k.layout().equals("nhwc") ? Layout.CHANNELS_LAST : Layout.CHANNELS_FIRST;
        Geometry g = Geometry.of(k.shape(), layout);
        int c = g.channels();
        int n = (int) g.elements();
        Random r = new Random(Arrays.hashCode(k.shape()) + k.mode().hashCode());
        // x per channel: mean and spread differ (channel of element i is (i / inner) % C in this geometry).
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            int ch = (int) ((i / g.inner()) % c);
            x[i] = (float) (ch - 1.5 + (0.5 + 0.4 * ch) * r.nextGaussian());
        }
        NpyArray xa = NpyArray.of(k.dtype(), x, k.shape());
        if (k.dtype() == NpyArray.DType.FLOAT64) {
            // Values that float32 cannot hold, so a float64 computation must keep the extra digits.
            double[] wide = new double[n];
            for (int i = 0; i < n; i++) {
                wide[i] = x[i] + 1e-10 * (i % 13);
            }
            xa = NpyArray.ofFloat64(wide, k.shape());
        }
        Npy.write(dir.resolve("x.npy"), xa);
        // The values the device sees: rounded to float32 when the computation is float32.
        double[] xd = k.outputType() == NpyArray.DType.FLOAT64 ? xa.toDoubleArray()
                : ReferenceBatchNorm.toDouble(xa.toFloatArray());

        double[] gamma = new double[c];
        double[] beta = new double[c];
        double[] rm = new double[c];
        double[] rv = new double[c];
        Arrays.fill(gamma, 1);
        Arrays.fill(rv, 1);
        List<String> args = new ArrayList<>(List.of("run", "--mode", k.mode(), "--x", dir.resolve("x.npy").toString(),
                "--convention", k.convention(), "--layout", k.layout(), "--device", device,
                "--out", dir.resolve("out").toString()));
        if (k.precision() != null) {
            args.add("--dtype");
            args.add(k.precision());
        }
        if (k.withParams()) {
            gamma = ReferenceBatchNorm.toDouble(values(c, r, 1, 0.3));
            beta = ReferenceBatchNorm.toDouble(values(c, r, 0, 1));
            rm = ReferenceBatchNorm.toDouble(values(c, r, 0, 1));
            float[] v = values(c, r, 0, 1);
            for (int i = 0; i < c; i++) {
                v[i] = Math.abs(v[i]) + 0.5f;
            }
            rv = ReferenceBatchNorm.toDouble(v);
            writeVector(dir, "g", gamma, args, "--gamma");
            writeVector(dir, "b", beta, args, "--beta");
            writeVector(dir, "m", rm, args, "--running-mean");
            writeVector(dir, "v", rv, args, "--running-var");
        }
        double[] dyd = null;
        if (k.mode().equals("backward")) {
            NpyArray dya = NpyArray.of(k.dtype(), values(n, r, 0, 1), k.shape());
            Npy.write(dir.resolve("dy.npy"), dya);
            dyd = k.outputType() == NpyArray.DType.FLOAT64 ? dya.toDoubleArray()
                    : ReferenceBatchNorm.toDouble(dya.toFloatArray());
            args.add("--dy");
            args.add(dir.resolve("dy.npy").toString());
        }

        Result res = run(args.toArray(new String[0]));
        assertEquals(0, res.code(), res.err());
        assertEquals("", res.err());
        assertTrue(res.out().contains("device " + device), res.out());
        String computed = k.outputType() == NpyArray.DType.FLOAT64 ? "float64" : "float32";
        assertTrue(res.out().contains("computed in " + computed), res.out());
        NpyArray.DType type = k.outputType();

        double eps = switch (k.convention()) {
            case "keras" -> 1e-3;
            default -> 1e-5;
        };
        // The layer's momentum (weight of the new batch) and which variance feeds running_var.
        double f = switch (k.convention()) {
            case "keras" -> 1 - 0.99;
            case "onnx" -> 1 - 0.9;
            default -> 0.1;
        };
        boolean biased = k.convention().equals("keras") || k.convention().equals("onnx");

        Path out = dir.resolve("out");
        Set<String> expectedFiles = new TreeSet<>();
        if (k.mode().equals("eval")) {
            expectedFiles.add("y.npy");
            check(out, type, "y", k.shape(), ReferenceBatchNorm.inference(xd, g, rm, rv, gamma, beta, eps));
        } else {
            expectedFiles.addAll(List.of("y.npy", "batch_mean.npy", "batch_var.npy", "running_mean.npy",
                    "running_var.npy"));
            ReferenceBatchNorm.Stats s = ReferenceBatchNorm.stats(xd, g);
            check(out, type, "y", k.shape(), ReferenceBatchNorm.normalize(xd, g, s.mean(), s.var(), gamma, beta, eps));
            check(out, type, "batch_mean", new int[]{c}, s.mean());
            check(out, type, "batch_var", new int[]{c}, s.var());
            double[] em = new double[c];
            double[] ev = new double[c];
            for (int i = 0; i < c; i++) {
                em[i] = (1 - f) * rm[i] + f * s.mean()[i];
                ev[i] = (1 - f) * rv[i] + f * (biased ? s.var()[i] : s.unbiasedVar()[i]);
            }
            check(out, type, "running_mean", new int[]{c}, em);
            check(out, type, "running_var", new int[]{c}, ev);
            if (k.mode().equals("backward")) {
                expectedFiles.addAll(List.of("dx.npy", "dgamma.npy", "dbeta.npy"));
                ReferenceBatchNorm.Grads gr = ReferenceBatchNorm.backward(xd, dyd, g, gamma, eps);
                check(out, type, "dx", k.shape(), gr.dx());
                check(out, type, "dgamma", new int[]{c}, gr.dgamma());
                check(out, type, "dbeta", new int[]{c}, gr.dbeta());
            }
        }
        try (Stream<Path> files = Files.list(out)) {
            assertEquals(expectedFiles, files.map(p -> p.getFileName().toString()).collect(Collectors.toCollection(TreeSet::new)));
        }
    }

    private static void writeVector(Path dir, String name, double[] v, List<String> args, String option)
            throws Exception {
        float[] f = new float[v.length];
        for (int i = 0; i < v.length; i++) {
            f[i] = (float) v[i];
        }
        Npy.write(dir.resolve(name + ".npy"), NpyArray.ofFloat32(f, f.length));
        args.add(option);
        args.add(dir.resolve(name + ".npy").toString());
    }

    private static void check(Path out, NpyArray.DType type, String name, int[] shape, double[] expected)
            throws Exception {
        NpyArray a = Npy.read(out.resolve(name + ".npy"));
        assertEquals(type, a.dtype(), name);
        assertArrayEquals(shape, a.shape(), name);
        double tol = type == NpyArray.DType.FLOAT64 ? TOL64 : TOL;
        double[] got = asDouble(a);
        for (int i = 0; i < expected.length; i++) {
            double err = Math.abs(expected[i] - got[i]);
            if (!(err <= tol)) {
                fail(name + "[" + i + "]: expected " + expected[i] + ", got " + got[i] + " (|error| " + err + " > " + tol + ")");
            }
        }
    }

    // ------------------------------------------------------------------------------------ bad input

    private static void assertOneLineError(Result r, String... fragments) {
        assertEquals(2, r.code(), "exit code; stderr: " + r.err());
        String[] lines = r.err().split("\\R");
        assertEquals(1, lines.length, "exactly one line on stderr: " + r.err());
        assertTrue(lines[0].startsWith("clnorm: "), lines[0]);
        for (String f : fragments) {
            assertTrue(lines[0].contains(f), "'" + f + "' in: " + lines[0]);
        }
        assertFalse(r.err().contains("Exception") || r.err().contains("\tat "), "no stack trace: " + r.err());
    }

    private static String[] cmd(Path dir, String... extra) {
        List<String> a = new ArrayList<>(List.of("run", "--device", "java", "--out", dir.resolve("out").toString()));
        a.addAll(List.of(extra));
        return a.toArray(new String[0]);
    }

    @Test
    void badInputIsOneLineAndExitCode2(@TempDir Path dir) throws Exception {
        float[] x = new float[2 * 3 * 4];
        for (int i = 0; i < x.length; i++) {
            x[i] = i % 7;
        }
        Path xf = dir.resolve("x.npy");
        Npy.write(xf, NpyArray.ofFloat32(x, 2, 3, 4));
        Path g4 = dir.resolve("g4.npy");
        Npy.write(g4, NpyArray.ofFloat32(new float[]{1, 1, 1, 1}, 4));
        Path missing = dir.resolve("nope.npy");
        Path truncated = dir.resolve("trunc.npy");
        byte[] full = Files.readAllBytes(xf);
        Files.write(truncated, Arrays.copyOf(full, full.length - 5));
        Path ints = dir.resolve("ints.npy");
        Npy.write(ints, NpyArray.ofInt64(new long[24], 2, 3, 4));
        Path dyBad = dir.resolve("dy.npy");
        Npy.write(dyBad, NpyArray.ofFloat32(new float[6], 2, 3));
        Path fortran = dir.resolve("f.npy");
        Files.write(fortran, IoTestFiles.resource("f32_fortran.npy"));

        assertOneLineError(run(cmd(dir, "--mode", "train", "--x", missing.toString())), missing.toString(),
                "no such file");
        assertOneLineError(run(cmd(dir, "--mode", "train", "--x", xf.toString(), "--gamma", g4.toString())),
                g4.toString(), "has shape (4,), expected (3,)");
        assertOneLineError(run(cmd(dir, "--mode", "eval", "--x", truncated.toString())), truncated.toString(),
                "truncated", "needs 96 bytes of data, the file has 91");
        assertOneLineError(run(cmd(dir, "--mode", "train", "--x", ints.toString())), "dtype int64 is not supported");
        assertOneLineError(run(cmd(dir, "--mode", "backward", "--x", xf.toString(), "--dy", dyBad.toString())),
                "has shape (2, 3), expected the shape of x (2, 3, 4)");
        assertOneLineError(run(cmd(dir, "--mode", "backward", "--x", xf.toString())), "needs --dy");
        assertOneLineError(run(cmd(dir, "--mode", "train", "--x", fortran.toString())), "Fortran");
        // An option value picocli rejects: exit 2, the reason first (picocli adds the usage after it).
        Result badType = run(cmd(dir, "--mode", "train", "--x", xf.toString(), "--dtype", "float16"));
        assertEquals(2, badType.code(), badType.err());
        assertTrue(badType.err().startsWith("Invalid value for option '--dtype': 'float16' is not one of auto, "
                + "float32, float64"), badType.err());
        Path outFile = dir.resolve("taken");
        Files.write(outFile, new byte[]{1});
        assertOneLineError(run("run", "--device", "java", "--mode", "eval", "--x", xf.toString(), "--out",
                outFile.toString()), "taken", "not a directory");
        assertFalse(Files.exists(dir.resolve("out").resolve("y.npy")), "no output written for bad input");
        // The layout picks the channel axis: channels-last makes C = 4, and the (4,) gamma fits.
        Result nhwc = run(cmd(dir, "--mode", "train", "--x", xf.toString(), "--layout", "nhwc", "--gamma", g4.toString()));
        assertEquals(0, nhwc.code(), nhwc.err());
        assertArrayEquals(new int[]{4}, Npy.read(dir.resolve("out").resolve("batch_mean.npy")).shape());
        Npy.write(dir.resolve("one.npy"), NpyArray.ofFloat32(new float[3], 1, 3));
        assertOneLineError(run(cmd(dir, "--mode", "train", "--x", dir.resolve("one.npy").toString())),
                "Expected more than 1 value per channel when training");

        Result verbose = run(cmd(dir, "--mode", "train", "--x", missing.toString(), "--verbose"));
        assertEquals(2, verbose.code());
        assertTrue(verbose.err().startsWith("clnorm: "), verbose.err());
        assertTrue(verbose.err().contains("\tat "), "--verbose prints the stack trace");
    }
}
