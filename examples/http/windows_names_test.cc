// The Windows naming rules of the static file service, tested on every
// platform (they are pure functions of bytes).
#include "examples/http/windows_names.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace mill::http {
namespace {

TEST(WindowsNamesTest, PlainNamesPass) {
  for (const char* name : {"a.txt",
                           "index.html",
                           "with space.txt",
                           ".hidden",
                           "a..b",
                           "...a",
                           "CONSOLE",
                           "console.txt",
                           "COM",
                           "COM10",
                           "LPT",
                           "comx",
                           "NULL",
                           "auxiliary.html",
                           "prn_notes",
                           "CON_",
                           "x.CON",
                           "a.con",
                           "LPT1x",
                           "\xe2\x9c\x93.txt",
                           "COM\xc2\xb9x",
                           "$DATA",
                           "a~1.txt",
                           "%41",
                           "[brackets]",
                           "semi;colon",
                           "at@sign",
                           "tab\xc2\xa0nbsp"}) {
    EXPECT_EQ(WindowsNameProblem(name), nullptr) << name;
  }
}

TEST(WindowsNamesTest, DeviceNamesAreRefusedInAnyCaseWithAnyExtension) {
  for (const char* name : {"CON",
                           "con",
                           "Con",
                           "PRN",
                           "AUX",
                           "NUL",
                           "nul",
                           "CONIN$",
                           "conout$",
                           "COM0",
                           "COM1",
                           "com9",
                           "LPT0",
                           "LPT1",
                           "lpt9",
                           "CON.txt",
                           "nul.tar.gz",
                           "Aux.html",
                           "COM1.log",
                           "LPT3.x",
                           "CON .txt",
                           "NUL  .txt",
                           "COM\xc2\xb9",
                           "lpt\xc2\xb2",
                           "COM\xc2\xb3.txt"}) {
    EXPECT_NE(WindowsNameProblem(name), nullptr) << name;
    EXPECT_TRUE(IsWindowsDeviceName(name)) << name;
  }
  EXPECT_FALSE(IsWindowsDeviceName("CONSOLE"));
  EXPECT_FALSE(IsWindowsDeviceName("x.CON"));
  EXPECT_FALSE(IsWindowsDeviceName("COM10"));
  EXPECT_FALSE(IsWindowsDeviceName("COM\xc2\xb9x"));
  EXPECT_FALSE(IsWindowsDeviceName("COM\xc2\xb4"));  // Not a superscript.
}

TEST(WindowsNamesTest, DriveLettersStreamsAndSeparatorsAreRefused) {
  for (const char* name : {"C:", "c:", "C:secret.txt", "a.txt::$DATA",
                           "a.txt:stream", "a.txt:stream:$DATA", ":", "a\\b",
                           "\\\\server", "..\\x", "a/b", "/", "\\"}) {
    EXPECT_NE(WindowsNameProblem(name), nullptr) << name;
  }
}

TEST(WindowsNamesTest, WildcardsControlsAndTrailingDotsOrSpacesAreRefused) {
  for (const std::string& name :
       {std::string("*"), std::string("a*.txt"), std::string("a?.txt"),
        std::string("a\".txt"), std::string("<a>"), std::string("a|b"),
        std::string("a\x01"), std::string("a\x1f"), std::string("a\x7f"),
        std::string("a\0b", 3), std::string("a.txt."), std::string("a.txt "),
        std::string("dir."), std::string("dir.. "), std::string(" ")}) {
    EXPECT_NE(WindowsNameProblem(name), nullptr) << name;
  }
}

TEST(WindowsNamesTest, DotSegmentsAndEmptyAreRefused) {
  EXPECT_NE(WindowsNameProblem(""), nullptr);
  EXPECT_NE(WindowsNameProblem("."), nullptr);
  EXPECT_NE(WindowsNameProblem(".."), nullptr);
}

TEST(WindowsNamesTest, APathIsRefusedForItsFirstBadSegment) {
  EXPECT_EQ(WindowsPathProblem({}), nullptr);
  EXPECT_EQ(WindowsPathProblem({"sub", "index.html"}), nullptr);
  EXPECT_NE(WindowsPathProblem({"sub", "CON"}), nullptr);
  EXPECT_NE(WindowsPathProblem({"NUL", "a.txt"}), nullptr);
  EXPECT_NE(WindowsPathProblem({"a.txt::$DATA"}), nullptr);
  EXPECT_NE(WindowsPathProblem({"C:", "Windows", "win.ini"}), nullptr);
  EXPECT_NE(WindowsPathProblem({"sub", ".."}), nullptr);
}

}  // namespace
}  // namespace mill::http
