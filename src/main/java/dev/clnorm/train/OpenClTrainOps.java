package dev.clnorm.train;

import dev.clnorm.backend.Backend;
import dev.clnorm.backend.DeviceBuffer;
import dev.clnorm.backend.ElementType;
import dev.clnorm.backend.opencl.ClKernel;
import dev.clnorm.backend.opencl.ClProgram;
import dev.clnorm.backend.opencl.KernelSources;
import dev.clnorm.backend.opencl.OpenClBackend;

import java.util.ArrayList;
import java.util.List;

/**
 * The trainer's operations on an OpenCL device: the dense layers' matrix products through CLBlast
 * ({@link ClBlastGemm}), everything else as the small kernels of {@code opencl-kernels/train_*.cl}.
 * Every call only enqueues on the backend's in-order queue: no host transfer and no clFinish.
 */
final class OpenClTrainOps implements TrainOps {
    /** The training kernels, in dependency order. */
    static final String[] FILES = {"train_layers.cl", "train_loss.cl", "train_adam.cl"};
    /** Work-group size of the single-work-group reductions (loss, accuracy); a power of two. */
    private static final int REDUCE_GROUP = 64;

    private final OpenClBackend backend;
    private final ClBlastGemm gemm;
    private final List<ClKernel> kernels = new ArrayList<>();
    private final ClKernel gather;
    private final ClKernel addBias;
    private final ClKernel columnSums;
    private final ClKernel relu;
    private final ClKernel reluBackward;
    private final ClKernel softmaxXent;
    private final ClKernel countCorrect;
    private final ClKernel argmax;
    private final ClKernel adam;
    private final int reduceGroup;
    private boolean closed;

    OpenClTrainOps(OpenClBackend backend) {
        this.backend = backend;
        ClProgram program = backend.program(KernelSources.program(FILES), "-cl-std=CL1.2");
        try {
            gather = kernel(program, "train_gather");
            addBias = kernel(program, "train_add_bias");
            columnSums = kernel(program, "train_column_sums");
            relu = kernel(program, "train_relu");
            reluBackward = kernel(program, "train_relu_backward");
            softmaxXent = kernel(program, "train_softmax_xent");
            countCorrect = kernel(program, "train_count_correct");
            argmax = kernel(program, "train_argmax");
            adam = kernel(program, "train_adam");
            reduceGroup = Integer.highestOneBit((int) Math.max(1, Math.min(REDUCE_GROUP,
                    Math.min(softmaxXent.maxWorkGroupSize(), countCorrect.maxWorkGroupSize()))));
            gemm = new ClBlastGemm(backend);
        } catch (RuntimeException | LinkageError e) {
            kernels.forEach(ClKernel::close);
            throw e;
        }
    }

    private ClKernel kernel(ClProgram program, String name) {
        ClKernel k = program.createKernel(name);
        kernels.add(k);
        return k;
    }

    @Override
    public Backend backend() {
        return backend;
    }

    @Override
    public String gemmDescription() {
        return gemm.description();
    }

    private void check() {
        if (closed) {
            throw new IllegalStateException("training operations have been closed");
        }
    }

    private static long[] range(long n) {
        return new long[]{Math.max(1, n)};
    }

    @Override
    public synchronized void gemm(boolean transA, boolean transB, int m, int n, int k, DeviceBuffer a, DeviceBuffer b,
                                  float beta, DeviceBuffer c) {
        check();
        gemm.sgemm(transA, transB, m, n, k, a, b, beta, c);
    }

    @Override
    public synchronized void gather(DeviceBuffer images, DeviceBuffer labels, DeviceBuffer order, int offset, int rows,
                                    int features, DeviceBuffer x, DeviceBuffer y) {
        check();
        gather.arg(0, images).arg(1, labels).arg(2, order).arg(3, offset).arg(4, rows).arg(5, features)
                .arg(6, x).arg(7, y);
        gather.launch(new long[]{features, rows}, null);
    }

    @Override
    public synchronized void addBias(DeviceBuffer y, DeviceBuffer bias, int rows, int cols) {
        check();
        addBias.arg(0, y).arg(1, bias).arg(2, rows).arg(3, cols);
        addBias.launch(new long[]{cols, rows}, null);
    }

    @Override
    public synchronized void columnSums(DeviceBuffer dy, DeviceBuffer out, int rows, int cols) {
        check();
        columnSums.arg(0, dy).arg(1, out).arg(2, rows).arg(3, cols);
        columnSums.launch(range(cols), null);
    }

    @Override
    public synchronized void relu(DeviceBuffer x, DeviceBuffer y, int n) {
        check();
        relu.arg(0, x).arg(1, y).arg(2, n);
        relu.launch(range(n), null);
    }

    @Override
    public synchronized void reluBackward(DeviceBuffer y, DeviceBuffer dy, DeviceBuffer dx, int n) {
        check();
        reluBackward.arg(0, y).arg(1, dy).arg(2, dx).arg(3, n);
        reluBackward.launch(range(n), null);
    }

    @Override
    public synchronized void softmaxCrossEntropy(DeviceBuffer logits, DeviceBuffer labels, int rows, int classes,
                                                 DeviceBuffer dlogits, DeviceBuffer lossAccum) {
        check();
        softmaxXent.arg(0, logits).arg(1, labels).arg(2, rows).arg(3, classes).arg(4, dlogits).arg(5, lossAccum)
                .localArg(6, 4L * reduceGroup);
        softmaxXent.launch(new long[]{reduceGroup}, new long[]{reduceGroup});
    }

    @Override
    public synchronized void countCorrect(DeviceBuffer logits, DeviceBuffer labels, int rows, int classes,
                                          DeviceBuffer correctAccum) {
        check();
        countCorrect.arg(0, logits).arg(1, labels).arg(2, rows).arg(3, classes).arg(4, correctAccum)
                .localArg(5, 4L * reduceGroup);
        countCorrect.launch(new long[]{reduceGroup}, new long[]{reduceGroup});
    }

    @Override
    public synchronized void argmax(DeviceBuffer logits, int rows, int classes, DeviceBuffer predicted) {
        check();
        if (predicted.type() != ElementType.INT32) {
            throw new IllegalArgumentException("predicted classes need an INT32 buffer, got " + predicted.type());
        }
        argmax.arg(0, logits).arg(1, rows).arg(2, classes).arg(3, predicted);
        argmax.launch(range(rows), null);
    }

    @Override
    public synchronized void adam(DeviceBuffer p, DeviceBuffer g, DeviceBuffer m, DeviceBuffer v, int n, float beta1,
                                  float beta2, float eps, float stepSize, float bc2Sqrt) {
        check();
        adam.arg(0, p).arg(1, g).arg(2, m).arg(3, v).arg(4, n).arg(5, beta1).arg(6, beta2).arg(7, eps)
                .arg(8, stepSize).arg(9, bc2Sqrt);
        adam.launch(range(n), null);
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        kernels.forEach(ClKernel::close);
        gemm.close();
    }
}
