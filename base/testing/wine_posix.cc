#include "base/testing/wine.h"

namespace mill {
namespace testing {

bool RunningUnderWine() { return false; }

}  // namespace testing
}  // namespace mill
