package dev.clnorm.cli;

import dev.clnorm.Devices;
import dev.clnorm.backend.Backend;
import dev.clnorm.backend.DeviceInfo;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.util.List;
import java.util.Locale;

/** Lists every device and says which one a layer gets by default, and why. */
@Command(name = "devices", mixinStandardHelpOptions = true,
        description = "List every compute device (the Java backend included) and the default choice.")
final class DevicesCommand implements Runnable {

    @Option(names = "--json", description = "Print JSON instead of a table.")
    boolean json;

    @Override
    public void run() {
        List<DeviceInfo> devices = Devices.list();
        String selector = Devices.configuredSelector();
        String defaultId;
        try (Backend b = Devices.open(selector)) {
            defaultId = b.info().id();
        }
        String why = "auto".equals(selector)
                ? "automatic choice: GPU, then accelerator, then OpenCL CPU device, then the Java backend"
                : "selected by " + (System.getProperty(Devices.PROPERTY) != null ? "-D" + Devices.PROPERTY
                : Devices.ENVIRONMENT) + "=" + selector;
        if (json) {
            printJson(devices, defaultId, why);
            return;
        }
        Table t = new Table("", "id", "kind", "platform", "vendor", "name", "version", "CUs", "global mem",
                "max alloc", "max WG", "fp64", "fp16");
        for (DeviceInfo d : devices) {
            t.row(d.id().equals(defaultId) ? "*" : "", d.id(), d.kind().toString(), d.platform(), d.vendor(), d.name(),
                    d.version(), Integer.toString(d.computeUnits()), Table.bytes(d.globalMemBytes()),
                    Table.bytes(d.maxAllocBytes()), Long.toString(d.maxWorkGroupSize()), d.fp64() ? "yes" : "no",
                    d.fp16() ? "yes" : "no");
        }
        System.out.print(t.render());
        System.out.println("* default: " + defaultId + " (" + why + ")");
        for (String p : Devices.openClProblems()) {
            System.out.println("note: " + p);
        }
    }

    private static void printJson(List<DeviceInfo> devices, String defaultId, String why) {
        StringBuilder sb = new StringBuilder("{\n  \"default\": ").append(Json.str(defaultId))
                .append(",\n  \"default_reason\": ").append(Json.str(why)).append(",\n  \"devices\": [\n");
        for (int i = 0; i < devices.size(); i++) {
            DeviceInfo d = devices.get(i);
            sb.append(String.format(Locale.ROOT, "    {\"id\": %s, \"kind\": %s, \"platform\": %s, \"vendor\": %s, "
                            + "\"name\": %s, \"version\": %s, \"compute_units\": %d, \"global_mem_bytes\": %d, "
                            + "\"max_alloc_bytes\": %d, \"max_work_group_size\": %d, \"fp64\": %b, \"fp16\": %b}%s%n",
                    Json.str(d.id()), Json.str(d.kind().toString()), Json.str(d.platform()), Json.str(d.vendor()),
                    Json.str(d.name()), Json.str(d.version()), d.computeUnits(), d.globalMemBytes(), d.maxAllocBytes(),
                    d.maxWorkGroupSize(), d.fp64(), d.fp16(), i + 1 < devices.size() ? "," : ""));
        }
        sb.append("  ],\n  \"problems\": [");
        List<String> problems = Devices.openClProblems();
        for (int i = 0; i < problems.size(); i++) {
            sb.append(i == 0 ? "" : ", ").append(Json.str(problems.get(i)));
        }
        sb.append("]\n}");
        System.out.println(sb);
    }
}
