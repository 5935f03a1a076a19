// A CSV file written row by row, for the demos' per-epoch numbers.
#pragma once

#include <fstream>
#include <string>
#include <vector>

namespace demo {

class CsvWriter {
 public:
  // Creates (truncates) `path` and writes the header line. Throws
  // std::runtime_error when the file cannot be opened.
  CsvWriter(const std::string& path, const std::vector<std::string>& columns);

  // One line: the values streamed with `<<` (numbers with 9 significant
  // digits), comma-separated, in the header's order.
  template <typename... Values>
  void row(const Values&... values) {
    bool first = true;
    ((file_ << (first ? "" : ",") << values, first = false), ...);
    file_ << '\n';
    file_.flush(); // a run stopped early still leaves its epochs on disk
  }

  // One line of numbers, for rows whose width is known only at run time.
  void numbers_row(const std::vector<double>& values);

  const std::string& path() const {
    return path_;
  }

 private:
  std::string path_;
  std::ofstream file_;
};

// `dir`/`name`, creating `dir` (and its parents) when missing.
std::string output_path(const std::string& dir, const std::string& name);

} // namespace demo
