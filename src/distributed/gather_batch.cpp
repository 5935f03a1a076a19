// The gather behind every loss handed a process group (gather_batch.h).
#include "distributed/gather_batch.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <torch/autograd.h>

#if PROXYLOSS_HAVE_C10D
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#endif

#include <algorithm>
#include <charconv>
#include <map>
#include <set>
#include <sstream>

namespace proxyloss {
namespace distributed_impl {

// --- the options ---------------------------------------------------------------

OptionList& OptionList::add(const std::string& name, const std::string& value) {
  entries_.emplace_back(name, value);
  return *this;
}

OptionList& OptionList::add(const std::string& name, const char* value) {
  return add(name, std::string(value));
}

OptionList& OptionList::add(const std::string& name, double value) {
  char text[32];
  const auto end = std::to_chars(text, text + sizeof(text), value).ptr;
  return add(name, std::string(text, end));
}

OptionList& OptionList::add(const std::string& name, int64_t value) {
  return add(name, std::to_string(value));
}

OptionList& OptionList::add(const std::string& name, bool value) {
  return add(name, std::string(value ? "true" : "false"));
}

OptionList& OptionList::add(const std::string& name, const optional<int64_t>& value) {
  return value.has_value() ? add(name, *value) : add(name, std::string("None"));
}

OptionList& OptionList::add_values(const std::string& name, const at::Tensor& value) {
  if (!value.defined()) {
    return add(name, std::string("None"));
  }
  const auto values = value.detach().to(at::kCPU, at::kDouble).contiguous();
  std::string text = "(";
  for (int64_t i = 0; i < values.numel(); ++i) {
    char number[32];
    const auto end =
        std::to_chars(number, number + sizeof(number), values.data_ptr<double>()[i]).ptr;
    text += (i ? ", " : "") + std::string(number, end);
  }
  return add(name, text + ")");
}

// --- the gradient rule -----------------------------------------------------------

at::Tensor gathered_rows_backward(const GatheredRows& where, const at::Tensor& grad) {
  return grad.narrow(0, where.start, where.rows) * where.world_size;
}

namespace {

// The concatenation of every rank's rows, this rank's being `local`; its
// backward is gathered_rows_backward.
struct GatheredRowsFunction : public torch::autograd::Function<GatheredRowsFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx,
                            const at::Tensor& local, int64_t rank,
                            const std::vector<at::Tensor>& others) {
    std::vector<at::Tensor> pieces(others.begin(), others.begin() + rank);
    int64_t start = 0;
    for (const auto& piece : pieces) {
      start += piece.size(0);
    }
    pieces.push_back(local);
    pieces.insert(pieces.end(), others.begin() + rank, others.end());
    ctx->saved_data["start"] = start;
    ctx->saved_data["rows"] = local.size(0);
    ctx->saved_data["world_size"] = static_cast<int64_t>(others.size() + 1);
    return at::cat(pieces);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    GatheredRows where;
    where.start = ctx->saved_data["start"].toInt();
    where.rows = ctx->saved_data["rows"].toInt();
    where.world_size = ctx->saved_data["world_size"].toInt();
    return {gathered_rows_backward(where, grads[0]), at::Tensor(), at::Tensor()};
  }
};

// Header fields (int64).
enum Field : int64_t { kRows, kMalformed, kDigest, kSeed, kPointer, kChecksum, kFields };

// Why this rank's call cannot be gathered, or "" when it can.
std::string malformed(const std::vector<BatchTensor>& tensors) {
  const auto& first = tensors[0];
  if (first.tensor.dim() == 0) {
    return first.label + " has no batch dimension (dim 0) to gather along";
  }
  for (size_t i = 1; i < tensors.size(); ++i) {
    const auto& tensor = tensors[i].tensor;
    if (tensor.defined() &&
        (tensor.dim() == 0 || tensor.size(0) != first.tensor.size(0))) {
      std::ostringstream why;
      why << tensors[i].label << " has ";
      if (tensor.dim() == 0) {
        why << "no batch dimension";
      } else {
        why << tensor.size(0) << " rows";
      }
      why << " but " << first.label << " has " << first.tensor.size(0) << " rows (shapes "
          << tensor.sizes() << " and " << first.tensor.sizes() << ")";
      return why.str();
    }
  }
  return "";
}

// What must agree about a tensor: presence, dtype, the shape after dim 0:
// "float32 [N, 3]" or "None".
std::string describe(const at::Tensor& tensor) {
  if (!tensor.defined()) {
    return "None";
  }
  std::ostringstream text;
  std::string dtype = c10::toString(tensor.scalar_type());
  static const std::map<std::string, std::string> python_names = {
      {"Float", "float32"},     {"Double", "float64"}, {"Half", "float16"},
      {"BFloat16", "bfloat16"}, {"Long", "int64"},     {"Int", "int32"},
      {"Short", "int16"},       {"Char", "int8"},      {"Byte", "uint8"},
      {"Bool", "bool"}};
  const auto found = python_names.find(dtype);
  text << (found == python_names.end() ? dtype : found->second) << " [N";
  for (int64_t d = 1; d < tensor.dim(); ++d) {
    text << ", " << tensor.size(d);
  }
  text << "]";
  return text.str();
}

// This rank's description, one record per line: the malformed reason, the
// options as name=value, the tensors as label=description (fields separated
// by \x1f, records by \x1e: neither occurs in names or printed values).
constexpr char kFieldSeparator = '\x1f';
constexpr char kRecordSeparator = '\x1e';

std::string encode(const std::string& why, const OptionList& options,
                   const std::vector<BatchTensor>& tensors) {
  std::string text = why;
  for (const auto& entry : options.entries()) {
    text += kRecordSeparator + entry.first + kFieldSeparator + entry.second;
  }
  for (const auto& tensor : tensors) {
    text += kRecordSeparator + tensor.label + kFieldSeparator + describe(tensor.tensor);
  }
  return text;
}

struct Description {
  std::string why;
  std::vector<std::pair<std::string, std::string>> options;
  std::vector<std::pair<std::string, std::string>> tensors;
};

Description decode(const std::string& text, size_t tensor_count) {
  std::vector<std::string> records;
  size_t begin = 0;
  while (true) {
    const size_t end = text.find(kRecordSeparator, begin);
    records.push_back(text.substr(begin, end - begin));
    if (end == std::string::npos) {
      break;
    }
    begin = end + 1;
  }
  Description description;
  description.why = records[0];
  for (size_t i = 1; i < records.size(); ++i) {
    const size_t split = records[i].find(kFieldSeparator);
    auto entry =
        std::make_pair(records[i].substr(0, split), records[i].substr(split + 1));
    if (i + tensor_count >= records.size()) {
      description.tensors.push_back(std::move(entry));
    } else {
      description.options.push_back(std::move(entry));
    }
  }
  return description;
}

// FNV-1a, 64 bits: the same on every rank for the same text.
int64_t digest(const std::string& text) {
  uint64_t hash = 1469598103934665603ULL;
  for (const unsigned char byte : text) {
    hash = (hash ^ byte) * 1099511628211ULL;
  }
  return static_cast<int64_t>(hash);
}

// An int64 checksum of the buffers' bits (each [Q, ...]): the sum over the
// buffers k and their rows i of (k + 1) (i mod 65521 + 1) times the sum of
// row i's 16-bit words. Exact (integers, no rounding, no overflow below 2^31
// words in all), sensitive to which row holds what; one pass over the queue.
// (python/proxyloss/_distributed.py's, the same numbers.)
int64_t checksum(const std::vector<at::Tensor>& buffers) {
  at::Tensor total;
  for (size_t k = 0; k < buffers.size(); ++k) {
    const auto& buffer = buffers[k];
    const auto rows = buffer.detach().reshape({buffer.size(0), -1});
    const auto words = rows.element_size() == 1 ? rows.to(at::kShort)
                                                : rows.contiguous().view(at::kShort);
    const auto sums = words.sum(1, /*keepdim=*/false, at::kLong);
    const auto place = at::arange(sums.numel(), sums.options()).remainder(65521).add(1);
    const auto term = sums.mul(place).sum().mul(static_cast<int64_t>(k + 1));
    total = total.defined() ? total.add(term) : term;
  }
  return total.defined() ? total.item<int64_t>() : 0;
}

#if PROXYLOSS_HAVE_C10D

// all_gather of one tensor (the same shape on every rank), list form (Gloo has
// no all_gather_into_tensor).
std::vector<at::Tensor> all_gather(c10d::ProcessGroup& group, const at::Tensor& tensor) {
  std::vector<std::vector<at::Tensor>> outputs(1);
  for (int r = 0; r < group.getSize(); ++r) {
    outputs[0].push_back(at::empty_like(tensor));
  }
  std::vector<at::Tensor> inputs{tensor};
  group.allgather(outputs, inputs)->wait();
  return outputs[0];
}

// Every rank gathers every rank's description and throws the same error.
// (The tensors travel on `device`, the logits': NCCL moves device tensors.)
[[noreturn]] void throw_disagreement(c10d::ProcessGroup& group, const std::string& loss,
                                     const std::string& mine, size_t tensor_count,
                                     c10::Device device) {
  const auto length = at::tensor({static_cast<int64_t>(mine.size())}, at::kLong);
  int64_t longest = 0;
  for (const auto& theirs : all_gather(group, length.to(device))) {
    longest = std::max(longest, theirs.item<int64_t>());
  }
  auto bytes = at::zeros({longest + 1}, at::kByte);
  std::copy(mine.begin(), mine.end(), bytes.data_ptr<uint8_t>());
  std::vector<Description> everyone;
  for (const auto& theirs : all_gather(group, bytes.to(device))) {
    const auto host = theirs.to(at::kCPU);
    const auto* data = reinterpret_cast<const char*>(host.data_ptr<uint8_t>());
    everyone.push_back(decode(std::string(data), tensor_count));
  }
  std::vector<std::string> problems;
  for (size_t r = 0; r < everyone.size(); ++r) {
    if (!everyone[r].why.empty()) {
      problems.push_back("rank " + std::to_string(r) + ": " + everyone[r].why);
    }
  }
  // The options by name, in the order of first appearance.
  std::vector<std::string> names;
  std::set<std::string> seen;
  for (const auto& description : everyone) {
    for (const auto& entry : description.options) {
      if (seen.insert(entry.first).second) {
        names.push_back(entry.first);
      }
    }
  }
  const auto value_of = [](const Description& description, const std::string& name) {
    for (const auto& entry : description.options) {
      if (entry.first == name) {
        return entry.second;
      }
    }
    return std::string("(none)");
  };
  for (const auto& name : names) {
    std::vector<std::string> values;
    for (const auto& description : everyone) {
      values.push_back(value_of(description, name));
    }
    if (std::any_of(values.begin(), values.end(),
                    [&](const std::string& value) { return value != values[0]; })) {
      std::string problem = name + " differs: ";
      for (size_t r = 0; r < values.size(); ++r) {
        problem += (r ? ", rank " : "rank ") + std::to_string(r) + " has " + values[r];
      }
      problems.push_back(problem);
    }
  }
  for (size_t t = 0; t < tensor_count; ++t) {
    bool differ = false;
    for (const auto& description : everyone) {
      differ = differ || description.tensors[t].second != everyone[0].tensors[t].second;
    }
    if (differ) {
      std::string problem = everyone[0].tensors[t].first + " differs: ";
      for (size_t r = 0; r < everyone.size(); ++r) {
        problem += (r ? ", rank " : "rank ") + std::to_string(r) + " passes " +
                   everyone[r].tensors[t].second;
      }
      problems.push_back(problem);
    }
  }
  std::string joined;
  for (size_t i = 0; i < problems.size(); ++i) {
    joined += (i ? "; " : "") + problems[i];
  }
  TORCH_CHECK(false, loss,
              ": the ranks' calls disagree, so the batch cannot be gathered across "
              "processes (process_group): ",
              joined);
}

// Every rank's rows of `tensor` (counts[r] rows on rank r), concatenated in
// rank order; the logits (`with_grad`) through GatheredRowsFunction.
at::Tensor gather_rows(c10d::ProcessGroup& group, const at::Tensor& tensor,
                       const std::vector<int64_t>& counts, int rank, bool with_grad) {
  const auto local = with_grad ? tensor : tensor.detach();
  auto transport = local.detach();
  if (transport.scalar_type() == at::kBool) { // Gloo and NCCL move bytes
    transport = transport.to(at::kByte);
  }
  const int64_t width = *std::max_element(counts.begin(), counts.end());
  std::vector<at::Tensor> pieces;
  if (width == 0) {
    pieces.assign(counts.size(), transport);
  } else {
    if (transport.size(0) < width) {
      auto shape = transport.sizes().vec();
      shape[0] = width - transport.size(0);
      transport = at::cat({transport, at::zeros(shape, transport.options())});
    }
    const auto buffers = all_gather(group, transport.contiguous());
    for (size_t r = 0; r < counts.size(); ++r) {
      pieces.push_back(buffers[r].narrow(0, 0, counts[r]));
    }
  }
  if (tensor.scalar_type() == at::kBool) {
    for (auto& piece : pieces) {
      piece = piece.to(at::kBool);
    }
  }
  if (with_grad) {
    std::vector<at::Tensor> others;
    for (size_t r = 0; r < pieces.size(); ++r) {
      if (static_cast<int>(r) != rank) {
        others.push_back(pieces[r]);
      }
    }
    return GatheredRowsFunction::apply(local, static_cast<int64_t>(rank), others);
  }
  pieces[rank] = local;
  return at::cat(pieces);
}

#endif // PROXYLOSS_HAVE_C10D

} // namespace

GatheredBatch gather_batch(const ProcessGroupPtr& group_ptr, const std::string& loss,
                           const OptionList& options,
                           const std::vector<BatchTensor>& tensors,
                           const optional<QueueState>& queue, bool shared_seed) {
#if PROXYLOSS_HAVE_C10D
  TORCH_INTERNAL_ASSERT(group_ptr && !tensors.empty());
  auto& group = *group_ptr;
  const int world = group.getSize();
  const int rank = group.getRank();
  const auto& first = tensors[0].tensor;
  TORCH_CHECK(first.defined(), loss, ": ", tensors[0].label, " is undefined");
  const std::string why = malformed(tensors);
  // The digest covers the loss's name, the options and the tensors'
  // descriptions (not the malformed reason, which has its own field).
  const std::string mine = encode(why, options, tensors);
  const auto device = first.device();
  std::vector<int64_t> header(kFields, 0);
  header[kRows] = why.empty() ? first.size(0) : 0;
  header[kMalformed] = why.empty() ? 0 : 1;
  header[kDigest] = digest(loss + encode("", options, tensors));
  if (shared_seed) {
    header[kSeed] = at::randint(0, int64_t(1) << 62, {1},
                                at::TensorOptions().dtype(at::kLong).device(device))
                        .item<int64_t>();
  }
  if (queue.has_value()) {
    header[kPointer] = queue->ptr.reshape({-1})[0].item<int64_t>();
    header[kChecksum] = checksum(queue->buffers);
  }
  // Gloo moves CPU tensors, NCCL device ones: the header lives with the logits.
  const auto headers = all_gather(group, at::tensor(header, at::kLong).to(device));
  std::vector<std::vector<int64_t>> table;
  for (const auto& row : headers) {
    const auto host = row.to(at::kCPU);
    table.emplace_back(host.data_ptr<int64_t>(), host.data_ptr<int64_t>() + kFields);
  }
  bool disagree = false;
  for (const auto& row : table) {
    disagree = disagree || row[kMalformed] != 0 || row[kDigest] != table[0][kDigest];
  }
  if (disagree) {
    throw_disagreement(group, loss, mine, tensors.size(), device);
  }
  for (const auto& row : table) {
    if (row[kPointer] != table[0][kPointer]) {
      std::string pointers;
      for (int r = 0; r < world; ++r) {
        pointers += (r ? ", rank " : "rank ") + std::to_string(r) + ": " +
                    std::to_string(table[r][kPointer]);
      }
      TORCH_CHECK(
          false, loss, ": the queues' write pointers differ across ranks (", pointers,
          "): the queues have diverged (e.g. reset_queue() or torch::load on some "
          "ranks only), so the ranks would rank different pools (process_group)");
    }
  }
  for (const auto& row : table) {
    TORCH_CHECK(
        row[kChecksum] == table[0][kChecksum], loss,
        ": the queues' contents differ across ranks (their checksums differ): the "
        "queues have diverged (e.g. the loss ran before its process group was set, "
        "or torch::load ran on some ranks only), so the ranks would rank different "
        "pools (process_group); reset_queue() on every rank, or load the same state "
        "on every rank");
  }
  std::vector<int64_t> counts;
  for (const auto& row : table) {
    counts.push_back(row[kRows]);
  }
  GatheredBatch gathered;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& tensor = tensors[i].tensor;
    gathered.tensors.push_back(
        tensor.defined() ? gather_rows(group, tensor, counts, rank, /*with_grad=*/i == 0)
                         : at::Tensor());
  }
  if (shared_seed) {
    gathered.seed = table[0][kSeed];
  }
  return gathered;
#else
  (void)group_ptr, (void)options, (void)tensors, (void)queue, (void)shared_seed;
  TORCH_CHECK(false, loss,
              ": this build of proxyloss has no c10d support (PROXYLOSS_DISTRIBUTED)");
#endif
}

// --- the seeded generator --------------------------------------------------------

SeededDefaultGenerator::SeededDefaultGenerator(const optional<int64_t>& seed,
                                               const at::Tensor& logits) {
  if (!seed.has_value()) {
    return;
  }
  device_ = logits.device();
  if (device_.type() != c10::kCPU && device_.type() != c10::kCUDA) {
    return; // no default generator we know of: the op draws as it would
  }
  auto generator = at::globalContext().defaultGenerator(device_);
  std::lock_guard<std::mutex> lock(generator.mutex());
  state_ = generator.get_state();
  generator.set_current_seed(static_cast<uint64_t>(*seed));
  active_ = true;
}

SeededDefaultGenerator::~SeededDefaultGenerator() {
  if (active_) {
    auto generator = at::globalContext().defaultGenerator(device_);
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_state(state_);
  }
}

} // namespace distributed_impl
} // namespace proxyloss
