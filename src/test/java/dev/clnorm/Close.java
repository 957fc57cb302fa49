package dev.clnorm;

import static org.junit.jupiter.api.Assertions.fail;

/** Element-wise comparisons with the index and both values in the failure message. */
final class Close {
    private Close() {
    }

    static void assertClose(double[] expected, float[] actual, double tolerance, String what) {
        if (expected.length != actual.length) {
            fail(what + ": expected " + expected.length + " values, got " + actual.length);
        }
        for (int i = 0; i < expected.length; i++) {
            double err = Math.abs(expected[i] - actual[i]);
            if (!(err <= tolerance)) {
                fail(what + "[" + i + "]: expected " + expected[i] + ", got " + actual[i] + " (|error| " + err
                        + " > tolerance " + tolerance + ")");
            }
        }
    }

    static void assertClose(double[] expected, float[] actual, double[] tolerance, String what) {
        for (int i = 0; i < expected.length; i++) {
            double err = Math.abs(expected[i] - actual[i]);
            if (!(err <= tolerance[i])) {
                fail(what + "[" + i + "]: expected " + expected[i] + ", got " + actual[i] + " (|error| " + err
                        + " > tolerance " + tolerance[i] + ")");
            }
        }
    }

    static double maxAbsError(double[] expected, float[] actual) {
        double worst = 0;
        for (int i = 0; i < expected.length; i++) {
            worst = Math.max(worst, Math.abs(expected[i] - actual[i]));
        }
        return worst;
    }
}
