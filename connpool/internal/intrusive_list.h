// Internal to //connpool: a doubly-linked intrusive list, so that putting a
// connection into the idle set (and taking it out again, from the middle when
// it expires or dies) allocates nothing and costs O(1).
//
// An element joins a list through a ListNode<Tag> base class, one per list it
// can be on at a time (tags tell the bases apart):
//
//   struct Item : ListNode<ByEndpoint>, ListNode<ByAge> { ... };
//   IntrusiveList<Item, ByEndpoint> endpoint_list;
//
// The list does not own its elements; an element must be unlinked before it
// is destroyed (ListNode asserts that in debug builds).
//
// Thread-safety: none; the pool guards its lists with its mutex.
#ifndef MILL_IO_CONNPOOL_INTERNAL_INTRUSIVE_LIST_H_
#define MILL_IO_CONNPOOL_INTERNAL_INTRUSIVE_LIST_H_

#include <cassert>
#include <cstddef>

namespace mill {
namespace connpool_internal {

template <typename Tag>
class ListNode {
 public:
  ListNode() = default;
  ListNode(const ListNode&) = delete;
  ListNode& operator=(const ListNode&) = delete;
  ~ListNode() { assert(!linked()); }

  bool linked() const { return next_ != nullptr; }

 private:
  template <typename T, typename U>
  friend class IntrusiveList;
  ListNode* prev_ = nullptr;
  ListNode* next_ = nullptr;
};

// Front is the most recently pushed with push_front; push_back appends.
template <typename T, typename Tag>
class IntrusiveList {
  using Node = ListNode<Tag>;

 public:
  IntrusiveList() { head_.prev_ = head_.next_ = &head_; }
  IntrusiveList(const IntrusiveList&) = delete;
  IntrusiveList& operator=(const IntrusiveList&) = delete;
  ~IntrusiveList() {
    // Unlink whatever is left so the nodes' destructors do not assert.
    while (!empty()) pop_front();
    head_.prev_ = head_.next_ = nullptr;
  }

  bool empty() const { return head_.next_ == &head_; }
  size_t size() const { return size_; }

  T* front() const { return empty() ? nullptr : Elem(head_.next_); }
  T* back() const { return empty() ? nullptr : Elem(head_.prev_); }
  // The element after / before `item` (null at the end).
  T* next(T* item) const {
    Node* n = static_cast<Node*>(item)->next_;
    return n == &head_ ? nullptr : Elem(n);
  }
  T* prev(T* item) const {
    Node* n = static_cast<Node*>(item)->prev_;
    return n == &head_ ? nullptr : Elem(n);
  }

  void push_front(T* item) { InsertAfter(&head_, item); }
  void push_back(T* item) { InsertAfter(head_.prev_, item); }

  T* pop_front() {
    T* item = front();
    if (item != nullptr) erase(item);
    return item;
  }
  T* pop_back() {
    T* item = back();
    if (item != nullptr) erase(item);
    return item;
  }

  // `item` must be on this list.
  void erase(T* item) {
    Node* node = static_cast<Node*>(item);
    assert(node->linked());
    node->prev_->next_ = node->next_;
    node->next_->prev_ = node->prev_;
    node->prev_ = node->next_ = nullptr;
    --size_;
  }

 private:
  static T* Elem(Node* node) { return static_cast<T*>(node); }

  void InsertAfter(Node* at, T* item) {
    Node* node = static_cast<Node*>(item);
    assert(!node->linked());
    node->prev_ = at;
    node->next_ = at->next_;
    at->next_->prev_ = node;
    at->next_ = node;
    ++size_;
  }

  Node head_;  // sentinel: never an element
  size_t size_ = 0;
};

}  // namespace connpool_internal
}  // namespace mill

#endif  // MILL_IO_CONNPOOL_INTERNAL_INTRUSIVE_LIST_H_
