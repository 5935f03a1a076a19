// PNG line plots of CSV columns through gnuplot, when it is installed
// (Debian: gnuplot-nox). Optional: without gnuplot the demos write CSV only.
#pragma once

#include <string>
#include <vector>

namespace demo {

// One line of a plot: column `y` against column `x` of a CSV file with a
// header line, both named as in the header.
struct PlotSeries {
  std::string csv;
  std::string x;
  std::string y;
  std::string title;
};

struct Plot {
  std::string png; // output file; the gnuplot script goes beside it (.gp)
  std::string title;
  std::string x_label;
  std::string y_label;
  std::vector<PlotSeries> series;
  bool points = true; // mark each data point (per-epoch plots); false for curves
};

// True when an executable `gnuplot` is on PATH.
bool gnuplot_available();

// Writes the script and runs gnuplot on it. Returns false (and says why on
// stderr) when gnuplot is missing or fails; never throws for that.
bool render_plot(const Plot& plot);

} // namespace demo
