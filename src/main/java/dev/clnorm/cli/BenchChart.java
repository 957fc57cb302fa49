package dev.clnorm.cli;

import dev.clnorm.bench.BenchResult;
import dev.clnorm.bench.BenchRunner;
import dev.clnorm.bench.Op;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.CategoryChart;
import org.knowm.xchart.CategoryChartBuilder;
import org.knowm.xchart.CategorySeries;
import org.knowm.xchart.style.markers.SeriesMarkers;

import javax.imageio.ImageIO;
import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * {@code bench --chart FILE.png}: one panel per operation, effective GB/s (median wall time, minimum
 * traffic model) per shape, a solid line with markers per device, and each device's copy bandwidth
 * measured in the same run on the same element count as a dashed line of the same colour. Log-scale y axis:
 * tiny and large shapes differ by orders of magnitude.
 */
final class BenchChart {
    private static final int PANEL_WIDTH = 900;
    private static final int PANEL_HEIGHT = 520;
    private static final int TITLE_HEIGHT = 40;
    private static final int LEGEND_ROW = 24;
    private static final Color[] COLORS = {new Color(0x1f77b4), new Color(0xd62728), new Color(0x2ca02c),
            new Color(0xff7f0e), new Color(0x9467bd), new Color(0x8c564b)};

    private BenchChart() {
    }

    static void write(Path file, List<BenchResult> results, String title) throws IOException {
        System.setProperty("java.awt.headless", "true");
        List<String> shapes = new ArrayList<>();
        Map<String, String> devices = new LinkedHashMap<>();
        List<Op> ops = new ArrayList<>();
        for (BenchResult r : results) {
            String s = BenchRunner.shapeText(r.shape());
            if (!shapes.contains(s)) {
                shapes.add(s);
            }
            devices.putIfAbsent(r.deviceId(), r.deviceName());
            // The references are no panels of their own: copy is drawn in every panel, the floors not at all.
            if (!r.op().isYardstick() && !ops.contains(r.op())) {
                ops.add(r.op());
            }
        }
        if (ops.isEmpty()) {
            throw new IllegalArgumentException("--chart: no batch-norm results to draw");
        }
        List<BufferedImage> panels = new ArrayList<>();
        for (Op op : ops) {
            panels.add(BitmapEncoder.getBufferedImage(panel(op, results, shapes, devices)));
        }
        int cols = panels.size() == 1 ? 1 : 2;
        int rows = (panels.size() + cols - 1) / cols;
        int top = TITLE_HEIGHT + LEGEND_ROW * devices.size() + 8;
        BufferedImage img = new BufferedImage(cols * PANEL_WIDTH, top + rows * PANEL_HEIGHT,
                BufferedImage.TYPE_INT_RGB);
        Graphics2D g = img.createGraphics();
        try {
            g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
            g.setColor(Color.WHITE);
            g.fillRect(0, 0, img.getWidth(), img.getHeight());
            g.setColor(Color.BLACK);
            g.setFont(new Font(Font.SANS_SERIF, Font.BOLD, 18));
            g.drawString(title, 16, 28);
            legend(g, devices, TITLE_HEIGHT);
            for (int i = 0; i < panels.size(); i++) {
                g.drawImage(panels.get(i), (i % cols) * PANEL_WIDTH, top + (i / cols) * PANEL_HEIGHT, null);
            }
        } finally {
            g.dispose();
        }
        if (!ImageIO.write(img, "png", file.toFile())) {
            throw new IOException("no PNG writer available");
        }
    }

    /** One row per device: its colour as a solid line with a marker (measured) and dashed (copy). */
    private static void legend(Graphics2D g, Map<String, String> devices, int y0) {
        g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
        g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 14));
        int width = 0;
        for (Map.Entry<String, String> d : devices.entrySet()) {
            width = Math.max(width, g.getFontMetrics().stringWidth(legendText(d)));
        }
        int x2 = 70 + width + 40;
        int i = 0;
        for (Map.Entry<String, String> d : devices.entrySet()) {
            Color color = COLORS[i % COLORS.length];
            int y = y0 + LEGEND_ROW * i + LEGEND_ROW / 2;
            g.setColor(color);
            g.setStroke(new BasicStroke(2.5f));
            g.drawLine(20, y, 60, y);
            g.fillOval(36, y - 4, 9, 9);
            g.setColor(Color.BLACK);
            g.drawString(legendText(d), 70, y + 5);
            g.setColor(color);
            g.setStroke(DASHED);
            g.drawLine(x2, y, x2 + 40, y);
            g.setColor(Color.BLACK);
            g.drawString("copy bandwidth of " + d.getKey() + ", same run, same element count", x2 + 50, y + 5);
            i++;
        }
    }

    private static String legendText(Map.Entry<String, String> device) {
        return device.getKey() + ": " + shortName(device.getValue());
    }

    private static final BasicStroke DASHED = new BasicStroke(1.5f, BasicStroke.CAP_BUTT, BasicStroke.JOIN_MITER, 10f,
            new float[]{8f, 6f}, 0f);

    private static CategoryChart panel(Op op, List<BenchResult> results, List<String> shapes,
                                       Map<String, String> devices) {
        CategoryChart c = new CategoryChartBuilder().width(PANEL_WIDTH).height(PANEL_HEIGHT)
                .title(op.id() + " (" + op.bytesPerElement() + " bytes/element)")
                .xAxisTitle("shape").yAxisTitle("effective GB/s (log scale)").build();
        c.getStyler().setYAxisLogarithmic(true);
        c.getStyler().setChartBackgroundColor(Color.WHITE);
        c.getStyler().setPlotGridVerticalLinesVisible(false);
        c.getStyler().setXAxisLabelRotation(30);
        // Lines, not bars: XChart gives each series of a bar chart its own slot, so a copy reference drawn
        // as a line would sit beside the bars it refers to rather than over them.
        c.getStyler().setDefaultSeriesRenderStyle(CategorySeries.CategorySeriesRenderStyle.Line);
        c.getStyler().setOverlapped(true);  // every series at the category's centre
        c.getStyler().setLegendVisible(false);  // one legend for all panels, drawn above them
        c.getStyler().setMarkerSize(9);
        c.getStyler().setDecimalPattern("#,##0.###");
        c.getStyler().setChartTitleFont(new Font(Font.SANS_SERIF, Font.BOLD, 15));
        c.getStyler().setAxisTickLabelsFont(new Font(Font.SANS_SERIF, Font.PLAIN, 12));
        // A log axis needs a positive minimum: the decade below the data (so it carries a label), and
        // the 1-2-5 step above it.
        double min = Double.POSITIVE_INFINITY;
        double max = 0;
        for (BenchResult r : results) {
            if (r.op() == op) {
                min = Math.min(min, Math.min(r.gbps(), r.copyGbps()));
                max = Math.max(max, Math.max(r.gbps(), r.copyGbps()));
            }
        }
        c.getStyler().setYAxisMin(Math.pow(10, Math.floor(Math.log10(min))));
        c.getStyler().setYAxisMax(niceAbove(max));
        int i = 0;
        for (Map.Entry<String, String> d : devices.entrySet()) {
            Color color = COLORS[i++ % COLORS.length];
            List<Double> gbps = new ArrayList<>();
            List<Double> copy = new ArrayList<>();
            for (String shape : shapes) {
                BenchResult r = find(results, d.getKey(), shape, op);
                gbps.add(r == null ? null : r.gbps());
                copy.add(r == null ? null : r.copyGbps());
            }
            CategorySeries measured = c.addSeries(legendText(d), shapes, gbps);
            measured.setLineColor(color);
            measured.setMarkerColor(color);
            measured.setMarker(SeriesMarkers.CIRCLE);
            measured.setLineStyle(new BasicStroke(2.5f));
            CategorySeries line = c.addSeries("copy, " + d.getKey() + " (same run)", shapes, copy);
            line.setLineColor(color);
            line.setMarkerColor(color);
            line.setMarker(SeriesMarkers.NONE);
            line.setLineStyle(DASHED);
        }
        return c;
    }

    /** The smallest of 1, 2, 5 x 10^k at or above v (v > 0). */
    static double niceAbove(double v) {
        double decade = Math.pow(10, Math.floor(Math.log10(v)));
        for (double m : new double[]{1, 2, 5, 10}) {
            if (m * decade >= v) {
                return m * decade;
            }
        }
        return 10 * decade;
    }

    private static BenchResult find(List<BenchResult> results, String device, String shape, Op op) {
        for (BenchResult r : results) {
            if (r.deviceId().equals(device) && r.op() == op && BenchRunner.shapeText(r.shape()).equals(shape)) {
                return r;
            }
        }
        return null;
    }

    /** Device names like "pthread-skylake-avx512-Intel(R) Xeon(R) Processor @ 2.50GHz" shortened for legends. */
    static String shortName(String name) {
        String n = name.replace("(R)", "").replace("(TM)", "").replaceAll("\\s+", " ").trim();
        return n.length() <= 64 ? n : n.substring(0, 61) + "...";
    }
}
