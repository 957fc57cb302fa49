package dev.clnorm.peers;

import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * The same-run bandwidth reference: y = a·x + b in float, two threads each on half the array. It
 * reads x and writes y, 8 bytes per element, exactly the traffic of inference batch norm, so its
 * GB/s is the ceiling an inference implementation on this JVM and machine can hope for.
 */
final class Axpb implements AutoCloseable {
    private final ExecutorService pool = Executors.newFixedThreadPool(2, r -> {
        Thread t = new Thread(r, "axpb");
        t.setDaemon(true);
        return t;
    });

    void run(float[] x, float[] y, float a, float b) throws Exception {
        int half = x.length / 2;
        Future<?> lo = pool.submit(() -> loop(x, y, a, b, 0, half));
        Future<?> hi = pool.submit(() -> loop(x, y, a, b, half, x.length));
        lo.get();
        hi.get();
    }

    private static void loop(float[] x, float[] y, float a, float b, int from, int to) {
        for (int i = from; i < to; i++) {
            y[i] = a * x[i] + b;
        }
    }

    @Override
    public void close() {
        pool.shutdownNow();
    }
}
