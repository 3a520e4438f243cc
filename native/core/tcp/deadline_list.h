#pragma once
// Flows waiting for one kind of deadline (a backend connect, a client's PROXY protocol header),
// oldest first. Every flow on one list gets the same timeout, so appending keeps the list in
// deadline order and expiry looks only at the head. Intrusive: the links live in the flow, and
// a flow is on at most one list at a time. Worker thread only.

#include "tcp/flow.h"

namespace lb4 {

class FlowDeadlineList {
 public:
  Flow* head() const { return head_; }

  void append(Flow& f, int64_t deadlineMs) {
    f.deadlineMs = deadlineMs;
    f.deadlinePrev = tail_;
    f.deadlineNext = nullptr;
    if (tail_) {
      tail_->deadlineNext = &f;
    } else {
      head_ = &f;
    }
    tail_ = &f;
    f.deadlineList = this;
  }

  // Puts `f` back just before `next` (null: at the tail) with the deadline it had: a queued flow
  // that found no room after all keeps its place, wherever that was.
  void insertBefore(Flow& f, Flow* next) {
    if (!next) {
      append(f, f.deadlineMs);
      return;
    }
    f.deadlinePrev = next->deadlinePrev;
    f.deadlineNext = next;
    if (next->deadlinePrev) {
      next->deadlinePrev->deadlineNext = &f;
    } else {
      head_ = &f;
    }
    next->deadlinePrev = &f;
    f.deadlineList = this;
  }

  // Takes `f` off whichever list it is on; nothing when it is on none.
  static void unlink(Flow& f) {
    FlowDeadlineList* list = f.deadlineList;
    if (!list) return;
    if (f.deadlinePrev) {
      f.deadlinePrev->deadlineNext = f.deadlineNext;
    } else {
      list->head_ = f.deadlineNext;
    }
    if (f.deadlineNext) {
      f.deadlineNext->deadlinePrev = f.deadlinePrev;
    } else {
      list->tail_ = f.deadlinePrev;
    }
    f.deadlinePrev = f.deadlineNext = nullptr;
    f.deadlineList = nullptr;
  }

 private:
  Flow* head_ = nullptr;
  Flow* tail_ = nullptr;
};

}  // namespace lb4
