// inet_stack's face: the configuration check, construction attached to a NIC or detached,
// stop and destruction (the ARP timer halted before anything is freed), stats, drop names.
#include <kcont/ifq.h>
#include <kcont/internal/machine_hooks.h>
#include <kcont/internal/misuse.h>
#include <kcont/nicsim.h>

#include <iterator>
#include <stdexcept>
#include <string>

#include "inet_impl.h"

namespace kcont::net {
namespace {

constexpr unsigned kMaxArpCache = 1024;

ipv4_addr mask_of(unsigned prefix_len) {
  return prefix_len == 0 ? 0 : ~ipv4_addr{0} << (32 - prefix_len);
}

// The directed broadcast of our network; /31 (RFC 3021) and /32 have none.
ipv4_addr broadcast_of(ipv4_addr addr, unsigned prefix_len) {
  return prefix_len >= 31 ? 0 : addr | ~mask_of(prefix_len);
}

const inet_config& checked(const inet_config& c) {
  auto refuse = [](const std::string& what) { throw std::invalid_argument("kcont-inet: " + what); };
  const unsigned net = c.addr >> 24;
  if (net == 0 || net == 127 || c.addr >= ipv4(224, 0, 0, 0))
    refuse("addr must be a unicast address (not 0/8, 127/8, multicast or class E)");
  if (c.prefix_len > 32) refuse("prefix_len must be 0..32, not " + std::to_string(c.prefix_len));
  if (c.prefix_len < 31 && c.addr == broadcast_of(c.addr, c.prefix_len))
    refuse("addr is the broadcast address of its network");
  if (c.prefix_len < 31 && (c.addr & ~mask_of(c.prefix_len)) == 0)
    refuse("addr is the network address of its network");
  if (ether_is_group(c.mac.data()))
    refuse("mac must be a unicast address (the low bit of its first byte clear)");
  if (c.arp_cache_size == 0 || c.arp_cache_size > kMaxArpCache)
    refuse("arp_cache_size must be 1.." + std::to_string(kMaxArpCache) + ", not " +
           std::to_string(c.arp_cache_size));
  if (c.echo_port != 0 && c.echo_port == c.sink_port) refuse("echo_port and sink_port must differ");
  if (c.ttl == 0) refuse("ttl must be 1..255");
  if (c.arp_max_tries == 0 || c.arp_max_tries > 255)
    refuse("arp_max_tries must be 1..255, not " + std::to_string(c.arp_max_tries));
  if (c.arp_retry.count() <= 0 || c.arp_keep.count() <= 0 || c.arp_down.count() < 0)
    refuse("arp_retry and arp_keep must be positive, arp_down not negative");
  return c;
}

}  // namespace

inet_stack::impl::impl(pkt_pool& p, const inet_config& c, output_fn o, clock_fn k, sim_nic* n)
    : pool(p),
      cfg(checked(c)),
      out(std::move(o)),
      clock(k ? std::move(k) : clock_fn(&machine::now_ns)),
      nic(n),
      netmask(mask_of(cfg.prefix_len)),
      broadcast(broadcast_of(cfg.addr, cfg.prefix_len)),
      arp_cache(new arp_entry[cfg.arp_cache_size]),
      asking(new ipv4_addr[cfg.arp_cache_size]) {
  if (nic == nullptr) return;
  // The timer runs where input does (the interrupt CPU), so the two never run at once there;
  // send_udp from other threads still takes arp_mu.
  kcont::runtime_scope scope(nic->rt());
  callout_init(&timer, CALLOUT_MPSAFE);
  callout_setfunc(&timer, arp_timer_fn, this);
  callout_bind(&timer, nic->rt().cpu(nic->config().intr_cpu));
  has_timer = true;
}

inet_stack::impl::~impl() {
  if (!has_timer) return;
  kcont::runtime_scope scope(nic->rt());
  callout_destroy(&timer);  // arp_stop halted it
}

inet_stack::inet_stack(sim_nic& nic, pkt_pool& pool, inet_config cfg)
    : d_(std::make_unique<impl>(
          pool, cfg, [&nic](pkt* m) { return nic.output(m); }, clock_fn{}, &nic)) {
  nic.set_input([this](pkt* m) { input(m); });  // std::logic_error once the NIC is up
}

inet_stack::inet_stack(pkt_pool& pool, inet_config cfg, output_fn output, clock_fn clock)
    : d_(std::make_unique<impl>(pool, cfg, std::move(output), std::move(clock), nullptr)) {
  if (!d_->out) throw std::invalid_argument("kcont-inet: a detached stack needs an output");
}

inet_stack::~inet_stack() {
  stop();
  if (sim_nic* nic = d_->nic) {
    if (nic->ifp()->if_flags.load(std::memory_order_acquire) & IFF_UP)
      kcont::internal::misuse_named("inet_stack",
                                    "inet_stack destroyed while its NIC is up (its input would "
                                    "call a freed stack: take the NIC down first)",
                                    "nic", nic->config().name.c_str());
    nic->set_input(nullptr);
  }
}

void inet_stack::stop() {
  d_->arp_stop();
}

const inet_config& inet_stack::config() const {
  return d_->cfg;
}

inet_stats inet_stack::stats() const {
  const impl& d = *d_;
  inet_stats s;
#define KCONT_INET_COPY_COUNTER(name) s.name = d.st.name.get();
  KCONT_INET_COUNTERS(KCONT_INET_COPY_COUNTER)
#undef KCONT_INET_COPY_COUNTER
  for (std::size_t i = 0; i < inet_drop_reasons; ++i) s.drops[i] = d.st.drops[i].get();
  return s;
}

std::uint64_t inet_stats::drops_total() const {
  std::uint64_t n = 0;
  for (std::uint64_t v : drops) n += v;
  return n;
}

const char* inet_drop_name(inet_drop why) {
  static constexpr const char* kNames[] = {
      "ether_short",       "ether_oversized",  "ether_unsupported", "ether_not_for_us",
      "ether_from_us",     "ether_bad_source", "arp_malformed",     "arp_not_for_us",
      "arp_duplicate",     "arp_off_link",     "ip_short",          "ip_version",
      "ip_header_length",  "ip_checksum",      "ip_bad_length",     "ip_options",
      "ip_bad_source",     "ip_not_for_us",    "ip_fragment",       "ip_no_protocol",
      "icmp_short",        "icmp_checksum",    "icmp_unsupported",  "icmp_broadcast",
      "udp_short",         "udp_bad_length",   "udp_checksum",      "udp_bad_port",
      "udp_no_port",       "no_buffer",        "if_down",           "arp_unresolved",
      "arp_hold_replaced", "arp_cache_full"};
  static_assert(std::size(kNames) == inet_drop_reasons, "a name for every inet_drop");
  const auto i = static_cast<std::size_t>(why);
  return i < std::size(kNames) ? kNames[i] : "?";
}

}  // namespace kcont::net
