package dev.clnorm.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** Entry point of scripts/clnorm. */
@Command(name = "clnorm", mixinStandardHelpOptions = true, version = "clnorm 0.1.0",
        description = "Batch normalization on OpenCL devices and the JVM.",
        subcommands = {DemoCommand.class, DevicesCommand.class, BenchCommand.class, ParityCommand.class, RunCommand.class, TrainCommand.class, CommandLine.HelpCommand.class})
public final class Main implements Runnable {

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }

    public static void main(String[] args) {
        System.exit(run(args));
    }

    /** Runs a command line and returns its exit code: 0 ok, 1 a check failed, 2 bad usage or input. */
    public static int run(String... args) {
        CommandLine cl = new CommandLine(new Main());
        cl.setExecutionExceptionHandler((e, commandLine, parseResult) -> {
            if (e instanceof IllegalArgumentException || e instanceof IllegalStateException) {
                commandLine.getErr().println("clnorm: " + e.getMessage());
                return 2;
            }
            throw e;
        });
        return cl.execute(args);
    }
}
