package dev.clnorm.train;

import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;
import org.knowm.xchart.style.Styler;
import org.knowm.xchart.style.markers.SeriesMarkers;

import javax.imageio.ImageIO;
import java.awt.Color;
import java.awt.Graphics2D;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Training curves as one PNG (XChart): training loss against epochs on the left (every loss
 * reading), test accuracy after each epoch on the right, one series per run.
 */
public final class Charts {
    private static final int WIDTH = 760;
    private static final int HEIGHT = 500;

    private Charts() {
    }

    /** The label of a run in legends: variant, plus learning rate and device when runs differ in them. */
    public static String label(Trainer.Run r, boolean showLr, boolean showDevice) {
        StringBuilder sb = new StringBuilder(r.variant().equals("bn") ? "batch norm" : "plain");
        if (showLr) {
            sb.append(String.format(Locale.ROOT, ", lr %s", Double.toString(r.lr())));
        }
        if (showDevice) {
            sb.append(", ").append(r.device());
        }
        return sb.toString();
    }

    /** Writes the two panels side by side into {@code file} (PNG). */
    public static void write(Path file, List<Trainer.Run> runs, String title) throws IOException {
        System.setProperty("java.awt.headless", "true");
        boolean showLr = runs.stream().map(Trainer.Run::lr).distinct().count() > 1;
        boolean showDevice = runs.stream().map(Trainer.Run::device).distinct().count() > 1;

        XYChart loss = new XYChartBuilder().width(WIDTH).height(HEIGHT).title("Training loss")
                .xAxisTitle("epoch").yAxisTitle("softmax cross-entropy (mean over the last steps)").build();
        XYChart acc = new XYChartBuilder().width(WIDTH).height(HEIGHT).title("Test accuracy (inference mode)")
                .xAxisTitle("epoch").yAxisTitle("accuracy (%)").build();
        for (XYChart c : new XYChart[]{loss, acc}) {
            c.getStyler().setLegendPosition(Styler.LegendPosition.OutsideS);
            c.getStyler().setLegendLayout(Styler.LegendLayout.Horizontal);
            c.getStyler().setChartBackgroundColor(Color.WHITE);
            c.getStyler().setPlotGridLinesVisible(true);
            c.getStyler().setDecimalPattern("#,##0.###");
        }

        double hi = 0;
        List<Double> readings = new ArrayList<>();
        for (Trainer.Run r : runs) {
            String name = label(r, showLr, showDevice);
            List<Double> xs = new ArrayList<>();
            List<Double> ys = new ArrayList<>();
            boolean diverged = false;
            for (Trainer.LossPoint p : r.curve()) {
                if (Double.isFinite(p.loss()) && p.loss() > 0) {
                    xs.add(p.epoch());
                    ys.add(p.loss());
                    readings.add(p.loss());
                    hi = Math.max(hi, p.loss());
                } else {
                    diverged = true;
                }
            }
            if (!xs.isEmpty()) {
                XYSeries s = loss.addSeries(name + (diverged ? " (then NaN)" : ""), xs, ys);
                s.setMarker(SeriesMarkers.NONE);
            }
            List<Double> ex = new ArrayList<>();
            List<Double> ey = new ArrayList<>();
            for (Trainer.EpochResult e : r.epochs()) {
                ex.add((double) e.epoch());
                ey.add(100 * e.test().accuracy());
            }
            acc.addSeries(name, ex, ey);
        }
        if (hi > 0 && readings.size() > 10) {
            // The first readings (or a diverging run) would flatten everything else: clip the axis at
            // twice the 95th percentile of all readings and say so.
            List<Double> sorted = new ArrayList<>(readings);
            sorted.sort(null);
            double cap = 2 * sorted.get((int) (0.95 * (sorted.size() - 1)));
            if (hi > cap) {
                loss.getStyler().setYAxisMax(cap);
                loss.getStyler().setYAxisMin(0.0);
                loss.setTitle(String.format(Locale.ROOT, "Training loss (axis clipped at %.2f; highest reading %.2f)",
                        cap, hi));
            }
        }

        BufferedImage left = BitmapEncoder.getBufferedImage(loss);
        BufferedImage right = BitmapEncoder.getBufferedImage(acc);
        int titleHeight = title == null || title.isBlank() ? 0 : 34;
        BufferedImage all = new BufferedImage(left.getWidth() + right.getWidth(),
                titleHeight + Math.max(left.getHeight(), right.getHeight()), BufferedImage.TYPE_INT_RGB);
        Graphics2D g = all.createGraphics();
        try {
            g.setColor(Color.WHITE);
            g.fillRect(0, 0, all.getWidth(), all.getHeight());
            if (titleHeight > 0) {
                g.setColor(Color.BLACK);
                g.setFont(g.getFont().deriveFont(java.awt.Font.BOLD, 15f));
                int w = g.getFontMetrics().stringWidth(title);
                g.drawString(title, Math.max(8, (all.getWidth() - w) / 2), 23);
            }
            g.drawImage(left, 0, titleHeight, null);
            g.drawImage(right, left.getWidth(), titleHeight, null);
        } finally {
            g.dispose();
        }
        Path parent = file.toAbsolutePath().getParent();
        if (parent != null) {
            Files.createDirectories(parent);
        }
        if (!ImageIO.write(all, "png", file.toFile())) {
            throw new IOException("no PNG writer available to write " + file);
        }
    }
}
