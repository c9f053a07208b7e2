#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace certfleet::ctl {

// A plain text table with left-aligned columns separated by two spaces. Not thread-safe.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void Print(std::ostream& out) const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace certfleet::ctl
