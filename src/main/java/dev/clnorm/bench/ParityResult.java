package dev.clnorm.bench;

import java.util.List;

/**
 * What {@link ParityRunner} found: every (shape, device, output) against the float64 reference, and
 * every pair of devices against each other.
 *
 * @param comparisons one per shape, device and output, against the float64 reference
 * @param pairs       one per shape, output and unordered pair of devices (informational: two devices
 *                    that both pass are within the sum of their tolerances of each other)
 */
public record ParityResult(long seed, int steps, String layout, String dtype, List<Comparison> comparisons,
                           List<PairComparison> pairs) {

    /**
     * One device's output against the float64 reference.
     *
     * @param deviceId      the device's label: its id, made unique ({@link ParityRunner#labels})
 * @param maxAbs        max |device - reference| (infinite when a value is NaN/Inf and the reference is not)
     * @param maxRel        max |device - reference| / |reference| over elements whose reference is not 0
     * @param maxUlp        max distance in float32 steps between the device value and the reference
     *                      rounded to float32 ({@link ParityRunner#ulpDistance}); Long.MAX_VALUE for NaN
     * @param worstIndex    element (or channel) with the largest |error| / tolerance
     * @param worstRatio    largest |error| / tolerance; above 1 fails
     * @param tolerance     the largest per-element tolerance of this output
     * @param toleranceRule how the tolerance is computed, for the report
     */
    public record Comparison(String shape, String deviceId, String deviceName, ParityRunner.Output output, int elements,
                             double maxAbs, double maxRel, long maxUlp, String ulpType, int worstIndex, double worstRatio,
                             double tolerance, String toleranceRule, boolean pass) {
    }

    /** Two devices' float32 results for one output, compared with each other. */
    public record PairComparison(String shape, String deviceA, String deviceB, ParityRunner.Output output,
                                 double maxAbs, long maxUlp, String ulpType) {
    }

    public boolean passed() {
        return comparisons.stream().allMatch(Comparison::pass);
    }

    public List<Comparison> failures() {
        return comparisons.stream().filter(c -> !c.pass()).toList();
    }

    /** 0 when every device is within tolerance on every output, else 1. */
    public int exitCode() {
        return passed() ? 0 : 1;
    }
}
