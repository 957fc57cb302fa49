package dev.clnorm.backend;

import java.util.concurrent.atomic.AtomicLong;

/** Thread-safe tallies every backend keeps so tests can assert on leaks, transfers and launches. */
public final class ResourceCounters {
    public final AtomicLong liveBuffers = new AtomicLong();
    public final AtomicLong liveKernels = new AtomicLong();
    public final AtomicLong transfers = new AtomicLong();
    public final AtomicLong launches = new AtomicLong();
    /** clSetKernelArg calls (OpenCL): repeated bindings are skipped, so a steady loop adds none. */
    public final AtomicLong argumentSets = new AtomicLong();
}
