// pkt_pool: a mutex-guarded free list (uncontended: no system call, no allocation).
// Lock legend in kcont/pkt.h: free_ and free_count_ are [p] mu_ (the constructor fills them
// before the pool is shared); storage_ and count_ are [I], so owns() takes no lock.
#include <kcont/internal/misuse.h>
#include <kcont/pkt.h>

#include <cstdio>
#include <cstdlib>

namespace kcont::net {

pkt_pool::pkt_pool(std::size_t count) : storage_(new pkt[count]), count_(count) {
  for (std::size_t i = count; i-- > 0;) {
    storage_[i].next = free_;
    free_ = &storage_[i];
  }
  free_count_ = count;
}

pkt* pkt_pool::get() noexcept {
  std::lock_guard<std::mutex> lk(mu_);
  pkt* p = free_;
  if (p != nullptr) {
    free_ = p->next;
    p->next = nullptr;
    --free_count_;
  }
  return p;
}

void pkt_pool::put(pkt* p) noexcept {
  if (!owns(p)) {
    kcont::internal::misuse("pkt_pool", "pkt_pool::put of a packet from another pool");
  }
  std::lock_guard<std::mutex> lk(mu_);
  p->next = free_;
  free_ = p;
  ++free_count_;
}

std::size_t pkt_pool::available() const noexcept {
  std::lock_guard<std::mutex> lk(mu_);
  return free_count_;
}

}  // namespace kcont::net
