package dev.clnorm.peers;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.DynamicCustomOp;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.nativeblas.NativeOpsHolder;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.stream.Collectors;

/**
 * nd4j's libnd4j custom ops, channel axis 1: {@code batchnorm} (inference with the given mean and
 * variance; with the onednn build it runs as a oneDNN batch_normalization primitive where libnd4j's
 * platform check accepts the shape), training forward as {@code moments} (batch mean and biased
 * variance, a libnd4j reduction) followed by {@code batchnorm} with those statistics, and
 * {@code batchnorm_bp} (dx, dgamma, dbeta from the batch statistics of the forward). All outputs are
 * allocated once and reused.
 */
final class Nd4jPeer {
    private final INDArray x;
    private final INDArray dy;
    private final INDArray gamma;
    private final INDArray beta;
    private final INDArray runningMean;
    private final INDArray runningVar;
    private final INDArray y;
    private final INDArray batchMean;
    private final INDArray batchVar;
    private final INDArray dx;
    private final INDArray dMean;
    private final INDArray dVar;
    private final INDArray dGamma;
    private final INDArray dBeta;
    private final int[] reduceAxes;
    private final double eps;

    Nd4jPeer(int[] shape, float[] xData, float[] dyData, float[] g, float[] b, float[] mean, float[] var, float eps) {
        long[] s = Arrays.stream(shape).asLongStream().toArray();
        int c = shape[1];
        x = Nd4j.create(xData, s, 'c');
        dy = Nd4j.create(dyData, s, 'c');
        gamma = Nd4j.create(g, new long[]{c}, 'c');
        beta = Nd4j.create(b, new long[]{c}, 'c');
        runningMean = Nd4j.create(mean, new long[]{c}, 'c');
        runningVar = Nd4j.create(var, new long[]{c}, 'c');
        y = Nd4j.create(DataType.FLOAT, s, 'c');
        dx = Nd4j.create(DataType.FLOAT, s, 'c');
        batchMean = Nd4j.create(DataType.FLOAT, c);
        batchVar = Nd4j.create(DataType.FLOAT, c);
        dMean = Nd4j.create(DataType.FLOAT, c);
        dVar = Nd4j.create(DataType.FLOAT, c);
        dGamma = Nd4j.create(DataType.FLOAT, c);
        dBeta = Nd4j.create(DataType.FLOAT, c);
        reduceAxes = new int[shape.length - 1];
        reduceAxes[0] = 0;
        for (int i = 2; i < shape.length; i++) {
            reduceAxes[i - 1] = i;
        }
        this.eps = eps;
    }

    private void normalize(INDArray mean, INDArray var) {
        Nd4j.exec(DynamicCustomOp.builder("batchnorm")
                .addInputs(x, mean, var, gamma, beta)
                .addOutputs(y)
                .addIntegerArguments(1, 1, 1)          // applyScale, applyOffset, channel axis 1
                .addFloatingPointArguments(eps)
                .build());
    }

    void inference() {
        normalize(runningMean, runningVar);
    }

    void trainingForward() {
        Nd4j.exec(DynamicCustomOp.builder("moments")            // batch mean and biased variance
                .addInputs(x)
                .addOutputs(batchMean, batchVar)
                .addIntegerArguments(reduceAxes)
                .build());
        normalize(batchMean, batchVar);
    }

    /** Needs the batch statistics of {@link #trainingForward()}. */
    void backward() {
        Nd4j.exec(DynamicCustomOp.builder("batchnorm_bp")
                .addInputs(x, batchMean, batchVar, gamma, beta, dy)
                .addOutputs(dx, dMean, dVar, dGamma, dBeta)
                .addIntegerArguments(1, 1, 1)
                .addFloatingPointArguments(eps)
                .build());
    }

    float[] y() {
        return y.dup('c').data().asFloat();
    }

    float[] dx() {
        return dx.dup('c').data().asFloat();
    }

    float[] dGamma() {
        return dGamma.dup('c').data().asFloat();
    }

    float[] dBeta() {
        return dBeta.dup('c').data().asFloat();
    }

    void close() {
        for (INDArray a : new INDArray[]{x, dy, gamma, beta, runningMean, runningVar, y, batchMean, batchVar, dx,
                dMean, dVar, dGamma, dBeta}) {
            a.close();
        }
    }

    /** Which libnd4j build this process loaded, from /proc/self/maps, and what it says about itself. */
    static String describe() {
        Nd4j.getBackend();  // initialises nd4j (and loads libnd4jcpu) before NativeOpsHolder is touched
        String lib;
        try {
            lib = Files.readAllLines(Path.of("/proc/self/maps")).stream()
                    .filter(l -> l.contains("libnd4jcpu.so"))
                    .map(l -> l.substring(l.indexOf('/')))
                    .distinct()
                    .collect(Collectors.joining(", "));
        } catch (IOException e) {
            lib = "unknown (" + e.getMessage() + ")";
        }
        String build = NativeOpsHolder.getInstance().getDeviceNativeOps().buildInfo().replaceAll("\\s+", " ").trim();
        return "libnd4jcpu loaded from " + (lib.isEmpty() ? "?" : lib)
                + "\n  nd4j helpers allowed: " + Nd4j.getEnvironment().helpersAllowed()
                + ", nd4j max threads: " + Nd4j.getEnvironment().maxThreads()
                + ", javacpp platform extension: '" + System.getProperty("org.bytedeco.javacpp.platform.extension", "")
                + "'\n  libnd4j build info: " + build;
    }
}
