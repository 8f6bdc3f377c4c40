// A Linux tap device as a wire for the simulated NIC: one non-blocking fd that carries whole
// Ethernet frames (no packet-information header) between this process and the host's stack.
//
// What Linux does, measured on 6.18 and checked by tests/test_tap.cpp unless marked:
// - Reading a frame longer than the buffer returns the buffer size and silently drops the
//   rest of the frame (no MSG_TRUNC for a character device). read_frame therefore reads into
//   the caller's buffer plus a spill area owned by the device, so it can report the frame's
//   full length and `truncated` instead of passing a cut frame off as whole.
// - `ip link delete` (RTM_DELLINK) of a tap whose fd is open detaches the fd: frames still
//   queued are discarded, read(2), write(2) and TUNGETIFF fail with EBADFD, and poll(2)
//   reports POLLERR only (no POLLIN, POLLOUT or POLLHUP), which wakes a sleeping poller. The
//   link goes down first, so for the few milliseconds the deletion takes (about 15-20 ms
//   here: the kernel waits for an RCU grace period) writes fail with EIO, then with EBADFD.
//   The fd stays open until closed; closing it afterwards is an ordinary close.
// - A frame shorter than 14 bytes (the Ethernet header) is refused both ways: write(2) to the
//   fd fails with EINVAL, and an AF_PACKET socket cannot send one on the tap (EINVAL, even as
//   root), so read_frame never sees one. Frames of 14..59 bytes go through unpadded.
// - Frames written to the fd are not checked against the MTU (the host's stack receives
//   them, up to 64 KiB); frames the host sends to the tap are limited to MTU + 14 bytes by the
//   host's stack (an AF_PACKET socket gets EMSGSIZE beyond that).
// - While the interface is down, write(2) fails with EIO and read(2) finds nothing (EAGAIN).
// - (From the tun driver's source, not tested here.) The tap's queue towards the fd holds
//   tx_queue_len (1000) frames; beyond that the host's stack drops, so a slow reader loses
//   frames without any error on the fd. A non-blocking write to the fd does not return
//   EAGAIN in practice: the frame is handed to the host's stack at once (which may drop it
//   later and counts that in the link's rx_dropped).
// - Once up, the host's stack sends its own traffic on the tap (IPv6 router solicitations,
//   MLD reports); a reader must expect frames it did not ask for.
//
// Locks used to protect the fields of tap_device:
//   [I] immutable after construction (read_frame and write_frame share nothing else: each
//       is one system call on fd_)
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace kcont::net {

class tap_device {
 public:
  // Largest frame read_frame can measure exactly: MTU at most 65535, plus the Ethernet header
  // and a VLAN tag. A longer frame (none exists) would be reported as truncated at this length.
  static constexpr std::size_t max_frame = 65535 + 14 + 4;

  // Creates a tap interface (IFF_TAP | IFF_NO_PI, not persistent: it vanishes when the fd is
  // closed), sets its MTU (0 keeps the kernel's default, 1500), brings it up and returns it
  // with a non-blocking, close-on-exec fd. The interface belongs to the calling thread's
  // network namespace; the fd then works from any thread in any namespace. kcont's programs
  // and tests call this only from inside a namespace of their own (net/netns/), never from
  // the host's default one.
  //
  // name_pattern: "" lets the kernel pick ("kcont%d"); a pattern with "%d" likewise; a plain
  // name must not exist yet (TUNSETIFF would otherwise attach to someone else's persistent
  // tap, or fail with a confusing EINVAL/EBUSY), so an existing name is refused up front.
  //
  // On failure returns nullptr and sets `why` to one line saying what is missing and what to
  // do about it, e.g. "/dev/net/tun is missing ..." or "permission denied creating a tap
  // (needs root or CAP_NET_ADMIN) ...". Callers fall back to the in-memory wire on nullptr.
  static std::unique_ptr<tap_device> create(const std::string& name_pattern, unsigned mtu,
                                            std::string& why);

  ~tap_device();  // closes the fd; the kernel then removes the interface (before close returns)
  tap_device(const tap_device&) = delete;
  tap_device& operator=(const tap_device&) = delete;

  int fd() const { return fd_; }  // for poll/epoll/Asio: POLLIN = a frame, POLLERR = gone
  const std::string& name() const { return name_; }
  unsigned mtu() const { return mtu_; }
  int ifindex() const { return ifindex_; }

  enum class read_status {
    frame,      // buf[0, *len) holds one whole frame
    truncated,  // the frame was longer than cap: buf holds its first cap bytes, *len is its
                // full length (> cap); the rest is discarded (count it as "oversized")
    none,       // nothing queued (EAGAIN)
    gone,       // the interface was deleted under us (EBADFD); nothing will ever arrive
    error,      // anything else; errno is kept
  };

  // Reads one frame without blocking. One readv(2); no allocation, no lock. Safe to call
  // from several threads at once (each call gets whole frames), though one reader is the
  // intended use.
  read_status read_frame(std::uint8_t* buf, std::size_t cap, std::size_t* len);

  // Writes one frame (len >= 14; the frame is not checked against the MTU). Returns false
  // with errno set on failure: EINVAL for a runt (< 14 bytes), EIO while the interface is
  // down (also while it is being deleted), EBADFD once it was deleted, EAGAIN should the
  // kernel ever refuse for lack of room (the caller counts a drop). One write(2); no
  // allocation. Never writes part of a frame.
  bool write_frame(const std::uint8_t* frame, std::size_t len);

  // Whether our interface still exists. Asks the fd (TUNGETIFF), not the name: a link
  // deleted and re-created under the same name by someone else is not ours.
  bool link_exists() const;

 private:
  tap_device(int fd, std::string name, unsigned mtu, int ifindex);

  int fd_;            // [I]
  std::string name_;  // [I]
  unsigned mtu_;      // [I]
  int ifindex_;       // [I]
  // [I] Where the tail of a frame longer than the caller's buffer goes. Concurrent read_frame
  // calls let the kernel write it at once: its contents are never read.
  std::unique_ptr<std::uint8_t[]> spill_;
};

}  // namespace kcont::net
