package dev.clnorm.cli;

import java.util.Locale;

/**
 * A one-line progress bar on stderr for long runs, redrawn in place; silent when stderr is not a
 * terminal (System.console() == null) so logs and pipes stay clean.
 */
final class Progress {
    private static final int WIDTH = 30;
    private static final boolean TERMINAL = System.console() != null;

    private Progress() {
    }

    static void show(int done, int total, long startedNanos, String what) {
        if (!TERMINAL) {
            return;
        }
        int filled = total == 0 ? WIDTH : (int) ((long) WIDTH * done / total);
        double seconds = (System.nanoTime() - startedNanos) / 1e9;
        String line = String.format(Locale.ROOT, "\r[%s%s] %d/%d %5.0fs %s", "#".repeat(filled),
                " ".repeat(WIDTH - filled), done, total, seconds, what);
        System.err.print(line.length() > 120 ? line.substring(0, 120) : line + " ".repeat(120 - line.length()));
        System.err.flush();
    }

    static void clear() {
        if (TERMINAL) {
            System.err.print("\r" + " ".repeat(121) + "\r");
            System.err.flush();
        }
    }
}
