package dev.clnorm.train;

import dev.clnorm.backend.Backend;
import dev.clnorm.backend.DeviceBuffer;
import dev.clnorm.backend.java.JavaBackend;
import dev.clnorm.backend.opencl.OpenClBackend;

/**
 * The device operations of the MLP trainer besides batch norm: matrix products for the dense
 * layers, bias, ReLU, loss, accuracy and Adam. Matrices are row-major float32 buffers; labels and
 * row orders are INT32 buffers. Every method only enqueues work on the device (the Java backend
 * runs it before returning): nothing is copied to or from the host.
 */
public interface TrainOps extends AutoCloseable {

    /** The operations for a backend: CLBlast and small kernels on OpenCL, multi-threaded Java on Java. */
    static TrainOps of(Backend backend) {
        if (backend instanceof OpenClBackend cl) {
            return new OpenClTrainOps(cl);
        }
        if (backend instanceof JavaBackend java) {
            return new JavaTrainOps(java);
        }
        throw new IllegalArgumentException("no training operations for backend " + backend.info().describe());
    }

    Backend backend();

    /** How the dense layers' matrix products run, for logs (e.g. "CLBlast SGEMM via JOCLBlast"). */
    String gemmDescription();

    /**
     * {@code C = op(A) * op(B) + beta * C}, row-major, where op(A) is m x k and op(B) is k x n:
     * A is stored m x k (k x m when {@code transA}), B k x n (n x k when {@code transB}), C m x n.
     * The trainer always passes beta = 0 (C is overwritten).
     */
    void gemm(boolean transA, boolean transB, int m, int n, int k, DeviceBuffer a, DeviceBuffer b, float beta,
              DeviceBuffer c);

    /** Batch rows from the resident data set: x[r,:] = images[order[offset+r],:], y[r] = labels[order[offset+r]]. */
    void gather(DeviceBuffer images, DeviceBuffer labels, DeviceBuffer order, int offset, int rows, int features,
                DeviceBuffer x, DeviceBuffer y);

    /** y[r, c] += bias[c]. */
    void addBias(DeviceBuffer y, DeviceBuffer bias, int rows, int cols);

    /** out[c] = sum over the rows of dy[r, c] (bias gradient), rows added in order. */
    void columnSums(DeviceBuffer dy, DeviceBuffer out, int rows, int cols);

    /** y = max(x, 0) over the first n values (x == y allowed); NaN stays NaN. */
    void relu(DeviceBuffer x, DeviceBuffer y, int n);

    /** dx = dy where y > 0, else 0 (dy == dx allowed); y is the ReLU's output. */
    void reluBackward(DeviceBuffer y, DeviceBuffer dy, DeviceBuffer dx, int n);

    /**
     * Mean softmax cross-entropy of the batch added to {@code lossAccum[0]}, and
     * dlogits = (softmax - one-hot) / rows.
     */
    void softmaxCrossEntropy(DeviceBuffer logits, DeviceBuffer labels, int rows, int classes, DeviceBuffer dlogits,
                             DeviceBuffer lossAccum);

    /** {@code correctAccum[0] +=} rows whose largest logit (first on ties) is at the label. */
    void countCorrect(DeviceBuffer logits, DeviceBuffer labels, int rows, int classes, DeviceBuffer correctAccum);

    /** predicted[r] = index of the largest logit of row r (first on ties); predicted is INT32. */
    void argmax(DeviceBuffer logits, int rows, int classes, DeviceBuffer predicted);

    /**
     * One Adam step on n values, PyTorch's formula: m += (1-beta1)(g-m); v = beta2 v + (1-beta2) g^2;
     * p -= stepSize * m / (sqrt(v)/bc2Sqrt + eps), with stepSize = lr/(1-beta1^t), bc2Sqrt = sqrt(1-beta2^t).
     */
    void adam(DeviceBuffer p, DeviceBuffer g, DeviceBuffer m, DeviceBuffer v, int n, float beta1, float beta2,
              float eps, float stepSize, float bc2Sqrt);

    @Override
    void close();
}
