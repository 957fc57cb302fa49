package dev.clnorm.train;

import dev.clnorm.io.NpyArray;
import dev.clnorm.io.Npz;

import java.io.IOException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Writes a trained model as a NumPy {@code .npz} (through {@link Npz}) with PyTorch's state_dict
 * names and shapes: {@code fc1.weight} (out, in) float32, {@code fc1.bias}, {@code bn1.weight},
 * {@code bn1.bias}, {@code bn1.running_mean}, {@code bn1.running_var} and
 * {@code bn1.num_batches_tracked} (a 0-d int64, as PyTorch stores it). With module names fc1, bn1,
 * fc2, bn2, fc3, the archive loads into an equivalent {@code torch.nn.Module} with
 * {@code load_state_dict({k: torch.from_numpy(v) for k, v in np.load(f).items()})}.
 */
public final class Checkpoint {
    private Checkpoint() {
    }

    public static Map<String, NpyArray> arrays(Map<String, Mlp.Named> state) {
        Map<String, NpyArray> out = new LinkedHashMap<>();
        for (Mlp.Named n : state.values()) {
            if (n.name().endsWith(".num_batches_tracked")) {
                out.put(n.name(), NpyArray.scalar((long) n.values()[0]));
            } else {
                out.put(n.name(), NpyArray.ofFloat32(n.values(), n.shape()));
            }
        }
        return out;
    }

    public static void write(Path file, Map<String, Mlp.Named> state) throws IOException {
        Npz.write(file, arrays(state), false);
    }
}
