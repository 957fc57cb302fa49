package dev.clnorm.io;

import dev.clnorm.BatchNorm;
import dev.clnorm.backend.ElementType;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeSet;

/**
 * A {@link BatchNorm} layer's state as named arrays, saved to and loaded from {@code .npz}.
 *
 * <p>With {@link Naming#PYTORCH} the names are those of {@code torch.nn.BatchNorm*d.state_dict()}:
 * {@code weight}, {@code bias}, {@code running_mean}, {@code running_var} (float32, shape
 * {@code (C,)}) and {@code num_batches_tracked} (int64, shape {@code ()}). With {@link Naming#KERAS}
 * they are Keras' {@code gamma}, {@code beta}, {@code moving_mean}, {@code moving_variance}; Keras
 * keeps no batch count, so none is saved. As in PyTorch, a layer that is not affine has no
 * weight/bias entries and a layer that does not track running statistics has no running entries.
 *
 * <p>Saving downloads the device-resident state; loading validates every array first (names, dtype,
 * shape, running_var >= 0) and only then uploads, so a rejected file leaves the layer unchanged.
 * Loading is strict like {@code load_state_dict(strict=True)}: a missing or unexpected name is an
 * error. One exception, also PyTorch's: a missing {@code num_batches_tracked} leaves the layer's count
 * as it is. float32 values round-trip bit for bit; float16 and float64 arrays are accepted on load
 * and converted to float32 (float64 rounds to nearest).
 */
public final class LayerState {

    /** Which framework's names the arrays carry. */
    public enum Naming {
        PYTORCH("weight", "bias", "running_mean", "running_var"),
        KERAS("gamma", "beta", "moving_mean", "moving_variance");

        private final String weight;
        private final String bias;
        private final String mean;
        private final String var;

        Naming(String weight, String bias, String mean, String var) {
            this.weight = weight;
            this.bias = bias;
            this.mean = mean;
            this.var = var;
        }

        public String weight() {
            return weight;
        }

        public String bias() {
            return bias;
        }

        public String runningMean() {
            return mean;
        }

        public String runningVar() {
            return var;
        }

        List<String> names() {
            List<String> n = new ArrayList<>(List.of(weight, bias, mean, var));
            if (this == PYTORCH) {
                n.add(NUM_BATCHES_TRACKED);
            }
            return n;
        }

        public static Naming parse(String s) {
            switch (s.trim().toLowerCase(Locale.ROOT)) {
                case "pytorch":
                case "torch":
                    return PYTORCH;
                case "keras":
                case "tensorflow":
                    return KERAS;
                default:
                    throw new IllegalArgumentException("unknown state naming '" + s + "'; use pytorch or keras");
            }
        }
    }

    /** PyTorch's batch counter, an int64 scalar. */
    public static final String NUM_BATCHES_TRACKED = "num_batches_tracked";

    private LayerState() {
    }

    /** The layer's state as arrays (downloaded from its device), in PyTorch's state_dict order. */
    public static Map<String, NpyArray> stateDict(BatchNorm bn, Naming naming) {
        // The layer's methods synchronize on it: holding its lock makes the snapshot consistent.
        synchronized (bn) {
            return snapshot(bn, naming);
        }
    }

    private static Map<String, NpyArray> snapshot(BatchNorm bn, Naming naming) {
        int c = bn.channels();
        // A float64 layer saves float64 arrays, a float32 layer float32 ones: exact either way.
        boolean wide = bn.dtype() == ElementType.FLOAT64;
        Map<String, NpyArray> m = new LinkedHashMap<>();
        if (bn.useScale()) {
            m.put(naming.weight(), wide ? NpyArray.ofFloat64(bn.weightDouble(), c) : NpyArray.ofFloat32(bn.weight(), c));
        }
        if (bn.useShift()) {
            m.put(naming.bias(), wide ? NpyArray.ofFloat64(bn.biasDouble(), c) : NpyArray.ofFloat32(bn.bias(), c));
        }
        if (bn.trackRunningStats()) {
            m.put(naming.runningMean(), wide ? NpyArray.ofFloat64(bn.runningMeanDouble(), c)
                    : NpyArray.ofFloat32(bn.runningMean(), c));
            m.put(naming.runningVar(), wide ? NpyArray.ofFloat64(bn.runningVarDouble(), c)
                    : NpyArray.ofFloat32(bn.runningVar(), c));
            if (naming == Naming.PYTORCH) {
                m.put(NUM_BATCHES_TRACKED, NpyArray.scalar(bn.numBatchesTracked()));
            }
        }
        return m;
    }

    /** Saves the state as an uncompressed {@code .npz} (like {@code numpy.savez}). */
    public static void save(BatchNorm bn, Path file, Naming naming) throws IOException {
        Npz.write(file, stateDict(bn, naming), false);
    }

    /** Saves with PyTorch names. */
    public static void save(BatchNorm bn, Path file) throws IOException {
        save(bn, file, Naming.PYTORCH);
    }

    /**
     * Loads a {@code .npz} saved by {@link #save} or by NumPy from a PyTorch state_dict or Keras
     * weights, detecting the naming from the names. Returns the naming found. An unreadable file is
     * an {@code IOException}; a state that does not fit the layer an {@link IllegalArgumentException}
     * naming the file, and the layer is left unchanged.
     */
    public static Naming load(BatchNorm bn, Path file) throws IOException {
        Map<String, NpyArray> arrays = Npz.read(file);
        try {
            return loadStateDict(bn, arrays);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(file + ": " + e.getMessage(), e);
        }
    }

    /** Which naming a set of names uses; an error if neither or both. */
    public static Naming detect(Map<String, NpyArray> state) {
        boolean torch = false;
        boolean keras = false;
        for (String k : state.keySet()) {
            torch |= Naming.PYTORCH.names().contains(k);
            keras |= Naming.KERAS.names().contains(k);
        }
        if (torch && keras) {
            throw new IllegalArgumentException("the state mixes PyTorch and Keras names: " + new TreeSet<>(state.keySet()));
        }
        if (!torch && !keras) {
            throw new IllegalArgumentException("no batch-norm state found: expected PyTorch names " + Naming.PYTORCH.names()
                    + " or Keras names " + Naming.KERAS.names() + ", found " + new TreeSet<>(state.keySet()));
        }
        return torch ? Naming.PYTORCH : Naming.KERAS;
    }

    /**
     * Validates every array, then uploads them to the layer; returns the naming found. A state that
     * does not fit the layer is an {@link IllegalArgumentException} and changes nothing.
     */
    public static Naming loadStateDict(BatchNorm bn, Map<String, NpyArray> state) {
        synchronized (bn) {
            return apply(bn, state);
        }
    }

    private static Naming apply(BatchNorm bn, Map<String, NpyArray> state) {
        Naming naming = detect(state);
        int c = bn.channels();
        List<String> expected = new ArrayList<>();
        // Keras saves gamma only with scale=True and beta only with center=True; the same holds here
        // for either naming (PyTorch's affine is both or neither).
        if (bn.useScale()) {
            expected.add(naming.weight());
        }
        if (bn.useShift()) {
            expected.add(naming.bias());
        }
        if (bn.trackRunningStats()) {
            expected.add(naming.runningMean());
            expected.add(naming.runningVar());
        }
        List<String> missing = new ArrayList<>();
        for (String k : expected) {
            if (!state.containsKey(k)) {
                missing.add(k);
            }
        }
        List<String> unexpected = new ArrayList<>();
        for (String k : state.keySet()) {
            boolean countOk = naming == Naming.PYTORCH && k.equals(NUM_BATCHES_TRACKED) && bn.trackRunningStats();
            if (!expected.contains(k) && !countOk) {
                unexpected.add(k);
            }
        }
        if (!missing.isEmpty() || !unexpected.isEmpty()) {
            String learnable = bn.useScale() == bn.useShift() ? "affine=" + bn.affine()
                    : "scale=" + bn.useScale() + ", center=" + bn.useShift();
            StringBuilder sb = new StringBuilder("state does not match a BatchNorm(" + c + ", " + learnable
                    + ", track_running_stats=" + bn.trackRunningStats() + ")");
            if (!missing.isEmpty()) {
                sb.append("; missing key(s) ").append(missing);
            }
            if (!unexpected.isEmpty()) {
                sb.append("; unexpected key(s) ").append(unexpected);
            }
            throw new IllegalArgumentException(sb.toString());
        }
        Map<String, double[]> values = new LinkedHashMap<>();
        for (String k : expected) {
            values.put(k, perChannel(state.get(k), k, c, bn.dtype() == ElementType.FLOAT64));
        }
        if (bn.trackRunningStats()) {
            double[] mean = values.get(naming.runningMean());
            double[] v = values.get(naming.runningVar());
            for (int i = 0; i < v.length; i++) {
                if (!Double.isFinite(mean[i])) {
                    throw new IllegalArgumentException(naming.runningMean() + " must be finite in " + bn.dtype()
                            + ", got " + mean[i] + " at channel " + i);
                }
                if (!(v[i] >= 0) || Double.isInfinite(v[i])) {
                    throw new IllegalArgumentException(naming.runningVar() + " must be finite and >= 0 in "
                            + bn.dtype() + ", got " + v[i] + " at channel " + i);
                }
            }
        }
        Long count = null;
        NpyArray n = state.get(NUM_BATCHES_TRACKED);
        if (n != null) {
            if (n.dtype() != NpyArray.DType.INT64 || n.size() != 1 || n.rank() > 1) {
                throw new IllegalArgumentException(NUM_BATCHES_TRACKED + " must be an int64 scalar (shape ()), got "
                        + n.dtype() + " " + NpyArray.shapeString(n.shape()));
            }
            count = n.toLongArray()[0];
            if (count < 0) {
                throw new IllegalArgumentException(NUM_BATCHES_TRACKED + " must be >= 0, got " + count);
            }
        }
        // Everything is valid: upload.
        if (bn.useScale()) {
            bn.setWeight(values.get(naming.weight()));
        }
        if (bn.useShift()) {
            bn.setBias(values.get(naming.bias()));
        }
        if (bn.trackRunningStats()) {
            bn.setRunningMean(values.get(naming.runningMean()));
            bn.setRunningVar(values.get(naming.runningVar()));
        }
        if (count != null) {
            bn.setNumBatchesTracked(count);
        }
        return naming;
    }

    /** The array's values as the layer will hold them (rounded to float32 unless the layer is float64). */
    private static double[] perChannel(NpyArray a, String name, int channels, boolean float64Layer) {
        if (!a.dtype().isFloating()) {
            throw new IllegalArgumentException(name + " must be a floating array (float16, float32 or float64), got "
                    + a.dtype());
        }
        if (a.rank() != 1 || a.shape()[0] != channels) {
            throw new IllegalArgumentException(name + " should have shape (" + channels + ",) for " + channels
                    + " channels, got " + NpyArray.shapeString(a.shape()));
        }
        if (float64Layer) {
            return a.toDoubleArray();
        }
        float[] narrow = a.toFloatArray();
        double[] out = new double[narrow.length];
        for (int i = 0; i < narrow.length; i++) {
            out[i] = narrow[i];
        }
        return out;
    }
}
