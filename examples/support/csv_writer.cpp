#include "support/csv_writer.h"

#include <filesystem>
#include <stdexcept>

namespace demo {

CsvWriter::CsvWriter(const std::string& path, const std::vector<std::string>& columns)
    : path_(path), file_(path) {
  if (!file_) {
    throw std::runtime_error("cannot write " + path);
  }
  file_.precision(9);
  for (size_t i = 0; i < columns.size(); ++i) {
    file_ << (i ? "," : "") << columns[i];
  }
  file_ << '\n';
}

void CsvWriter::numbers_row(const std::vector<double>& values) {
  for (size_t i = 0; i < values.size(); ++i) {
    file_ << (i ? "," : "") << values[i];
  }
  file_ << '\n';
  file_.flush();
}

std::string output_path(const std::string& dir, const std::string& name) {
  std::filesystem::create_directories(dir);
  return (std::filesystem::path(dir) / name).string();
}

} // namespace demo
