// proxyloss::DistributedLoss (include/proxyloss/distributed.h): the process
// group a loss gathers over. Out of line, where c10d::ProcessGroup is a
// complete type, so that the public headers need no c10d header.
#include "proxyloss/distributed.h"

#include <c10/util/Exception.h>

#if PROXYLOSS_HAVE_C10D
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#else
// Without LibTorch's c10d headers no group can be made (set_process_group
// refuses one anyway); a stand-in lets the null pointer be destroyed.
namespace c10d {
class ProcessGroup : public c10::intrusive_ptr_target {};
} // namespace c10d
#endif

namespace proxyloss {

bool distributed_supported() {
  return PROXYLOSS_HAVE_C10D != 0;
}

DistributedLoss::DistributedLoss() = default;
DistributedLoss::DistributedLoss(const DistributedLoss& other) = default;
DistributedLoss& DistributedLoss::operator=(const DistributedLoss& other) = default;
DistributedLoss::~DistributedLoss() = default;

void DistributedLoss::set_process_group(const ProcessGroupPtr& group) {
#if PROXYLOSS_HAVE_C10D
  group_ = group;
#else
  TORCH_CHECK(!group,
              "set_process_group: this build of proxyloss has no c10d support "
              "(PROXYLOSS_DISTRIBUTED was off: LibTorch's c10d headers were not found)");
#endif
}

const ProcessGroupPtr& DistributedLoss::process_group() const {
  return group_;
}

bool DistributedLoss::gathers() const {
#if PROXYLOSS_HAVE_C10D
  return group_ && group_->getSize() > 1;
#else
  return false;
#endif
}

} // namespace proxyloss
