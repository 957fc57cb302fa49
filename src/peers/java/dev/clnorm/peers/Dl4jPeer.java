package dev.clnorm.peers;

import org.deeplearning4j.nn.api.Layer;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.layers.BatchNormalization;
import org.deeplearning4j.nn.workspace.LayerWorkspaceMgr;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.util.Arrays;

/**
 * The DL4J BatchNormalization layer (NCHW, or (N, C) for dense input; (N, C, L) is given to it as
 * (N, C, L, 1), the same values in the same order), instantiated on its own the
 * way DL4J's own layer tests do, and driven through {@code activate(true)} (training forward) and
 * {@code backpropGradient} (backward; it clears the statistics the forward cached, so every backward
 * needs its own forward). No workspaces: every call allocates its outputs.
 */
final class Dl4jPeer {
    private final Layer layer;
    private final INDArray x;
    private final INDArray dy;
    private final LayerWorkspaceMgr mgr = LayerWorkspaceMgr.noWorkspaces();
    private INDArray lastY;
    private INDArray lastDx;

    Dl4jPeer(int[] shape, float[] xData, float[] dyData, float[] gamma, float[] beta, float eps) {
        int c = shape[1];
        BatchNormalization conf = new BatchNormalization.Builder().nIn(c).nOut(c).eps(eps).build();
        NeuralNetConfiguration nnc = new NeuralNetConfiguration.Builder().dataType(DataType.FLOAT).layer(conf).build();
        long numParams = conf.initializer().numParams(nnc);
        INDArray params = Nd4j.create(DataType.FLOAT, 1, numParams);
        layer = conf.instantiate(nnc, null, 0, params, true, DataType.FLOAT);
        layer.setBackpropGradientsViewArray(Nd4j.create(DataType.FLOAT, 1, numParams));
        INDArray g = layer.getParam("gamma");
        g.assign(Nd4j.create(gamma, g.shape(), 'c'));
        INDArray b = layer.getParam("beta");
        b.assign(Nd4j.create(beta, b.shape(), 'c'));
        // The layer takes (N, C) and (N, C, H, W); (N, C, L) goes in as the free view (N, C, L, 1).
        long[] s = Arrays.stream(shape.length == 3 ? new int[]{shape[0], shape[1], shape[2], 1} : shape)
                .asLongStream().toArray();
        x = Nd4j.create(xData, s, 'c');
        dy = Nd4j.create(dyData, s, 'c');
        layer.setInput(x, mgr);
    }

    void trainingForward() {
        layer.setInput(x, mgr);
        lastY = layer.activate(true, mgr);
    }

    /** Needs the cached statistics of a {@link #trainingForward()}, which it consumes (one backward per forward). */
    void backward() {
        lastDx = layer.backpropGradient(dy, mgr).getSecond();
    }

    float[] y() {
        return lastY.dup('c').data().asFloat();
    }

    float[] dx() {
        return lastDx.dup('c').data().asFloat();
    }

    /** The layer's helper (oneDNN/cuDNN) after use, or why there is none. */
    String helper() {
        Object h = layer instanceof org.deeplearning4j.nn.layers.normalization.BatchNormalization bn ? bn.getHelper() : null;
        return h == null ? "none" : h.getClass().getName();
    }

    void close() {
        x.close();
        dy.close();
    }
}
