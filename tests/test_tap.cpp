// kcont::net::tap_device against a real tap: creation, both directions byte-exact, runts,
// oversized frames, an empty tap, the link deleted under an open fd, removal on destruction,
// the error messages when a tap cannot be made, and the tap's fd used from threads outside
// the namespace it was made in. Every case runs in the test's own network namespace
// (netns_util.h), never the host's default one, and skips (and passes) with the reason when
// no namespace or no tap can be made here (not root, no `ip`, KCONT_NO_NETNS=1, no
// /dev/net/tun, no CAP_NET_ADMIN).
#include <doctest/doctest.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include "netns_util.h"
#include "tap_util.h"

#include <atomic>
#include <functional>
#include <thread>

using kcont::net::tap_device;
using st = tap_device::read_status;
using namespace std::chrono_literals;
using namespace kcont_test;

namespace {

// Makes a tap or says why not: `TAP_OR_SKIP(tap, mtu)` declares `tap`, or prints the reason
// and returns from the test case (which then passes).
#define TAP_OR_SKIP(var, mtu)                                    \
  std::string var##_why;                                         \
  auto var = tap_device::create("", mtu, var##_why);             \
  if (!var) {                                                    \
    MESSAGE("SKIPPED: cannot create a tap here: " << var##_why); \
    return;                                                      \
  }

#define RAW_OR_SKIP(var, tap)                                                         \
  raw_socket var((tap)->ifindex());                                                   \
  if (!var.ok()) {                                                                    \
    MESSAGE("SKIPPED: no packet socket on " << (tap)->name() << ": " << var.error()); \
    return;                                                                           \
  }

// Runs `fn` in a forked child and returns the string it produced (or a note that it died).
// For what must not happen in the test process itself: dropping a capability, hiding /dev/net.
std::string in_child(const std::function<std::string()>& fn) {
  int p[2];
  REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(p[0]);
    std::string out = fn();
    ssize_t ignored = ::write(p[1], out.data(), out.size());
    (void)ignored;
    ::_exit(0);
  }
  ::close(p[1]);
  std::string out;
  char buf[512];
  ssize_t n;
  while ((n = ::read(p[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  ::close(p[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) out += " [child died]";
  return out;
}

std::string create_result() {
  std::string why;
  auto t = tap_device::create("", 0, why);
  return t ? "created " + t->name() : "nullptr: " + why;
}

// Discards whatever is queued (the host's own frames).
void drain(tap_device& tap) {
  std::uint8_t buf[2048];
  std::size_t len;
  while (tap.read_frame(buf, sizeof buf, &len) != st::none) {
  }
}

}  // namespace

TEST_CASE("tap: create gives an interface that exists, is up, non-blocking and close-on-exec") {
  NETNS_OR_SKIP(ns);
  TAP_OR_SKIP(tap, 0);
  CHECK(tap->name().rfind("kcont", 0) == 0);
  CHECK(tap->ifindex() > 0);
  CHECK(::if_nametoindex(tap->name().c_str()) == static_cast<unsigned>(tap->ifindex()));
  int flags = link_flags(tap->name());
  REQUIRE(flags >= 0);
  CHECK((flags & IFF_UP) != 0);
  CHECK(tap->mtu() == 1500);  // 0 keeps the kernel's default
  CHECK((::fcntl(tap->fd(), F_GETFL) & O_NONBLOCK) != 0);
  CHECK((::fcntl(tap->fd(), F_GETFD) & FD_CLOEXEC) != 0);
  CHECK(tap->link_exists());

  std::string why;
  auto jumbo = tap_device::create("kcontj%d", 9000, why);
  REQUIRE_MESSAGE(jumbo, why);
  CHECK(jumbo->name().rfind("kcontj", 0) == 0);
  CHECK(jumbo->mtu() == 9000);
  CHECK(jumbo->ifindex() != tap->ifindex());
}

TEST_CASE("tap: 1000 frames written to the fd reach the host byte-exact and in order") {
  NETNS_OR_SKIP(ns);
  TAP_OR_SKIP(tap, 0);
  RAW_OR_SKIP(host, tap);
  constexpr std::uint32_t total = 1000, batch = 50;
  std::uint32_t got = 0;
  for (std::uint32_t base = 0; base < total; base += batch) {
    for (std::uint32_t seq = base; seq < base + batch; ++seq) {
      auto f = make_frame(seq, 14 + (seq * 37) % 1501);  // 14 .. 1514 bytes
      REQUIRE_MESSAGE(tap->write_frame(f.data(), f.size()), std::strerror(errno));
    }
    for (std::uint32_t seq = base; seq < base + batch; ++seq) {
      auto f = host.recv_frame(2s);
      REQUIRE_MESSAGE(f, "frame " << seq << " never reached the host");
      auto want = make_frame(seq, 14 + (seq * 37) % 1501);
      REQUIRE(f->size() == want.size());
      CHECK(*f == want);
      ++got;
    }
  }
  CHECK(got == total);
  CHECK_FALSE(host.recv_frame(50ms));  // nothing extra
}

TEST_CASE("tap: 1000 frames the host sends arrive at read_frame byte-exact and in order") {
  NETNS_OR_SKIP(ns);
  TAP_OR_SKIP(tap, 0);
  RAW_OR_SKIP(host, tap);
  // The tap's queue to the fd holds 1000 frames (tx_queue_len); stay well below it.
  constexpr std::uint32_t total = 1000, batch = 100;
  std::uint8_t buf[1518];
  std::uint32_t got = 0;
  for (std::uint32_t base = 0; base < total; base += batch) {
    for (std::uint32_t seq = base; seq < base + batch; ++seq) {
      auto f = make_frame(seq, 14 + (seq * 53) % 1501);
      REQUIRE_MESSAGE(host.send(f) == static_cast<ssize_t>(f.size()), std::strerror(errno));
    }
    for (std::uint32_t seq = base; seq < base + batch; ++seq) {
      std::size_t len = 0;
      st s = read_test_frame(*tap, buf, sizeof buf, &len, 2s);
      REQUIRE_MESSAGE(s == st::frame, "frame " << seq << ": status " << static_cast<int>(s));
      auto want = make_frame(seq, 14 + (seq * 53) % 1501);
      REQUIRE(len == want.size());
      CHECK(std::memcmp(buf, want.data(), len) == 0);
      ++got;
    }
  }
  CHECK(got == total);
}

TEST_CASE("tap: runts (< 14 bytes) are refused both ways; short frames pass unpadded") {
  NETNS_OR_SKIP(ns);
  TAP_OR_SKIP(tap, 0);
  RAW_OR_SKIP(host, tap);
  auto whole = make_frame(7, 60);
  // Host -> tap: the kernel will not send less than an Ethernet header on an Ethernet device
  // (EINVAL even as root), so read_frame never sees a runt.
  for (std::size_t len : {0, 1, 13}) {
    ssize_t r = host.send(whole.data(), len);
    int err = errno;
    CHECK(r == -1);
    CHECK(err == EINVAL);
  }
  for (std::size_t len : {14, 20, 59}) {
    auto f = make_frame(static_cast<std::uint32_t>(len), len);
    REQUIRE(host.send(f) == static_cast<ssize_t>(len));
    std::uint8_t buf[1518];
    std::size_t got = 0;
    REQUIRE(read_test_frame(*tap, buf, sizeof buf, &got, 2s) == st::frame);
    CHECK(got == len);  // no padding to 60
    CHECK(std::memcmp(buf, f.data(), len) == 0);
  }
  // Tap -> host: write(2) refuses a runt with EINVAL and the host sees nothing.
  for (std::size_t len : {0, 1, 13}) {
    bool ok = tap->write_frame(whole.data(), len);
    int err = errno;
    CHECK_FALSE(ok);
    CHECK(err == EINVAL);
  }
  auto header_only = make_frame(14, 14);
  REQUIRE(tap->write_frame(header_only.data(), header_only.size()));
  auto f = host.recv_frame(2s);
  REQUIRE(f);
  CHECK(*f == header_only);
  CHECK_FALSE(host.recv_frame(50ms));
}

TEST_CASE("tap: an oversized frame is reported as truncated with its full length") {
  NETNS_OR_SKIP(ns);
  TAP_OR_SKIP(tap, 9000);  // room for the host to send jumbo frames
  RAW_OR_SKIP(host, tap);
  constexpr std::size_t cap = 1518;  // the NIC's buffer; anything longer is "oversized"
  std::uint8_t buf[cap];
  std::size_t len = 0;

  auto big = make_frame(1, 2000);
  auto after = make_frame(2, 60);
  REQUIRE(host.send(big) == 2000);
  REQUIRE(host.send(after) == 60);
  REQUIRE(read_test_frame(*tap, buf, cap, &len, 2s) == st::truncated);
  CHECK(len == 2000);
  CHECK(std::memcmp(buf, big.data(), cap) == 0);
  // The rest of the oversized frame is gone; the next frame is whole.
  REQUIRE(read_test_frame(*tap, buf, cap, &len, 2s) == st::frame);
  CHECK(len == 60);
  CHECK(std::memcmp(buf, after.data(), 60) == 0);

  // The largest frame the host may send is MTU + 14; one byte more is EMSGSIZE.
  auto jumbo = make_frame(3, 9014);
  REQUIRE(host.send(jumbo) == 9014);
  REQUIRE(read_test_frame(*tap, buf, cap, &len, 2s) == st::truncated);
  CHECK(len == 9014);
  auto too_big = make_frame(4, 9015);
  ssize_t r = host.send(too_big);
  int err = errno;
  CHECK(r == -1);
  CHECK(err == EMSGSIZE);
  // With room enough the same frame reads whole; a zero-sized buffer still measures it.
  std::vector<std::uint8_t> large(9014);
  REQUIRE(host.send(jumbo) == 9014);
  REQUIRE(read_test_frame(*tap, large.data(), large.size(), &len, 2s) == st::frame);
  CHECK(len == 9014);
  CHECK(large == jumbo);
  REQUIRE(host.send(big) == 2000);
  bool measured = false;
  for (auto give_up = std::chrono::steady_clock::now() + 2s;
       !measured && std::chrono::steady_clock::now() < give_up;) {
    st s = tap->read_frame(buf, 0, &len);
    if (s == st::none) {
      pollfd p{tap->fd(), POLLIN, 0};
      ::poll(&p, 1, 100);
    } else {
      REQUIRE(s == st::truncated);
      measured = len == 2000;  // else a frame of the host's own
    }
  }
  CHECK(measured);

  // Tap -> host: the fd does not check the MTU; the host receives the whole frame.
  TAP_OR_SKIP(small, 1500);
  RAW_OR_SKIP(host2, small);
  REQUIRE(small->write_frame(big.data(), big.size()));
  auto f = host2.recv_frame(2s);
  REQUIRE(f);
  CHECK(*f == big);
}

TEST_CASE("tap: reading an empty tap gives none") {
  NETNS_OR_SKIP(ns);
  TAP_OR_SKIP(tap, 0);
  quiet_host_stack(tap->name());  // else IPv6 may send a router solicitation any time
  drain(*tap);
  std::uint8_t buf[1518];
  std::size_t len = 12345;
  CHECK(tap->read_frame(buf, sizeof buf, &len) == st::none);
  CHECK(tap->read_frame(buf, sizeof buf, &len) == st::none);
  CHECK(len == 12345);  // untouched
  pollfd p{tap->fd(), POLLIN, 0};
  CHECK(::poll(&p, 1, 0) == 0);
}

TEST_CASE("tap: while the interface is down writes fail with EIO and reads find nothing") {
  NETNS_OR_SKIP(ns);
  TAP_OR_SKIP(tap, 0);
  RAW_OR_SKIP(host, tap);
  REQUIRE(set_link_up(tap->name(), false));
  CHECK((link_flags(tap->name()) & IFF_UP) == 0);
  CHECK(tap->link_exists());
  drain(*tap);
  auto f = make_frame(1, 60);
  bool ok = tap->write_frame(f.data(), f.size());
  int err = errno;
  CHECK_FALSE(ok);
  CHECK(err == EIO);
  ssize_t r = host.send(f);
  err = errno;
  CHECK(r == -1);
  CHECK(err == ENETDOWN);
  std::uint8_t buf[1518];
  std::size_t len;
  CHECK(tap->read_frame(buf, sizeof buf, &len) == st::none);
  // Up again: both directions work.
  REQUIRE(set_link_up(tap->name(), true));
  REQUIRE(tap->write_frame(f.data(), f.size()));
  auto got = host.recv_frame(2s);
  REQUIRE(got);
  CHECK(*got == f);
  REQUIRE(host.send(f) == 60);
  REQUIRE(read_test_frame(*tap, buf, sizeof buf, &len, 2s) == st::frame);
  CHECK(len == 60);
}

TEST_CASE("tap: deleting the link under an open fd wakes a poller, fails writes, reads gone") {
  NETNS_OR_SKIP(ns);
  const int fds_before = count_open_fds();
  {
    TAP_OR_SKIP(tap, 0);
    const std::string name = tap->name();
    quiet_host_stack(name);
    drain(*tap);
    // A reader asleep in poll and a writer writing in a loop when the link goes.
    std::atomic<bool> polling{false};
    short revents = 0;
    std::thread poller([&] {
      pollfd p{tap->fd(), POLLIN, 0};
      polling = true;
      while (::poll(&p, 1, 10000) == 1 && p.revents == POLLIN) {
        std::uint8_t b[1518];
        std::size_t l;
        tap->read_frame(b, sizeof b, &l);  // host traffic: read it and sleep again
      }
      revents = p.revents;
    });
    std::atomic<int> writer_errno{0}, eio_seen{0};
    std::thread writer([&] {
      auto f = make_frame(9, 60);
      auto give_up = std::chrono::steady_clock::now() + 10s;
      while (std::chrono::steady_clock::now() < give_up) {
        if (tap->write_frame(f.data(), f.size())) continue;
        if (errno == EIO) {  // the link goes down before it is detached
          ++eio_seen;
          continue;
        }
        writer_errno = errno;
        return;
      }
    });
    while (!polling) std::this_thread::yield();
    std::this_thread::sleep_for(20ms);
    std::string why;
    auto t0 = std::chrono::steady_clock::now();
    bool deleted = delete_link(tap->ifindex(), why);
    poller.join();
    writer.join();
    REQUIRE_MESSAGE(deleted, why);
    MESSAGE("poller woke " << std::chrono::duration_cast<std::chrono::microseconds>(
                                  std::chrono::steady_clock::now() - t0)
                                  .count()
                           << " us after RTM_DELLINK; the writer saw EIO " << eio_seen.load()
                           << " times, then errno " << writer_errno.load());
    CHECK(revents == POLLERR);  // POLLERR alone: no POLLIN, POLLOUT or POLLHUP
    CHECK(writer_errno == EBADFD);

    std::uint8_t buf[1518];
    std::size_t len;
    st s = tap->read_frame(buf, sizeof buf, &len);
    int err = errno;
    CHECK(s == st::gone);
    CHECK(err == EBADFD);
    auto f = make_frame(1, 60);
    bool ok = tap->write_frame(f.data(), f.size());
    err = errno;
    CHECK_FALSE(ok);
    CHECK(err == EBADFD);
    CHECK_FALSE(tap->link_exists());
    CHECK(::if_nametoindex(name.c_str()) == 0);
  }
  CHECK(count_open_fds() == fds_before);  // closing a detached fd is an ordinary close
}

TEST_CASE("tap: frames queued towards the fd when the link is deleted are discarded") {
  NETNS_OR_SKIP(ns);
  const int fds_before = count_open_fds();
  {
    TAP_OR_SKIP(tap, 0);
    {
      RAW_OR_SKIP(host, tap);
      for (std::uint32_t i = 0; i < 5; ++i) REQUIRE(host.send(make_frame(i, 60)) == 60);
    }
    pollfd p{tap->fd(), POLLIN, 0};
    REQUIRE(::poll(&p, 1, 2000) == 1);
    CHECK(p.revents == POLLIN);
    std::string why;
    REQUIRE_MESSAGE(delete_link(tap->name(), why), why);
    p.revents = 0;
    REQUIRE(::poll(&p, 1, 0) == 1);
    CHECK(p.revents == POLLERR);
    std::uint8_t buf[1518];
    std::size_t len;
    CHECK(tap->read_frame(buf, sizeof buf, &len) == st::gone);
    CHECK(tap->read_frame(buf, sizeof buf, &len) == st::gone);
  }
  CHECK(count_open_fds() == fds_before);
}

TEST_CASE("tap: the destructor removes the interface") {
  NETNS_OR_SKIP(ns);
  TAP_OR_SKIP(tap, 0);
  const std::string name = tap->name();
  const int fds_with_tap = count_open_fds();
  REQUIRE(::if_nametoindex(name.c_str()) != 0);
  tap.reset();
  CHECK(::if_nametoindex(name.c_str()) == 0);  // gone by the time close(2) returns
  CHECK(link_flags(name) == -1);
  CHECK(count_open_fds() == fds_with_tap - 1);
}

TEST_CASE("tap: creation failures say what is missing") {
  NETNS_OR_SKIP(ns);
  std::string why;
  if (!tap_available(why)) {
    // The message this machine gives is the one under test; it must name the cause.
    MESSAGE("no tap here: " << why);
    CHECK((why.find("/dev/net/tun") != std::string::npos ||
           why.find("CAP_NET_ADMIN") != std::string::npos));
    return;
  }

  SUBCASE("without CAP_NET_ADMIN") {
    std::string out = in_child([] {
      __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
      __user_cap_data_struct data[2]{};
      if (::syscall(SYS_capget, &hdr, data) != 0) return std::string("skip: capget failed");
      data[CAP_NET_ADMIN / 32].effective &= ~(1u << (CAP_NET_ADMIN % 32));
      data[CAP_NET_ADMIN / 32].permitted &= ~(1u << (CAP_NET_ADMIN % 32));
      if (::syscall(SYS_capset, &hdr, data) != 0) return std::string("skip: capset failed");
      return create_result();
    });
    MESSAGE(out);
    CHECK(out.rfind("nullptr: permission denied creating a tap", 0) == 0);
    CHECK(out.find("CAP_NET_ADMIN") != std::string::npos);
  }

  SUBCASE("without /dev/net/tun (hidden by an empty tmpfs in a private mount namespace)") {
    std::string out = in_child([] {
      if (::unshare(CLONE_NEWNS) != 0)
        return std::string("skip: unshare(CLONE_NEWNS): ") + std::strerror(errno);
      if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
          ::mount("tmpfs", "/dev/net", "tmpfs", 0, nullptr) != 0)
        return std::string("skip: mount: ") + std::strerror(errno);
      return create_result();
    });
    if (out.rfind("skip:", 0) == 0) {
      MESSAGE("SKIPPED: cannot hide /dev/net/tun here: " << out);
    } else {
      MESSAGE(out);
      CHECK(out.rfind("nullptr: /dev/net/tun is missing", 0) == 0);
    }
  }

  SUBCASE("bad arguments") {
    std::string w;
    CHECK_FALSE(tap_device::create("kcont-name-too-long", 0, w));
    CHECK(w.find("too long") != std::string::npos);
    CHECK_FALSE(tap_device::create("", 10, w));
    CHECK(w.find("MTU 10 is out of range") != std::string::npos);
    CHECK_FALSE(tap_device::create("", 70000, w));
    CHECK(w.find("MTU 70000 is out of range") != std::string::npos);
    auto first = tap_device::create("", 0, w);
    REQUIRE_MESSAGE(first, w);
    CHECK_FALSE(tap_device::create(first->name(), 0, w));
    CHECK(w.find("already exists") != std::string::npos);
    CHECK_FALSE(tap_device::create("lo", 0, w));
    CHECK(w.find("already exists") != std::string::npos);
  }
}

namespace {

// The network namespace the calling thread is in, as the inode of its nsfs file.
ino_t thread_netns() {
  struct stat st {};
  return ::stat("/proc/thread-self/ns/net", &st) == 0 ? st.st_ino : 0;
}

// One frame each way through `tap` and `inside` (a packet socket in the tap's namespace);
// "" when both arrived intact, else what went wrong.
std::string round_trip(tap_device& tap, raw_socket& inside, std::uint32_t seq) {
  const auto out = make_frame(seq, 100);
  if (!tap.write_frame(out.data(), out.size()))
    return std::string("write_frame: ") + std::strerror(errno);
  const auto got = inside.recv_frame(2s);
  if (!got || *got != out) return "the frame written to the fd did not arrive intact";
  const auto in = make_frame(seq + 1, 120);
  if (inside.send(in) != static_cast<ssize_t>(in.size()))
    return std::string("send: ") + std::strerror(errno);
  std::uint8_t buf[1518];
  std::size_t len = 0;
  if (read_test_frame(tap, buf, sizeof buf, &len, 2s) != st::frame || len != in.size() ||
      std::memcmp(buf, in.data(), len) != 0)
    return "the frame sent to the tap did not arrive intact at read_frame";
  return "";
}

}  // namespace

// Only making the tap has to happen inside: its fd then works from threads in any namespace
// (the kcont NIC's interrupt CPU and kcont-nicsim's floor thread never enter ours).
TEST_CASE(
    "tap: made inside the test's namespace, it is absent from the host's; its fd works "
    "from threads outside") {
  std::string why;
  auto ns = kcont::net::own_netns::make(kcont::net::netns_prefix_test, why);
  if (!ns) {
    MESSAGE(netns_skip_message(why));
    return;
  }
  const ino_t home = thread_netns();
  REQUIRE(home != 0);
  std::unique_ptr<tap_device> tap;
  std::unique_ptr<raw_socket> inside;
  {
    auto in = kcont::net::netns_thread_scope::enter(ns->handle(), why);
    REQUIRE_MESSAGE(in, why);
    CHECK(thread_netns() != home);
    tap = tap_device::create("", 0, why);
    if (!tap) {
      MESSAGE("SKIPPED: cannot create a tap here: " << why);
      return;
    }
    quiet_host_stack(tap->name());
    CHECK(::if_nametoindex(tap->name().c_str()) == static_cast<unsigned>(tap->ifindex()));
    inside = std::make_unique<raw_socket>(tap->ifindex());
    REQUIRE_MESSAGE(inside->ok(), inside->error());
  }
  CHECK(thread_netns() == home);  // the scope returned the thread
  INFO("an interface named " << tap->name() << " in the test's home namespace");
  CHECK(::if_nametoindex(tap->name().c_str()) == 0);
  drain(*tap);

  CHECK(round_trip(*tap, *inside, 1) == "");  // this thread, back home
  ino_t other_ns = 0;
  std::string other;
  std::thread([&] {
    other_ns = thread_netns();
    other = round_trip(*tap, *inside, 3);
  }).join();
  CHECK(other_ns == home);  // a thread started outside stays outside
  CHECK(other == "");
  CHECK(tap->link_exists());

  // Closing the fd from outside removes the interface inside.
  const std::string name = tap->name();
  tap.reset();
  unsigned index_inside = 1;
  REQUIRE(kcont::net::run_in_netns(
      ns->handle(), [&] { index_inside = ::if_nametoindex(name.c_str()); }, why));
  CHECK(index_inside == 0);
}
