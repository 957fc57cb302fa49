package dev.clnorm.peers;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.Map;

/**
 * ONNX Runtime's CPU BatchNormalization (opset 15, inference) on a one-node model. X is an
 * OnnxTensor over a direct FloatBuffer, created once and reused; Y is either pinned (a reused
 * direct buffer that ORT writes into, like clnorm's preallocated y) or a new tensor ORT allocates
 * on every call (the plain {@code session.run(inputs)} most callers write).
 */
final class OrtPeer implements AutoCloseable {
    private final OrtEnvironment env = OrtEnvironment.getEnvironment();
    private final OrtSession session;
    private final OnnxTensor x;
    private final OnnxTensor y;
    private final FloatBuffer yBuffer;
    private final Map<String, OnnxTensor> inputs;
    private final Map<String, OnnxTensor> pinned;

    OrtPeer(long[] shape, float[] xData, float[] gamma, float[] beta, float[] mean, float[] var, float eps,
            int threads) throws OrtException {
        byte[] model = OnnxBatchNormModel.build(shape, gamma, beta, mean, var, eps);
        try (OrtSession.SessionOptions opts = new OrtSession.SessionOptions()) {
            opts.setIntraOpNumThreads(threads);
            opts.setInterOpNumThreads(1);
            opts.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
            session = env.createSession(model, opts);
        }
        FloatBuffer xb = direct(xData.length);
        xb.put(xData).rewind();
        yBuffer = direct(xData.length);
        x = OnnxTensor.createTensor(env, xb, shape);
        y = OnnxTensor.createTensor(env, yBuffer, shape);
        inputs = Map.of("X", x);
        pinned = Map.of("Y", y);
    }

    static String version() {
        return OrtEnvironment.getEnvironment().getVersion();
    }

    static int modelBytes(long[] shape, int channels) {
        float[] c = new float[channels];
        return OnnxBatchNormModel.build(shape, c, c, c, c, 1e-5f).length;
    }

    private static FloatBuffer direct(int n) {
        return ByteBuffer.allocateDirect(4 * n).order(ByteOrder.nativeOrder()).asFloatBuffer();
    }

    /** Y written into the pinned, reused buffer. */
    void runPinned() throws OrtException {
        // the pinned Y is not owned by the result: closing the result frees nothing of ours
        session.run(inputs, pinned).close();
    }

    /** Y allocated by ORT on every call and freed again. */
    void runAllocating() throws OrtException {
        try (OrtSession.Result r = session.run(inputs)) {
            if (r.size() != 1) {
                throw new IllegalStateException("expected one output, got " + r.size());
            }
        }
    }

    /** The last pinned output, as a host array. */
    float[] pinnedOutput() {
        float[] out = new float[yBuffer.capacity()];
        yBuffer.duplicate().rewind().get(out);
        return out;
    }

    /** One allocating run, its output as a host array. */
    float[] allocatingOutput() throws OrtException {
        try (OrtSession.Result r = session.run(inputs)) {
            FloatBuffer fb = ((OnnxTensor) r.get(0)).getFloatBuffer();
            float[] out = new float[fb.remaining()];
            fb.get(out);
            return out;
        }
    }

    @Override
    public void close() throws OrtException {
        x.close();
        y.close();
        session.close();
    }
}
