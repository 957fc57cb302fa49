package dev.clnorm.backend;

/**
 * How a training forward folds its batch statistics into the running ones:
 * {@code running = keep * running + batchWeight * batch}, the running variance fed the unbiased
 * (m/(m-1)) or the biased batch variance. The layer derives the weights from its framework
 * convention ({@code dev.clnorm.Convention}): float32 layers pass float32 values (computed in
 * float32, as the frameworks do), float64 layers double ones.
 */
public record RunningUpdate(boolean enabled, double keep, double batchWeight, boolean unbiasedVariance) {

    /** No running-statistics update (trackRunningStats = false, or batch statistics in inference). */
    public static final RunningUpdate NONE = new RunningUpdate(false, 1.0, 0.0, true);
}
