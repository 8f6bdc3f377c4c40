// The echo server of asio_echo_server.cpp written with C++20 coroutines on kcont
// (<kcont/coro.h>), kcont attached to the server's io_context. Same options and behaviour:
//
//   coro_echo_server [--port N] [--idle-ms N] [--slow-ms N] [--run-ms N]
//
// Listens on 127.0.0.1 (port 0: an ephemeral port) and prints "listening on port N". Each line
// a client sends is echoed back, except a line starting with "slow", answered "done: LINE"
// after --slow-ms of work on a kcont worker thread. A connection idle for --idle-ms is closed
// by the server. It stops on SIGINT/SIGTERM or after --run-ms (0: never) and exits 0.
//
// How it is written:
//   - every connection is two spawned kcont::co_task coroutines sharing the session: a reader
//     and an idle watchdog. The reader awaits Asio's async_read_until / async_write through a
//     ten-line awaitable (asio_await below) whose completion handler resumes it on the
//     io_context's thread;
//   - a "slow" line hops onto a kcont thread queue, co_await kcont::on(rt, wq_prilow) (a worker
//     that may block), then back onto the server's thread, co_await kcont::on(rt, wq_softnet,
//     cpu0): the attached CPU is served by ioc.run();
//   - the watchdog sleeps on a kcont::timer (a callout, never early); the reader cancel()s the
//     timer on every line, which resumes the watchdog at once to start a new sleep; a sleep that
//     runs to its end closes the connection.
// Everything but the slow work runs on the one thread that runs ioc, so the session needs no
// lock. (Coroutine results are bound to a variable before an if: g++ 12.2 miscompiles
// `if (co_await ...)`, kcont_coro(3).)
#include <kcont/attach.h>
#include <kcont/coro.h>
#include <kcont/kcont.h>
#include <kcont/runtime.h>
#include <kcont/workqueue.h>
#include <utility>  // before boost/asio.hpp: Boost 1.74 uses std::exchange without it

#include <boost/asio.hpp>

#include <cerrno>
#include <chrono>
#include <climits>
#include <coroutine>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <thread>

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

struct options {
  unsigned short port = 0;
  long idle_ms = 5000;
  long slow_ms = 200;
  long run_ms = 0;
};

// Awaits an Asio operation started by start(handler); yields its byte count (0 for an
// operation without one) or throws boost::system::system_error. The handler resumes the
// coroutine on the thread that runs the operation's completion (here: ioc.run()'s).
template <class Start>
struct asio_await {
  Start start;
  boost::system::error_code ec{};
  std::size_t n = 0;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    start([this, h](boost::system::error_code e, std::size_t k = 0) {
      ec = e;
      n = k;
      h.resume();
    });
  }
  std::size_t await_resume() const {
    if (ec) throw boost::system::system_error(ec);
    return n;
  }
};
template <class Start>
asio_await(Start) -> asio_await<Start>;

struct server;

struct session : std::enable_shared_from_this<session> {
  session(server& s, tcp::socket k);
  ~session();
  void close() {
    if (closed) return;
    closed = true;
    boost::system::error_code ec;
    sock.close(ec);  // a pending read ends with operation_aborted
    idle.cancel();   // a waiting watchdog resumes here and leaves
  }
  server& srv;
  tcp::socket sock;
  asio::streambuf in;
  kcont::timer idle;
  bool closed = false;
};

struct server {
  server(asio::io_context& loop, kcont::runtime& kc, const options& o)
      : ioc(loop), rt(kc), opt(o), acceptor(loop, {asio::ip::make_address("127.0.0.1"), o.port}) {}
  void shutdown() {
    boost::system::error_code ec;
    acceptor.close(ec);
    for (auto& w : sessions)
      if (auto s = w.lock()) s->close();
    // Drains kcont's CPU here (this is the loop's thread) and takes kcont's wait off the
    // io_context: ioc.run() returns once the last connection is done. A slow request still on
    // a worker is reported by the stop report, not lost silently.
    kcont::stop_report r = rt.stop();
    std::printf("kcont stopped: %s\n", r.summary().c_str());
  }
  asio::io_context& ioc;
  kcont::runtime& rt;
  const options opt;
  tcp::acceptor acceptor;
  std::set<std::weak_ptr<session>, std::owner_less<std::weak_ptr<session>>> sessions;
};

session::session(server& s, tcp::socket k) : srv(s), sock(std::move(k)), idle(s.rt) {}
session::~session() {
  srv.sessions.erase(weak_from_this());
}

kcont::co_task<> watchdog(std::shared_ptr<session> s) {
  const auto idle_for = std::chrono::milliseconds(s->srv.opt.idle_ms);
  while (!s->closed) {
    const bool idle_out = co_await s->idle.sleep_for(idle_for);  // false: the reader saw a line
    if (idle_out) s->close();  // kcont's softclock, on the loop's thread: closing does not block
  }
}

kcont::co_task<> reader(std::shared_ptr<session> s) {
  kcont::runtime& rt = s->srv.rt;
  try {
    for (;;) {
      const std::size_t n = co_await asio_await{
          [&](auto h) { asio::async_read_until(s->sock, s->in, '\n', std::move(h)); }};
      std::string line(asio::buffers_begin(s->in.data()),
                       asio::buffers_begin(s->in.data()) + static_cast<std::ptrdiff_t>(n));
      s->in.consume(n);
      s->idle.cancel();  // activity: the watchdog starts its sleep again
      if (line.rfind("slow", 0) == 0) {
        co_await kcont::on(rt, wq_prilow);  // a kcont worker thread: it may block
        {
          kcont::blocking_scope sleeping;  // tells the engine this worker sleeps
          std::this_thread::sleep_for(std::chrono::milliseconds(s->srv.opt.slow_ms));
        }
        co_await kcont::on(rt, wq_softnet, rt.cpu(0));  // back on the loop's thread
        if (s->closed) break;
        line = "done: " + line;
      }
      co_await asio_await{
          [&](auto h) { asio::async_write(s->sock, asio::buffer(line), std::move(h)); }};
    }
  } catch (const boost::system::system_error&) {  // the peer left, or we closed it
  }
  s->close();
}

kcont::co_task<> accept_loop(server& srv) {
  for (;;) {
    tcp::socket sock(srv.ioc);
    try {
      co_await asio_await{[&](auto h) { srv.acceptor.async_accept(sock, std::move(h)); }};
    } catch (const boost::system::system_error&) {
      co_return;  // closed by shutdown()
    }
    auto s = std::make_shared<session>(srv, std::move(sock));
    srv.sessions.insert(s);
    kcont::spawn(watchdog(s));
    kcont::spawn(reader(s));
  }
}

// A whole number in [lo, hi] for `option`, or a message and false.
bool number(const char* option, const char* text, long lo, long hi, long& out) {
  char* end = nullptr;
  errno = 0;
  const long v = text != nullptr ? std::strtol(text, &end, 10) : 0;
  if (text == nullptr || *text == '\0' || *end != '\0' || errno != 0 || v < lo || v > hi) {
    std::fprintf(stderr, "coro_echo_server: %s wants a whole number in %ld..%ld, not '%s'\n",
                 option, lo, hi, text != nullptr ? text : "");
    return false;
  }
  out = v;
  return true;
}

bool parse(int argc, char** argv, options& o) {
  for (int i = 1; i < argc; i += 2) {  // an option and its value
    const char* a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    long port = 0;
    bool ok;
    if (!std::strcmp(a, "--port")) {
      ok = number(a, v, 0, 65535, port);
      o.port = static_cast<unsigned short>(port);
    } else if (!std::strcmp(a, "--idle-ms")) {
      ok = number(a, v, 1, INT_MAX, o.idle_ms);
    } else if (!std::strcmp(a, "--slow-ms")) {
      ok = number(a, v, 0, INT_MAX, o.slow_ms);
    } else if (!std::strcmp(a, "--run-ms")) {
      ok = number(a, v, 0, INT_MAX, o.run_ms);
    } else {
      ok = false;
    }
    if (!ok) {
      std::fprintf(stderr,
                   "usage: %s [--port N] [--idle-ms N] [--slow-ms N] [--run-ms N (0: forever)]\n",
                   argv[0]);
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  options opt;
  if (!parse(argc, argv, opt)) return 2;

  asio::io_context ioc(1);  // the server's loop, run by this thread
  // kcont attached to it: one CPU, served by ioc.run(). Declared after ioc: destroyed first.
  kcont::runtime_config cfg = kcont::attached(ioc);
  cfg.export_stats = true;                                // kcont-stat PID shows it live
  cfg.stuck_handler_threshold = std::chrono::seconds(1);  // a handler stuck that long is reported
  kcont::runtime rt(cfg);
  kcont::runtime_scope scope(rt);
  server srv(ioc, rt, opt);
  kcont::spawn(accept_loop(srv));
  std::printf("listening on port %u\n",
              static_cast<unsigned>(srv.acceptor.local_endpoint().port()));
  std::fflush(stdout);

  asio::signal_set signals(ioc, SIGINT, SIGTERM);
  asio::steady_timer run_timer(ioc);
  auto stop = [&] {
    signals.cancel();
    run_timer.cancel();
    srv.shutdown();
  };
  signals.async_wait([&](boost::system::error_code ec, int) {
    if (!ec) stop();
  });
  if (opt.run_ms > 0) {
    run_timer.expires_after(std::chrono::milliseconds(opt.run_ms));
    run_timer.async_wait([&](boost::system::error_code ec) {
      if (!ec) stop();
    });
  }

  ioc.run();  // returns when the server's work is done and kcont was stopped
  std::printf("bye\n");
  return 0;
}
