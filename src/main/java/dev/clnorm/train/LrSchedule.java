package dev.clnorm.train;

import java.util.Locale;

/**
 * How the learning rate changes over a training run, as a factor of the base rate for each step.
 *
 * <ul>
 *   <li>{@link #CONSTANT}: the base rate at every step.</li>
 *   <li>{@link #COSINE}: cosine decay from the base rate towards 0 over the whole run, as PyTorch's
 *       {@code CosineAnnealingLR(optimizer, T_max=total_steps, eta_min=0)} stepped after every
 *       optimizer step: step {@code t} (0-based) of {@code T} uses
 *       {@code lr * (1 + cos(pi * t / T)) / 2}, so the first step uses the base rate, the middle one
 *       half of it and the last one about {@code lr * (pi / 2T)^2}; never exactly 0.</li>
 * </ul>
 */
public enum LrSchedule {
    CONSTANT,
    COSINE;

    /**
     * The factor of the base learning rate for step {@code step} (0-based) of a run of
     * {@code totalSteps} steps.
     */
    public double factor(long step, long totalSteps) {
        if (totalSteps < 1 || step < 0 || step >= totalSteps) {
            throw new IllegalArgumentException("step must be in [0, totalSteps) with totalSteps >= 1, got step " + step
                    + " of " + totalSteps);
        }
        return switch (this) {
            case CONSTANT -> 1.0;
            case COSINE -> 0.5 * (1.0 + Math.cos(Math.PI * step / totalSteps));
        };
    }

    /** The option's spelling: constant, cosine. */
    public String label() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** Parses constant or cosine (any case); anything else is an error that names the choices. */
    public static LrSchedule parse(String s) {
        if (s != null) {
            for (LrSchedule v : values()) {
                if (v.label().equals(s.trim().toLowerCase(Locale.ROOT))) {
                    return v;
                }
            }
        }
        throw new IllegalArgumentException("--lr-schedule must be constant or cosine, got '" + s + "'");
    }
}
