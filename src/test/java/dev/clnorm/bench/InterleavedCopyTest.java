package dev.clnorm.bench;

import dev.clnorm.Layout;
import dev.clnorm.backend.Backend;
import dev.clnorm.backend.java.JavaBackend;
import org.junit.jupiter.api.Test;

import java.lang.reflect.InvocationHandler;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;
import java.util.EnumSet;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * An operation's {@code % copy} is against copies timed between its own timed calls, not against the
 * copy measured once before all operations: a backend whose copies get slower call by call (memory
 * bandwidth drifting away, as on a shared machine) must show each later operation a slower copy.
 */
class InterleavedCopyTest {
    private static final int REPEATS = 3;

    @Test
    void eachOperationIsSetAgainstTheCopiesTimedBesideIt() {
        SlowingCopies slowing = new SlowingCopies(new JavaBackend(1));
        try (Backend backend = slowing.backend()) {
            List<BenchResult> results = new BenchRunner(0, REPEATS, 0, null).run(backend, new int[]{4, 8},
                    Layout.CHANNELS_FIRST, EnumSet.of(Op.INFERENCE, Op.TRAIN_FORWARD), msg -> { });
            assertEquals(List.of(Op.COPY, Op.TRAIN_FORWARD, Op.INFERENCE), results.stream().map(BenchResult::op).toList());
            // No warm-up: the copy row times copies 1-3 (median 10 ms), training forward copies 4-6
            // (25 ms), inference copies 7-9 (40 ms), copy k sleeping 5k ms. The bounds leave room for
            // sleeps overrunning by up to 5 ms (about 1 ms was seen on the development machine).
            assertEquals(3 * REPEATS, slowing.copies);
            double copyRow = results.get(0).copyGbps();
            double besideTraining = results.get(1).copyGbps();
            double besideInference = results.get(2).copyGbps();
            assertTrue(besideTraining < copyRow * 0.6, "training forward set against " + besideTraining
                    + " GB/s, the copy row ran at " + copyRow);
            assertTrue(besideInference < besideTraining * 0.8, "inference set against " + besideInference
                    + " GB/s, the copies beside training forward ran at " + besideTraining);
            assertEquals(results.get(2).gbps() / besideInference * 100, results.get(2).percentOfCopy(), 1e-9);
        }
    }

    /**
     * The Java backend, with copy number k sleeping 5k milliseconds; every other call goes straight
     * through (a proxy, so the wrapper need not restate the whole interface).
     */
    private static final class SlowingCopies implements InvocationHandler {
        private final Backend inner;
        int copies;

        SlowingCopies(Backend inner) {
            this.inner = inner;
        }

        Backend backend() {
            return (Backend) Proxy.newProxyInstance(Backend.class.getClassLoader(), new Class<?>[]{Backend.class}, this);
        }

        @Override
        public Object invoke(Object proxy, Method method, Object[] args) throws Throwable {
            if (method.getName().equals("copy")) {
                copies++;
                Thread.sleep(5L * copies);
            }
            try {
                return method.invoke(inner, args);
            } catch (InvocationTargetException e) {
                throw e.getCause();
            }
        }
    }
}
