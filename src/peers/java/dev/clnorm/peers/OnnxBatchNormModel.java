package dev.clnorm.peers;

/**
 * A one-node ONNX model, {@code Y = BatchNormalization(X, scale, B, input_mean, input_var)} at opset 15
 * in inference mode (training_mode = 0), with the four per-channel tensors as initializers. ONNX
 * Runtime's Java API loads models only from bytes or files, so the ModelProto is written by hand;
 * field numbers are those of onnx/onnx.proto.
 */
final class OnnxBatchNormModel {
    // TensorProto.DataType.FLOAT
    private static final int FLOAT = 1;
    // AttributeProto.AttributeType.FLOAT
    private static final int ATTR_FLOAT = 1;
    /** IR version 8 goes with opset 15 (ONNX 1.10). */
    private static final int IR_VERSION = 8;
    private static final int OPSET = 15;

    private OnnxBatchNormModel() {
    }

    static byte[] build(long[] shape, float[] scale, float[] bias, float[] mean, float[] var, float eps) {
        Proto node = new Proto()
                .string(1, "X").string(1, "scale").string(1, "B").string(1, "input_mean").string(1, "input_var")
                .string(2, "Y")
                .string(3, "bn")
                .string(4, "BatchNormalization")
                .message(5, new Proto().string(1, "epsilon").float32(2, eps).int64(20, ATTR_FLOAT));
        Proto graph = new Proto()
                .message(1, node)
                .string(2, "clnorm_peer_batchnorm")
                .message(5, initializer("scale", scale))
                .message(5, initializer("B", bias))
                .message(5, initializer("input_mean", mean))
                .message(5, initializer("input_var", var))
                .message(11, valueInfo("X", shape))
                .message(12, valueInfo("Y", shape));
        return new Proto()
                .int64(1, IR_VERSION)                               // ir_version
                .string(2, "clnorm-peers")                          // producer_name
                .message(7, graph)                                  // graph
                .message(8, new Proto().string(1, "").int64(2, OPSET))  // opset_import: default domain
                .toByteArray();
    }

    /** TensorProto: dims (1), data_type (2), float_data (4, packed), name (8). */
    private static Proto initializer(String name, float[] values) {
        return new Proto().int64(1, values.length).int64(2, FLOAT).packedFloats(4, values).string(8, name);
    }

    /** ValueInfoProto{name, type: TypeProto{tensor_type: {elem_type, shape: {dim: {dim_value}}}}}. */
    private static Proto valueInfo(String name, long[] shape) {
        Proto dims = new Proto();
        for (long d : shape) {
            dims.message(1, new Proto().int64(1, d));
        }
        Proto tensorType = new Proto().int64(1, FLOAT).message(2, dims);
        return new Proto().string(1, name).message(2, new Proto().message(1, tensorType));
    }
}
