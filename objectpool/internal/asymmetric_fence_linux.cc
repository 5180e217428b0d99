#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "objectpool/internal/asymmetric_fence.h"

namespace mill {
namespace objectpool_internal {
namespace {

long Membarrier(int cmd) { return syscall(__NR_membarrier, cmd, 0, 0); }

}  // namespace

bool RegisterProcessBarrier() {
  const long supported = Membarrier(MEMBARRIER_CMD_QUERY);
  return supported >= 0 &&
         (supported & MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0 &&
         Membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
}

void ProcessBarrier() { Membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED); }

}  // namespace objectpool_internal
}  // namespace mill
