// The tap device: creation with errors a user can act on, and the frame read/write path
// (one system call each, no allocation). See kcont/tap.h for what Linux does.
#include <kcont/tap.h>

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>  // not <linux/if.h>: the two clash
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace kcont::net {
namespace {

constexpr const char* clone_device = "/dev/net/tun";

std::string errno_text(int err) {
  return std::string(std::strerror(err));
}

// Why open("/dev/net/tun") failed, in words that say what to do.
std::string open_failure(int err) {
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return "/dev/net/tun is missing (no tun module, or the device is not exposed in this "
             "container: pass --device /dev/net/tun, or mknod /dev/net/tun c 10 200): using "
             "the in-memory wire";
    case ENODEV:
    case ENXIO:
      return "/dev/net/tun exists but the kernel has no tun driver (modprobe tun): using the "
             "in-memory wire";
    case EACCES:
    case EPERM:
      return "permission denied opening /dev/net/tun (its file mode, or the device is not "
             "allowed in this container's device cgroup: pass --device /dev/net/tun); a tap "
             "also needs root or CAP_NET_ADMIN: using the in-memory wire";
    default:
      return "cannot open /dev/net/tun: " + errno_text(err) + ": using the in-memory wire";
  }
}

std::string cap_failure(const char* what) {
  return std::string("permission denied ") + what +
         " (needs root or CAP_NET_ADMIN in this network namespace): using the in-memory wire";
}

// Closes an fd on every path out of create().
struct fd_guard {
  int fd;
  ~fd_guard() {
    if (fd >= 0) ::close(fd);
  }
  int release() {
    int f = fd;
    fd = -1;
    return f;
  }
};

void set_ifr_name(ifreq& ifr, const std::string& name) {
  std::memset(&ifr, 0, sizeof ifr);
  std::memcpy(ifr.ifr_name, name.data(), name.size());  // size < IFNAMSIZ checked by caller
}

}  // namespace

std::unique_ptr<tap_device> tap_device::create(const std::string& name_pattern, unsigned mtu,
                                               std::string& why) {
  why.clear();
  const std::string pattern = name_pattern.empty() ? "kcont%d" : name_pattern;
  if (pattern.size() >= IFNAMSIZ) {
    why = "tap name '" + pattern + "' is too long (at most " + std::to_string(IFNAMSIZ - 1) +
          " characters)";
    return nullptr;
  }
  if (pattern.find('%') == std::string::npos && ::if_nametoindex(pattern.c_str()) != 0) {
    why = "an interface named '" + pattern +
          "' already exists (pick another name, or pass \"\" to let the kernel pick one)";
    return nullptr;
  }
  if (mtu != 0 && (mtu < 68 || mtu > 65535)) {
    why = "MTU " + std::to_string(mtu) + " is out of range for a tap (68..65535, 0 = default)";
    return nullptr;
  }

  fd_guard tun{::open(clone_device, O_RDWR | O_NONBLOCK | O_CLOEXEC)};
  if (tun.fd < 0) {
    why = open_failure(errno);
    return nullptr;
  }

  ifreq ifr;
  set_ifr_name(ifr, pattern);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  if (::ioctl(tun.fd, TUNSETIFF, &ifr) < 0) {
    int err = errno;
    if (err == EPERM || err == EACCES) {
      why = cap_failure("creating a tap");
    } else if (err == EBUSY) {
      why = "tap '" + pattern + "' is in use by another process";
    } else if (err == EINVAL) {
      why = "the kernel refused tap name '" + pattern +
            "' (invalid, or taken by an interface that is not a tap)";
    } else {
      why = "creating a tap failed (TUNSETIFF): " + errno_text(err);
    }
    return nullptr;
  }
  const std::string name(ifr.ifr_name, ::strnlen(ifr.ifr_name, IFNAMSIZ));

  // Interface ioctls (MTU, flags, index) go through any socket; AF_INET is the classic one.
  fd_guard sock{::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
  if (sock.fd < 0) {
    why = "cannot open an AF_INET socket to configure " + name + ": " + errno_text(errno);
    return nullptr;
  }
  if (mtu != 0) {
    set_ifr_name(ifr, name);
    ifr.ifr_mtu = static_cast<int>(mtu);
    if (::ioctl(sock.fd, SIOCSIFMTU, &ifr) < 0) {
      int err = errno;
      why = err == EPERM || err == EACCES
                ? cap_failure("setting the tap's MTU")
                : "setting MTU " + std::to_string(mtu) + " on " + name + ": " + errno_text(err);
      return nullptr;
    }
  }
  set_ifr_name(ifr, name);
  if (::ioctl(sock.fd, SIOCGIFMTU, &ifr) < 0) {
    why = "reading the MTU of " + name + ": " + errno_text(errno);
    return nullptr;
  }
  const unsigned actual_mtu = static_cast<unsigned>(ifr.ifr_mtu);

  set_ifr_name(ifr, name);
  if (::ioctl(sock.fd, SIOCGIFFLAGS, &ifr) < 0) {
    why = "reading the flags of " + name + ": " + errno_text(errno);
    return nullptr;
  }
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
  if (::ioctl(sock.fd, SIOCSIFFLAGS, &ifr) < 0) {
    int err = errno;
    why = err == EPERM || err == EACCES ? cap_failure("bringing the tap up")
                                        : "bringing " + name + " up: " + errno_text(err);
    return nullptr;
  }

  set_ifr_name(ifr, name);
  if (::ioctl(sock.fd, SIOCGIFINDEX, &ifr) < 0) {
    why = "reading the index of " + name + ": " + errno_text(errno);
    return nullptr;
  }
  const int ifindex = ifr.ifr_ifindex;

  return std::unique_ptr<tap_device>(new tap_device(tun.release(), name, actual_mtu, ifindex));
}

tap_device::tap_device(int fd, std::string name, unsigned mtu, int ifindex)
    : fd_(fd),
      name_(std::move(name)),
      mtu_(mtu),
      ifindex_(ifindex),
      spill_(new std::uint8_t[max_frame]) {}

tap_device::~tap_device() {
  ::close(fd_);
}

tap_device::read_status tap_device::read_frame(std::uint8_t* buf, std::size_t cap,
                                               std::size_t* len) {
  // The spill iovec catches the tail of a frame longer than cap, so the return value is the
  // frame's full length (a plain read(2) would return cap and lose the difference).
  iovec iov[2] = {{buf, cap}, {spill_.get(), max_frame}};
  ssize_t n = ::readv(fd_, iov, 2);
  if (n >= 0) {
    *len = static_cast<std::size_t>(n);
    return *len > cap ? read_status::truncated : read_status::frame;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK) return read_status::none;
  if (errno == EBADFD) return read_status::gone;
  return read_status::error;
}

bool tap_device::write_frame(const std::uint8_t* frame, std::size_t len) {
  ssize_t n = ::write(fd_, frame, len);
  if (n < 0) return false;
  if (static_cast<std::size_t>(n) != len) {  // tun never writes part of a frame; be sure
    errno = EIO;
    return false;
  }
  return true;
}

bool tap_device::link_exists() const {
  ifreq ifr;
  std::memset(&ifr, 0, sizeof ifr);
  return ::ioctl(fd_, TUNGETIFF, &ifr) == 0;
}

}  // namespace kcont::net
