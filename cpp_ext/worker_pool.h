// A small fixed pool of std::threads for data-parallel loops (no OpenMP: its runtime can clash
// with torch's or onnxruntime's in one process). Threads start once per generation call and
// are reused for every step; items are claimed in chunks from an atomic counter.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <thread>
#include <vector>

namespace showo {

class WorkerPool {
 public:
  // `threads` counts the calling thread too: WorkerPool(1) starts no thread at all.
  explicit WorkerPool(unsigned threads);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  unsigned size() const { return static_cast<unsigned>(workers_.size()) + 1; }

  // Calls task(thread_index, item) for every item in [0, count) and returns when all are done.
  // thread_index is in [0, size()); the task must not throw.
  template <class Task>
  void for_each(size_t count, size_t chunk, Task& task) {
    run(count, std::max<size_t>(chunk, 1), &task, [](void* ctx, unsigned thread, size_t begin, size_t end) {
      for (size_t i = begin; i < end; ++i) (*static_cast<Task*>(ctx))(thread, i);
    });
  }

 private:
  using Body = void (*)(void* ctx, unsigned thread, size_t begin, size_t end);

  void shutdown();
  void run(size_t count, size_t chunk, void* ctx, Body body);
  void claim_items(unsigned thread);
  void worker_main(unsigned thread);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  unsigned long long generation_ = 0;
  unsigned busy_ = 0;
  bool stop_ = false;
  Body body_ = nullptr;
  void* ctx_ = nullptr;
  size_t count_ = 0;
  size_t chunk_ = 1;
  std::atomic<size_t> next_{0};
};

}  // namespace showo
