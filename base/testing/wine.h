// RunningUnderWine: whether this test runs under Wine rather than Windows,
// for the few test cases skipped under Wine only because of a Wine defect:
//
//   if (mill::testing::RunningUnderWine()) {
//     GTEST_SKIP() << "Wine: <the Wine behaviour>";
//   }
//
// Windows: true if ntdll.dll exports wine_get_version (Wine's own export,
// absent on Windows). Elsewhere: false. Test-only (//base/testing:wine).
#ifndef MILL_IO_BASE_TESTING_WINE_H_
#define MILL_IO_BASE_TESTING_WINE_H_

namespace mill {
namespace testing {

bool RunningUnderWine();

}  // namespace testing
}  // namespace mill

#endif  // MILL_IO_BASE_TESTING_WINE_H_
