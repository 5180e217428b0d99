#include "timer/internal/node_slab.h"

#include <cstddef>
#include <cstdint>
#include <set>
#include <vector>

#include "absl/base/config.h"
#include "gtest/gtest.h"

namespace mill {
namespace timer_internal {
namespace {

struct TestNode {
  uint64_t value;
  uint32_t next;

  uint32_t& free_next() { return next; }
};

// 16 nodes per chunk, so a test crosses chunk boundaries cheaply (each chunk
// is still one 2 MiB mapping, untouched beyond the nodes written).
using SmallSlab = NodeSlab<TestNode, /*kChunkBits=*/4>;

TEST(NodeSlabTest, HandsOutConsecutiveIndices) {
  SmallSlab slab;
  EXPECT_EQ(slab.size(), 0u);
  EXPECT_FALSE(slab.has_free());
  for (uint32_t i = 0; i < 40; ++i) {
    EXPECT_EQ(slab.AllocateNew(), i);
    EXPECT_EQ(slab.size(), i + 1);
  }
}

TEST(NodeSlabTest, NodesNeverMoveWhenTheSlabGrows) {
  SmallSlab slab;
  std::vector<TestNode*> addresses;
  for (uint32_t i = 0; i < 5 * SmallSlab::kChunkSize; ++i) {
    const uint32_t index = slab.AllocateNew();
    slab[index].value = 1000 + index;
    addresses.push_back(&slab[index]);
  }
  std::set<TestNode*> distinct(addresses.begin(), addresses.end());
  EXPECT_EQ(distinct.size(), addresses.size());
  for (uint32_t i = 0; i < addresses.size(); ++i) {
    EXPECT_EQ(&slab[i], addresses[i]) << i;
    EXPECT_EQ(slab[i].value, 1000 + i) << i;
  }
}

TEST(NodeSlabTest, ChunksAreAlignedToHugePages) {
  SmallSlab slab;
  for (uint32_t i = 0; i < 3 * SmallSlab::kChunkSize; ++i) slab.AllocateNew();
  for (uint32_t chunk = 0; chunk < 3; ++chunk) {
    const uintptr_t first =
        reinterpret_cast<uintptr_t>(&slab[chunk * SmallSlab::kChunkSize]);
    EXPECT_EQ(first % kHugePageBytes, 0u) << "chunk " << chunk;
  }
}

TEST(NodeSlabTest, FreeListIsLastInFirstOut) {
  SmallSlab slab;
  for (int i = 0; i < 4; ++i) slab.AllocateNew();
  slab.PushFree(1);
  slab.PushFree(3);
  slab.PushFree(0);
  ASSERT_TRUE(slab.has_free());
  EXPECT_EQ(slab.PopFree(), 0u);
  EXPECT_EQ(slab.PopFree(), 3u);
  EXPECT_EQ(slab.PopFree(), 1u);
  EXPECT_FALSE(slab.has_free());
  // Freeing does not shrink the index space, and new nodes continue it.
  EXPECT_EQ(slab.size(), 4u);
  EXPECT_EQ(slab.AllocateNew(), 4u);
}

TEST(NodeSlabTest, FreedNodesKeepTheirPayloadApartFromTheLink) {
  SmallSlab slab;
  const uint32_t index = slab.AllocateNew();
  slab[index].value = 42;
  slab.PushFree(index);
  EXPECT_EQ(slab.PopFree(), index);
  EXPECT_EQ(slab[index].value, 42u);
}

#ifdef ABSL_HAVE_ADDRESS_SANITIZER
// Nodes not handed out yet are poisoned, so a read past size() is reported.
TEST(NodeSlabDeathTest, NodeNotHandedOutIsPoisoned) {
  SmallSlab slab;
  slab.AllocateNew();
  slab[0].value = 7;  // handed out: fine
  volatile uint64_t* beyond = &slab[1].value;
  EXPECT_DEATH((void)*beyond, "use-after-poison");
}
#endif

}  // namespace
}  // namespace timer_internal
}  // namespace mill
