// traffic_source: one producer thread per flow. Lock legend in kcont/traffic.h: a producer
// shares only the [a] fields; everything else it reads is [I] or its own locals.
#include <kcont/internal/machine_hooks.h>
#include <kcont/traffic.h>

#include <cerrno>
#include <stdexcept>

namespace kcont::net {

traffic_source::traffic_source(sim_nic& nic, pkt_pool& pool, traffic_config cfg)
    : nic_(nic), pool_(pool), cfg_(cfg) {
  if (cfg_.producers == 0 || cfg_.producers > max_flows)
    throw std::invalid_argument("kcont-net: producers must be in 1.." + std::to_string(max_flows));
}

traffic_source::~traffic_source() {
  stop();
  join();
}

void traffic_source::start() {
  const unsigned n = cfg_.producers;
  running_.store(n);
  for (unsigned f = 0; f < n; ++f) {
    // Split the total evenly; the first flows take the remainder.
    const std::uint64_t count =
        cfg_.packets == 0 ? 0 : cfg_.packets / n + (f < cfg_.packets % n ? 1 : 0);
    threads_.emplace_back([this, f, count] { run(f, count); });
  }
}

void traffic_source::stop() {
  stop_.store(true, std::memory_order_relaxed);
}

void traffic_source::join() {
  for (auto& t : threads_)
    if (t.joinable()) t.join();
}

bool traffic_source::done() const {
  return running_.load(std::memory_order_acquire) == 0;
}

void traffic_source::run(unsigned flow, std::uint64_t count) {
  std::uint8_t mac[6] = {0x02, 0x6b, 0x63, 0x00, 0x00, static_cast<std::uint8_t>(flow)};
  std::uint64_t seq = 0;
  while (!stop_.load(std::memory_order_relaxed) && (count == 0 || seq < count)) {
    pkt* m = pool_.get();
    if (m == nullptr) {  // every buffer is in flight: let the NIC catch up
      pool_waits_.fetch_add(1, std::memory_order_relaxed);
      std::this_thread::yield();
      continue;
    }
    build_frame(*m, cfg_.frame_len, static_cast<std::uint16_t>(flow), seq, machine::now_ns(), mac);
    for (;;) {
      const int e = nic_.output(m);
      if (e == 0) {
        ++seq;
        sent_.fetch_add(1, std::memory_order_relaxed);
        break;
      }
      if (e == ENOBUFS && cfg_.retry_when_full && !stop_.load(std::memory_order_relaxed)) {
        std::this_thread::yield();
        continue;
      }
      pool_.put(m);
      if (e == ENETDOWN) {
        stop_.store(true, std::memory_order_relaxed);
      } else {
        ++seq;  // a real stack's drop: the receiver sees a gap
        dropped_.fetch_add(1, std::memory_order_relaxed);
      }
      break;
    }
  }
  running_.fetch_sub(1, std::memory_order_release);
}

}  // namespace kcont::net
