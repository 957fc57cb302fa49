package dev.clnorm.train;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class LrScheduleTest {
    @Test
    void constantIsOneEverywhere() {
        for (long t = 0; t < 10; t++) {
            assertEquals(1.0, LrSchedule.CONSTANT.factor(t, 10));
        }
    }

    /** PyTorch's CosineAnnealingLR(T_max=T, eta_min=0), stepped after every step: 1, ..., 0.5 at T/2, ... */
    @Test
    void cosineDecaysFromOneTowardsZeroOverTheRun() {
        long total = 2340;  // 5 epochs of 468 steps
        assertEquals(1.0, LrSchedule.COSINE.factor(0, total), 0.0);
        assertEquals(0.5, LrSchedule.COSINE.factor(total / 2, total), 1e-15);
        assertEquals(0.5 * (1 + Math.cos(Math.PI / 4)), LrSchedule.COSINE.factor(total / 4, total), 1e-15);
        double last = LrSchedule.COSINE.factor(total - 1, total);
        assertTrue(last > 0 && last < 1e-5, "last step's factor " + last);
        double before = Double.POSITIVE_INFINITY;
        for (long t = 0; t < total; t++) {
            double f = LrSchedule.COSINE.factor(t, total);
            assertTrue(f < before && f > 0, "strictly decreasing and positive at step " + t + ": " + f);
            before = f;
        }
    }

    @Test
    void stepsOutsideTheRunAreErrors() {
        assertThrows(IllegalArgumentException.class, () -> LrSchedule.COSINE.factor(10, 10));
        assertThrows(IllegalArgumentException.class, () -> LrSchedule.COSINE.factor(-1, 10));
        assertThrows(IllegalArgumentException.class, () -> LrSchedule.CONSTANT.factor(0, 0));
    }

    @Test
    void parsesTheOptionsSpellingsAndNamesTheChoicesOtherwise() {
        assertSame(LrSchedule.CONSTANT, LrSchedule.parse("constant"));
        assertSame(LrSchedule.COSINE, LrSchedule.parse("Cosine"));
        for (String bad : new String[]{"step", "", "cos", null}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> LrSchedule.parse(bad));
            assertTrue(e.getMessage().contains("--lr-schedule must be constant or cosine, got '" + bad + "'"),
                    e.getMessage());
        }
    }
}
