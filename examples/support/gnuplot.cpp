#include "support/gnuplot.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <unistd.h>

namespace demo {
namespace {

// A gnuplot string literal: single quotes, embedded ones doubled.
std::string quoted(const std::string& text) {
  std::string out = "'";
  for (const char c : text) {
    out += c;
    if (c == '\'') {
      out += '\'';
    }
  }
  return out + "'";
}

// A POSIX shell word: single quotes, an embedded one as '\''.
std::string shell_quoted(const std::string& text) {
  std::string out = "'";
  for (const char c : text) {
    out += (c == '\'') ? std::string("'\\''") : std::string(1, c);
  }
  return out + "'";
}

} // namespace

bool gnuplot_available() {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const auto candidate = std::filesystem::path(dir.empty() ? "." : dir) / "gnuplot";
    if (::access(candidate.c_str(), X_OK) == 0) {
      return true;
    }
  }
  return false;
}

bool render_plot(const Plot& plot) {
  if (!gnuplot_available()) {
    return false;
  }
  const std::string script_path =
      std::filesystem::path(plot.png).replace_extension(".gp").string();
  {
    std::ofstream script(script_path);
    script << "set terminal pngcairo size 900,600 noenhanced\n"
           << "set output " << quoted(plot.png) << "\n"
           << "set datafile separator ','\n"
           << "set title " << quoted(plot.title) << "\n"
           << "set xlabel " << quoted(plot.x_label) << "\n"
           << "set ylabel " << quoted(plot.y_label) << "\n"
           << "set grid\nset key below\n"
           << "plot ";
    for (size_t i = 0; i < plot.series.size(); ++i) {
      const auto& s = plot.series[i];
      // Columns by header name: the first line of the file names them.
      script << (i ? ", \\\n     " : "") << quoted(s.csv) << " using " << quoted(s.x)
             << ":" << quoted(s.y) << " with " << (plot.points ? "linespoints" : "lines")
             << " lw 2 title " << quoted(s.title);
    }
    script << "\n";
  }
  const std::string command = "gnuplot " + shell_quoted(script_path) + " 2>&1";
  if (std::system(command.c_str()) != 0) {
    std::fprintf(stderr, "gnuplot failed on %s\n", script_path.c_str());
    return false;
  }
  return true;
}

} // namespace demo
