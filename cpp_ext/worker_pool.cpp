#include "worker_pool.h"

namespace showo {

WorkerPool::WorkerPool(unsigned threads) {
  const unsigned extra = threads > 1 ? threads - 1 : 0;
  workers_.reserve(extra);
  try {
    for (unsigned t = 1; t <= extra; ++t) workers_.emplace_back(&WorkerPool::worker_main, this, t);
  } catch (...) {
    shutdown();  // join the threads already started, then report the failure
    throw;
  }
}

WorkerPool::~WorkerPool() { shutdown(); }

void WorkerPool::shutdown() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& worker : workers_) {
    if (worker.joinable()) worker.join();
  }
}

void WorkerPool::run(size_t count, size_t chunk, void* ctx, Body body) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    body_ = body;
    ctx_ = ctx;
    count_ = count;
    chunk_ = chunk;
    next_.store(0, std::memory_order_relaxed);
    busy_ = static_cast<unsigned>(workers_.size());
    ++generation_;
  }
  wake_.notify_all();
  claim_items(0);
  std::unique_lock<std::mutex> lock(mutex_);
  done_.wait(lock, [this] { return busy_ == 0; });
}

void WorkerPool::claim_items(unsigned thread) {
  for (;;) {
    const size_t begin = next_.fetch_add(chunk_, std::memory_order_relaxed);
    if (begin >= count_) return;
    body_(ctx_, thread, begin, std::min(begin + chunk_, count_));
  }
}

void WorkerPool::worker_main(unsigned thread) {
  unsigned long long seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
    }
    claim_items(thread);
    std::lock_guard<std::mutex> lock(mutex_);
    if (--busy_ == 0) done_.notify_one();
  }
}

}  // namespace showo
