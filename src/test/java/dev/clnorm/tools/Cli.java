package dev.clnorm.tools;

import dev.clnorm.cli.Main;
import picocli.CommandLine;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.function.IntSupplier;

/** Runs a command line with stdout and stderr captured; returns the exit code and both texts. */
final class Cli {
    private Cli() {
    }

    record Result(int code, String out, String err) {
        @Override
        public String toString() {
            return "exit " + code + "\n--- stdout\n" + out + "\n--- stderr\n" + err;
        }
    }

    /** Through {@link Main#run}, exactly as scripts/clnorm runs it. */
    static Result run(String... args) {
        return capture(() -> Main.run(args));
    }

    /** A command object of the test's own making (e.g. with a hook), with Main's handling of errors. */
    static Result run(Object command, String... args) {
        return capture(() -> {
            CommandLine cl = new CommandLine(command);
            cl.setExecutionExceptionHandler((e, commandLine, parseResult) -> {
                if (e instanceof IllegalArgumentException || e instanceof IllegalStateException) {
                    commandLine.getErr().println("clnorm: " + e.getMessage());
                    return 2;
                }
                throw e;
            });
            return cl.execute(args);
        });
    }

    private static synchronized Result capture(IntSupplier body) {
        PrintStream oldOut = System.out;
        PrintStream oldErr = System.err;
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        try {
            System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
            System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
            int code = body.getAsInt();
            System.out.flush();
            System.err.flush();
            return new Result(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
        } finally {
            System.setOut(oldOut);
            System.setErr(oldErr);
        }
    }
}
