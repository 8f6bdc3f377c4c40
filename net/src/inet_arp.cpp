// ARP (RFC 826) for Ethernet and IPv4: input (answer requests for our address; learn as BSD's
// in_arpinput and Linux's arp_process do: create an entry from a request or reply targeted at
// us, refresh an existing one from any; senders off our network are not learned), the cache (fixed
// size, allocated once, entries expire lazily, the least recently used resolved one is evicted),
// resolution with one held packet per address (la_hold; a newer packet replaces it) and the timer
// that asks again every arp_retry and gives up after arp_max_tries requests (then, for arp_down,
// sends to that address fail at once, as BSD's RTF_REJECT entry makes them).
#include <kcont/nicsim.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "inet_impl.h"

namespace kcont::net {
namespace {

// ARP packet layout after the Ethernet header (Ethernet/IPv4 only).
constexpr std::size_t kArpOp = 6, kArpSha = 8, kArpSpa = 14, kArpTha = 18, kArpTpa = 24;

}  // namespace

void inet_stack::impl::arp_input(pkt* m) {
  if (m->len < wire_format::ether_header + wire_format::arp_packet)
    return drop(m, inet_drop::arp_malformed);
  std::uint8_t* a = m->data + wire_format::ether_header;
  const std::uint16_t op = get_be<std::uint16_t>(a + kArpOp);
  if (get_be<std::uint16_t>(a) != ARPHRD_ETHER || get_be<std::uint16_t>(a + 2) != ETHERTYPE_IP ||
      a[4] != 6 || a[5] != 4 || (op != ARPOP_REQUEST && op != ARPOP_REPLY))
    return drop(m, inet_drop::arp_malformed);
  ether_addr sha;
  std::memcpy(sha.data(), a + kArpSha, 6);
  const auto spa = get_be<ipv4_addr>(a + kArpSpa);
  const auto tpa = get_be<ipv4_addr>(a + kArpTpa);
  // A group sender address, or a sender claiming a broadcast or multicast address, would
  // poison the cache (BSD logs and drops both). A reply from 0.0.0.0 answers nothing.
  if (ether_is_group(sha.data()) || spa >= ipv4(224, 0, 0, 0) || (spa != 0 && is_broadcast(spa)) ||
      (op == ARPOP_REPLY && spa == 0))
    return drop(m, inet_drop::arp_malformed);
  if (sha == cfg.mac) return drop(m, inet_drop::ether_from_us);
  // Someone else uses our address. BSD logs it and defends with a reply; we only count it.
  if (is_ours(spa)) return drop(m, inet_drop::arp_duplicate);
  const bool for_us = is_ours(tpa);

  // Learn. A request from 0.0.0.0 is an RFC 5227 probe: answered, never learned. A sender off
  // our network is never learned either (OpenBSD's arplookup finds no route to enter it under;
  // we could not send to it anyway), but its request for our address is answered.
  const bool off_link = spa != 0 && !on_link(spa);
  bool learned = false;
  pkt* held = nullptr;
  if (spa != 0 && !off_link) {
    const std::int64_t t = now();
    std::lock_guard<std::mutex> lk(arp_mu);
    arp_entry* e = arp_lookup(spa, t);
    if (e == nullptr && for_us) e = arp_alloc(t);
    if (e != nullptr) {
      e->ip = spa;
      e->mac = sha;
      e->state = LLE_VALID;
      e->asked = 0;
      e->expire = t + std::chrono::nanoseconds(cfg.arp_keep).count();
      e->used = t;
      held = e->hold;
      e->hold = nullptr;
      learned = true;
    }
  }
  // Counted before the held datagram goes out: whoever sees that datagram arrive must also see
  // the reply that released it counted.
  if (for_us && op == ARPOP_REPLY && learned) st.arp_replies_learned.add();
  if (held != nullptr) {
    ether_header(held, sha.data(), ETHERTYPE_IP);
    udp_output(held);
  }

  if (!for_us) return drop(m, inet_drop::arp_not_for_us);
  if (op == ARPOP_REPLY) {
    if (off_link) return drop(m, inet_drop::arp_off_link);
    if (!learned) return drop(m, inet_drop::arp_cache_full);
    pool.put(m);
    return;
  }
  // The request becomes its reply (in_arpinput's "reply" path): target <- sender, sender <- us.
  put_be<std::uint16_t>(a + kArpOp, ARPOP_REPLY);
  std::memcpy(a + kArpTha, sha.data(), 6);
  put_be<ipv4_addr>(a + kArpTpa, spa);
  std::memcpy(a + kArpSha, cfg.mac.data(), 6);
  put_be<ipv4_addr>(a + kArpSpa, cfg.addr);
  ether_header(m, sha.data(), ETHERTYPE_ARP);
  m->len = wire_format::ether_header + wire_format::arp_packet;  // any padding goes
  if (transmit(m, st.tx_arp) == 0) st.arp_requests_answered.add();
}

void inet_stack::impl::arp_request(ipv4_addr target) {
  pkt* m = pool.get();
  if (m == nullptr) {
    st.drops[static_cast<std::size_t>(inet_drop::no_buffer)].add();
    return;
  }
  ether_header(m, kEtherBroadcast.data(), ETHERTYPE_ARP);
  std::uint8_t* a = m->data + wire_format::ether_header;
  put_be<std::uint16_t>(a, ARPHRD_ETHER);
  put_be<std::uint16_t>(a + 2, ETHERTYPE_IP);
  a[4] = 6;
  a[5] = 4;
  put_be<std::uint16_t>(a + kArpOp, ARPOP_REQUEST);
  std::memcpy(a + kArpSha, cfg.mac.data(), 6);
  put_be<ipv4_addr>(a + kArpSpa, cfg.addr);
  std::memset(a + kArpTha, 0, 6);
  put_be<ipv4_addr>(a + kArpTpa, target);
  m->len = wire_format::ether_header + wire_format::arp_packet;
  if (transmit(m, st.tx_arp) == 0) st.arp_requests_sent.add();
}

arp_entry* inet_stack::impl::arp_lookup(ipv4_addr ip, std::int64_t t) {
  for (unsigned i = 0; i < cfg.arp_cache_size; ++i) {
    arp_entry& e = arp_cache[i];
    if (e.state == LLE_FREE || e.ip != ip) continue;
    if ((e.state == LLE_VALID || e.state == LLE_DOWN) && t >= e.expire) {
      e.state = LLE_FREE;  // expired: forgotten on first sight
      return nullptr;
    }
    return &e;
  }
  return nullptr;
}

arp_entry* inet_stack::impl::arp_alloc(std::int64_t t) {
  arp_entry* lru = nullptr;
  for (unsigned i = 0; i < cfg.arp_cache_size; ++i) {
    arp_entry& e = arp_cache[i];
    if (e.state == LLE_FREE) return &e;
    if (e.state == LLE_INCOMPLETE) continue;  // asked and perhaps holding: never evicted
    if (t >= e.expire) {
      e.state = LLE_FREE;
      return &e;
    }
    if (lru == nullptr || e.used < lru->used) lru = &e;
  }
  if (lru != nullptr) lru->state = LLE_FREE;
  return lru;
}

void inet_stack::impl::arp_arm(std::int64_t delay_ns) {
  if (!has_timer || stopped.load(std::memory_order_relaxed)) return;
  kcont::runtime_scope scope(nic->rt());
  // Whole milliseconds, rounded up, then ticks (rounded up): never before the entry is due.
  const std::int64_t ms = (delay_ns + 999'999) / 1'000'000;
  const int ticks =
      mstohz(static_cast<int>(std::min<std::int64_t>(ms, std::numeric_limits<int>::max())));
  callout_schedule(&timer, std::max(1, ticks));
  timer_armed = true;
}

int inet_stack::impl::arp_resolve_and_send(pkt* m, ipv4_addr dst) {
  const std::int64_t t = now();
  ether_addr mac;
  {
    std::unique_lock<std::mutex> lk(arp_mu);
    if (stopped.load(std::memory_order_relaxed)) {
      lk.unlock();
      drop(m, inet_drop::if_down);
      return ENETDOWN;
    }
    arp_entry* e = arp_lookup(dst, t);
    if (e != nullptr && e->state == LLE_DOWN) {
      lk.unlock();
      drop(m, inet_drop::arp_unresolved);
      return EHOSTDOWN;
    }
    if (e != nullptr && e->state == LLE_INCOMPLETE) {
      pkt* old = e->hold;
      e->hold = m;
      lk.unlock();
      if (old != nullptr) drop(old, inet_drop::arp_hold_replaced);
      return 0;
    }
    if (e == nullptr) {
      e = arp_alloc(t);
      if (e == nullptr) {
        lk.unlock();
        drop(m, inet_drop::arp_cache_full);
        return ENOBUFS;
      }
      const std::int64_t retry = std::chrono::nanoseconds(cfg.arp_retry).count();
      e->ip = dst;
      e->state = LLE_INCOMPLETE;
      e->asked = 1;
      e->expire = t + retry;
      e->used = t;
      e->hold = m;
      // An armed timer is due no later than this entry: every entry waits the same arp_retry.
      if (!timer_armed) arp_arm(retry);
      lk.unlock();
      arp_request(dst);
      return 0;
    }
    e->used = t;
    mac = e->mac;
  }
  ether_header(m, mac.data(), ETHERTYPE_IP);
  return udp_output(m);
}

void inet_stack::arp_timer() {
  d_->arp_tick();
}

void inet_stack::impl::arp_tick() {
  const std::int64_t t = now();
  std::size_t to_ask = 0;
  pkt* given_up = nullptr;
  std::uint64_t failures = 0;
  {
    std::lock_guard<std::mutex> lk(arp_mu);
    timer_armed = false;
    std::int64_t earliest = std::numeric_limits<std::int64_t>::max();
    for (unsigned i = 0; i < cfg.arp_cache_size; ++i) {
      arp_entry& e = arp_cache[i];
      if (e.state != LLE_INCOMPLETE) continue;
      if (t >= e.expire) {
        if (e.asked >= cfg.arp_max_tries) {
          e.state = LLE_DOWN;
          e.expire = t + std::chrono::nanoseconds(cfg.arp_down).count();
          e.used = t;
          if (e.hold != nullptr) {
            e.hold->next = given_up;
            given_up = e.hold;
            e.hold = nullptr;
          }
          ++failures;
          continue;
        }
        ++e.asked;
        e.expire = t + std::chrono::nanoseconds(cfg.arp_retry).count();
        asking[to_ask++] = e.ip;
      }
      earliest = std::min(earliest, e.expire);
    }
    if (earliest != std::numeric_limits<std::int64_t>::max()) arp_arm(earliest - t);
  }
  st.arp_resolution_failures.add(failures);
  for (std::size_t i = 0; i < to_ask; ++i) arp_request(asking[i]);
  while (given_up != nullptr) {
    pkt* next = given_up->next;
    drop(given_up, inet_drop::arp_unresolved);
    given_up = next;
  }
}

void inet_stack::impl::arp_timer_fn(void* arg) {
  static_cast<impl*>(arg)->arp_tick();
}

void inet_stack::impl::arp_stop() {
  pkt* held = nullptr;
  {
    std::lock_guard<std::mutex> lk(arp_mu);
    stopped.store(true, std::memory_order_release);
    for (unsigned i = 0; i < cfg.arp_cache_size; ++i) {
      arp_entry& e = arp_cache[i];
      if (e.state != LLE_INCOMPLETE) continue;
      e.state = LLE_FREE;
      if (e.hold != nullptr) {
        e.hold->next = held;
        held = e.hold;
        e.hold = nullptr;
      }
    }
  }
  // After this no timer runs or will run: arp_arm refuses once stopped is set, and halt
  // waits for a handler already running (and stops it if it re-armed before seeing stopped).
  if (has_timer) {
    kcont::runtime_scope scope(nic->rt());
    callout_halt(&timer, nullptr);
  }
  while (held != nullptr) {
    pkt* next = held->next;
    drop(held, inet_drop::if_down);
    held = next;
  }
}

}  // namespace kcont::net
